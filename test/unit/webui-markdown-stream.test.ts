// The web page's incremental markdown (web/markdown-stream.js, plain browser JS) with the npm
// markdown-it the page's browser build comes from: where a growing answer splits into blocks that
// can no longer change and a rest, and that the parts, streamed a character at a time, always
// make up exactly what one render of the text so far gives, for fences holding blank lines, loose
// lists, headings, tables, indented code and think blocks.
import markdownit from 'markdown-it';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript served to the browser, without type declarations.
import { createMarkdown, MarkdownBlocks, stableLength } from '../../web/markdown-stream.js';
// @ts-expect-error: plain JavaScript served to the browser, without type declarations.
import { ThinkSplitter } from '../../web/think-splitter.js';
import { trickyAnswers } from '../helpers/markdown-answers.js';

const md = createMarkdown(markdownit);

/** Where `marker` starts in text: the expected split. */
const at = (text: string, marker: string) => {
  const i = text.indexOf(marker);
  if (i < 0) throw new Error(`${marker} not in text`);
  return i;
};

/** The shared tricky answers, and line breaks as Windows writes them. */
const answers: Record<string, string> = { ...trickyAnswers, 'windows line breaks': 'One.\r\n\r\n- a\r\n\r\n- b\r\n\r\nTwo.\r\n' };

/**
 * Streams text into a MarkdownBlocks `step` characters at a time, checking after every update
 * that the parts shown make up a render of the text so far. Returns how many updates added final
 * blocks before the last one.
 */
function stream(text: string, step = 1): { finalBeforeEnd: number; blocks: any } {
  const blocks = new MarkdownBlocks(md);
  let shown = '';
  let finalBeforeEnd = 0;
  for (let end = step; end < text.length; end += step) {
    const prefix = text.slice(0, end);
    const { added, rest } = blocks.update(prefix);
    if (added) finalBeforeEnd++;
    shown += added;
    expect(shown + rest, `after ${JSON.stringify(prefix)}`).toBe(md.render(prefix));
  }
  const { added, rest, whole } = blocks.finish(text);
  expect(whole).toBeNull();
  expect(shown + added + rest).toBe(md.render(text));
  return { finalBeforeEnd, blocks };
}

describe('stableLength: how much of an answer is final', () => {
  const cases: [string, string, number | string][] = [
    ['nothing before the first block ends', 'A paragraph still growing', 0],
    ['a paragraph, once the next block has begun', 'First.\n\nSec', 'Sec'],
    ['not before the next block begins', 'First.\n\n', 0],
    ['blank lines inside a fence are no boundary', '```\ncode\n\nmore\n\n', 0],
    ['a closed fence is final', '```\ncode\n\nmore\n```\n\nAfter', 'After'],
    ['`</think>` in a fence is text like any other', '```\n</think>\n\nx', 0],
    ['a loose list can take more items', '- a\n\n- b\n\n', 0],
    ['a half-written line that may be an item', '- a\n\n- b\n\n1', 0],
    ['a whole line that is not an item ends the list', '- a\n\n- b\n\n1 apple\n', '1 apple'],
    ['a line that cannot be an item ends the list at once', '- a\n\n- b\n\nAft', 'Aft'],
    ['indented code can take more lines', '    code\n\n ', 0],
    ['a heading then a paragraph', '# Title\n\nTex', 'Tex'],
    ['a table then a paragraph', '| a |\n|---|\n| 1 |\n\nx', 'x'],
    ['the last boundary counts', 'One.\n\nTwo.\n\nThree', 'Three'],
    ['a paragraph interrupted without a blank line waits for one', 'Text\n# Heading', 0],
  ];
  for (const [name, text, expected] of cases) {
    it(name, () => {
      expect(stableLength(md, text)).toBe(typeof expected === 'string' ? at(text, expected) : expected);
    });
  }
});

describe('MarkdownBlocks: a streamed answer', () => {
  for (const [name, text] of Object.entries(answers)) {
    it(`${name}: every update shows a full render of the text so far, and early blocks are settled before the end`, () => {
      const { finalBeforeEnd } = stream(text);
      expect(finalBeforeEnd).toBeGreaterThan(0);
      stream(text, 7);
    });
  }

  it('a long answer is re-rendered only from its last block on', () => {
    const paragraphs = Array.from({ length: 200 }, (_, i) => `Paragraph ${i}: ${'some words '.repeat(8)}`);
    const text = paragraphs.join('\n\n');
    const blocks = new MarkdownBlocks(md);
    for (let end = 50; end <= text.length; end += 50) blocks.update(text.slice(0, end));
    blocks.update(text);
    expect(text.length - blocks.finalLength).toBe(paragraphs.at(-1)!.length);
  });

  it('a link reference defined before its use is kept across blocks; one used before it, by a render of the whole', () => {
    stream('[docs]: https://example.com/docs\n\nSee [the docs][docs].\n\nAnd [docs] again.');
    const usedFirst = 'See [docs].\n\nMore text.\n\n[docs]: https://example.com/docs\n';
    const blocks = new MarkdownBlocks(md);
    for (let end = 1; end < usedFirst.length; end++) blocks.update(usedFirst.slice(0, end));
    expect(blocks.finish(usedFirst).whole).toBe(md.render(usedFirst));
  });

  it('starts afresh when the text given is shorter than what was settled', () => {
    const blocks = new MarkdownBlocks(md);
    blocks.update('One.\n\nTwo.\n\nThr');
    expect(blocks.finalLength).toBeGreaterThan(0);
    expect(blocks.update('Fresh')).toEqual({ added: '', rest: md.render('Fresh') });
    expect(blocks.finalHtml).toBe('');
  });
});

describe('MarkdownBlocks behind the think splitter, as the page uses them', () => {
  /** The answer's HTML once the stream ends, fed a character at a time as web/app.js feeds it. */
  function answerHtml(reply: string): { html: string; settledEarly: boolean } {
    const splitter = new ThinkSplitter();
    const blocks = new MarkdownBlocks(md);
    let content = '';
    let shown = '';
    let settledEarly = false;
    const take = (part: { content: string; contentWasReasoning: boolean }) => {
      if (part.contentWasReasoning) {
        content = '';
        shown = '';
        blocks.reset();
      }
      content += part.content;
      const { added, rest } = blocks.update(content);
      if (added) settledEarly = true;
      shown += added;
      expect(shown + rest).toBe(md.render(content));
    };
    for (const ch of reply) take(splitter.push(ch));
    take(splitter.finish());
    const { added, rest, whole } = blocks.finish(content);
    expect(whole).toBeNull();
    return { html: shown + added + rest, settledEarly };
  }

  it('a think block followed by the answer: the answer alone is rendered', () => {
    const answer = '# Result\n\nThe answer:\n\n- one\n\n- two\n\nDone.';
    const { html, settledEarly } = answerHtml(`<think>\nFirst thought.\n\nSecond thought.\n</think>\n\n${answer}`);
    expect(html).toBe(md.render(answer));
    expect(settledEarly).toBe(true);
  });

  it('a lone `</think>`: blocks settled while it looked like the answer are dropped', () => {
    const answer = 'The answer.\n\n| a | b |\n|---|---|\n| 1 | 2 |';
    const { html } = answerHtml(`Let me think.\n\nA second thought.\n\nA third.\n</think>\n\n${answer}`);
    expect(html).toBe(md.render(answer));
  });
});
