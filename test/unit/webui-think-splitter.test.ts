// The web page's think splitter (web/think-splitter.js, plain browser JS) on model-style outputs
// cut into two chunks at every position: the think block and the answer come out the same
// whichever way the text arrives, and no fragment of a tag ever shows.
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain JavaScript served to the browser, without type declarations.
import { ThinkSplitter } from '../../web/think-splitter.js';

type Part = { reasoning: string; content: string; contentWasReasoning: boolean };

/** What the page shows once the stream is done, taking parts as web/app.js does. */
function split(chunks: string[]): { reasoning: string; content: string } {
  const s = new ThinkSplitter();
  const out = { reasoning: '', content: '' };
  for (const part of [...chunks.map((c) => s.push(c) as Part), s.finish() as Part]) {
    if (part.contentWasReasoning) {
      // The answer shown so far moves into the think block: this part's reasoning repeats it.
      expect(part.reasoning.startsWith(out.content), 'taken-back content is repeated as reasoning').toBe(true);
      out.content = '';
    }
    out.reasoning += part.reasoning;
    out.content += part.content;
  }
  return out;
}

const cases: { name: string; text: string; reasoning: string; content: string }[] = [
  { name: 'think block then answer', text: '<think>\nLet me see.\n</think>\n\nThe answer is 4.', reasoning: '\nLet me see.\n', content: 'The answer is 4.' },
  { name: 'empty think block (thinking off)', text: '<think>\n\n</think>\n\nHi!', reasoning: '\n\n', content: 'Hi!' },
  { name: 'leading whitespace before the tag', text: '\n <think>x</think>y', reasoning: 'x', content: 'y' },
  { name: 'no think block', text: 'Plain <think> is text here', reasoning: '', content: 'Plain <think> is text here' },
  { name: 'cut off inside the think block', text: '<think>\nstill thinking </thi', reasoning: '\nstill thinking </thi', content: '' },
  { name: 'a tag-like prefix that is not a tag', text: '<thin air', reasoning: '', content: '<thin air' },
  { name: 'answer mentioning the tag', text: '<think>a</think>\nUse </think> to close.', reasoning: 'a', content: 'Use </think> to close.' },
  // Qwen3 "Thinking" templates end the prompt with `<think>\n`: the output has only the closing tag.
  { name: 'think block opened by the prompt', text: 'Let me see.\n</think>\n\nThe answer is 4.', reasoning: 'Let me see.\n', content: 'The answer is 4.' },
  { name: 'opened by the prompt, leading newline', text: '\nreasons\n</think>\n\nanswer', reasoning: '\nreasons\n', content: 'answer' },
  { name: 'opened by the prompt, nothing thought', text: '</think>\n\nHi!', reasoning: '', content: 'Hi!' },
  { name: 'opened by the prompt, cut right after the block', text: 'thinking</think>\n', reasoning: 'thinking', content: '' },
  { name: 'opened by the prompt, answer mentioning the tag', text: 'r</think>\nUse </think> to close.', reasoning: 'r', content: 'Use </think> to close.' },
  { name: 'an opening tag mid-answer keeps a later closing tag as text', text: 'Write <think> then </think> tags.', reasoning: '', content: 'Write <think> then </think> tags.' },
  { name: 'no closing tag: all answer', text: 'A plain answer about </thin', reasoning: '', content: 'A plain answer about </thin' },
];

describe('web ThinkSplitter', () => {
  for (const c of cases) {
    it(`${c.name}: the same split at every cut`, () => {
      expect(split([c.text])).toEqual({ reasoning: c.reasoning, content: c.content });
      for (let at = 0; at <= c.text.length; at++) {
        expect(split([c.text.slice(0, at), c.text.slice(at)]), `cut at ${at}`).toEqual({ reasoning: c.reasoning, content: c.content });
      }
      // One character at a time, as a slow stream would deliver it.
      expect(split([...c.text])).toEqual({ reasoning: c.reasoning, content: c.content });
    });
  }

  it('text shown as the answer is taken back when `</think>` arrives, and no piece of the tag shows', () => {
    const s = new ThinkSplitter();
    expect(s.push('Let me')).toEqual({ reasoning: '', content: 'Let me', contentWasReasoning: false });
    expect(s.push(' see.</th')).toEqual({ reasoning: '', content: ' see.', contentWasReasoning: false });
    expect(s.push('ink>\n\nIt is 4.')).toEqual({ reasoning: 'Let me see.', content: 'It is 4.', contentWasReasoning: true });
    expect(s.push(' Done </think>')).toEqual({ reasoning: '', content: ' Done </think>', contentWasReasoning: false });
    expect(s.finish()).toEqual({ reasoning: '', content: '', contentWasReasoning: false });
  });

  it('a plain answer is never taken back', () => {
    const s = new ThinkSplitter();
    const parts = [...'Just an answer, no tags.'].map((c) => s.push(c) as Part);
    parts.push(s.finish() as Part);
    expect(parts.some((p) => p.contentWasReasoning || p.reasoning)).toBe(false);
    expect(parts.map((p) => p.content).join('')).toBe('Just an answer, no tags.');
  });
});
