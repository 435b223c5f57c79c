// The chat page renders a streamed answer incrementally, in a real browser (Debian's Chromium via
// playwright-core) against the real server replaying recorded answers (ScriptedEngine): a block
// that can no longer change is rendered once and keeps its DOM node until the end (so a selection
// in it survives the rest streaming in), and the final answer is exactly what one markdown-it
// render of the whole text gives, for fences with blank lines, loose lists, headings, tables, a
// think block before the answer and a lone `</think>`.
import markdownit from 'markdown-it';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
// @ts-expect-error: plain JavaScript served to the browser, without type declarations.
import { createMarkdown } from '../../web/markdown-stream.js';
import { trickyAnswers } from '../helpers/markdown-answers.js';
import { ScriptedEngine } from './scripted-engine.js';
import { loadTiny, type TinyModel } from './server-harness.js';
import { itWithPage, launchBrowser, type Browser } from './webui-browser.js';

const firstParagraph = 'First paragraph, settled long before the answer ends.';
const longAnswer = [
  firstParagraph,
  '## A heading',
  ...Array.from({ length: 12 }, (_, i) => `Paragraph ${i} with **bold** text and \`code\`: ${'more words '.repeat(10)}`),
  '1. a loose list\n\n2. of two items',
  '```js\nconst a = 1;\n\nconst b = 2;\n```',
  '| a | b |\n|---|--:|\n| 1 | 2 |',
  'The end.',
].join('\n\n');
const thinkAnswer = '# Answer\n\nAfter the thought:\n\n- one\n\n- two';
const afterLoneClose = 'The real answer.\n\n| x | y |\n|:-:|---|\n| 1 | 2 |';
const loneCloseThought = 'Let me think.\n\nA second thought, shown as the answer until the tag comes.\n\nA third.';

const md = createMarkdown(markdownit);
const polling = { timeout: 30_000, interval: 50 };
let model: TinyModel;
let server: RunningServer;
let browser: Browser;
const it = itWithPage(() => browser, { open: () => server.url });

const trickyPrompts = Object.keys(trickyAnswers).map((name, i) => ({ name, prompt: `Tricky case ${String.fromCharCode(65 + i)}.`, text: trickyAnswers[name] }));

beforeAll(async () => {
  model = await loadTiny('tiny-a', { maxSeqLen: 4096 });
  const scripted = new ScriptedEngine(
    model.engine,
    model.tokenizer,
    [
      { whenPromptHas: 'Long markdown', reply: longAnswer },
      { whenPromptHas: 'One long paragraph', reply: `${'word '.repeat(800)}the end.` },
      { whenPromptHas: 'Think first', reply: `<think>\nA thought.\n\nAnother thought.\n</think>\n\n${thinkAnswer}` },
      { whenPromptHas: 'Lone close', reply: `${loneCloseThought}\n</think>\n\n${afterLoneClose}` },
      ...trickyPrompts.map((c) => ({ whenPromptHas: c.prompt, reply: c.text })),
    ],
    { delayMs: 5 },
  );
  server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, extraRoutes: webUiRoutes() }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true });
  await server.ready;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await model?.engine.close();
});

async function send(p: Page, text: string): Promise<void> {
  await p.fill('#prompt', text);
  await p.press('#prompt', 'Enter');
}

async function waitDone(p: Page): Promise<void> {
  await p.waitForFunction(() => document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
}

/** The answer's HTML, and markdown-it's one-shot render of text as the browser parses it. */
async function answerAndOneRender(p: Page, text: string): Promise<{ answer: string; oneRender: string }> {
  return p.evaluate((html) => {
    const parsed = document.createElement('div');
    parsed.innerHTML = html;
    return { answer: document.querySelector('.msg.assistant:last-child .answer')!.innerHTML, oneRender: parsed.innerHTML };
  }, md.render(text) as string);
}

describe('web chat page: incremental markdown while an answer streams', () => {
  it('a paragraph settled early is the same DOM node at the end, and text selected in it stays selected', async ({ page, errors }) => {
    // Tags the first paragraph once another block follows it (it can no longer change then), and
    // selects its text, as a reader copying it would.
    await page.evaluate(() => {
      const w = window as any;
      new MutationObserver(() => {
        const first = document.querySelector('.msg.assistant:last-child .answer')?.firstElementChild as any;
        if (w.firstParagraph || !first || first.tagName !== 'P' || !first.nextElementSibling) return;
        first.taggedWhenFirstFollowed = true;
        w.firstParagraph = first.textContent;
        const range = document.createRange();
        range.selectNodeContents(first);
        getSelection()!.removeAllRanges();
        getSelection()!.addRange(range);
      }).observe(document.getElementById('messages')!, { subtree: true, childList: true });
    });
    await send(page, 'Long markdown, please');
    await expect.poll(() => page.evaluate(() => (window as any).firstParagraph), polling).toBe(firstParagraph);
    expect(await page.locator('.msg.assistant').last().getAttribute('data-state')).toBe('streaming');
    await waitDone(page);
    const end = await page.evaluate(() => ({
      tagged: (document.querySelector('.msg.assistant:last-child .answer')!.firstElementChild as any).taggedWhenFirstFollowed === true,
      selected: getSelection()!.toString(),
    }));
    expect(end).toEqual({ tagged: true, selected: firstParagraph });
    const { answer, oneRender } = await answerAndOneRender(page, longAnswer);
    expect(answer).toBe(oneRender);
    expect(errors).toEqual([]);
  });

  it('text selected in the growing end holds new text back until it is let go', async ({ page, errors }) => {
    await send(page, 'One long paragraph, please');
    const answerLength = async () => ((await page.locator('.msg.assistant .answer').textContent()) ?? '').length;
    await expect.poll(answerLength, polling).toBeGreaterThan(40);
    await page.evaluate(() => {
      const text = document.querySelector('.msg.assistant .answer p')!.firstChild!;
      const range = document.createRange();
      range.setStart(text, 5);
      range.setEnd(text, 14);
      getSelection()!.removeAllRanges();
      getSelection()!.addRange(range);
    });
    const held = await answerLength();
    await page.waitForTimeout(500);
    expect(await page.locator('.msg.assistant').getAttribute('data-state')).toBe('streaming');
    expect(await page.evaluate(() => getSelection()!.toString())).toBe('word word');
    expect(await answerLength()).toBe(held);
    await page.evaluate(() => getSelection()!.removeAllRanges());
    await waitDone(page);
    expect((await page.locator('.msg.assistant .answer').textContent())!.trimEnd().endsWith('the end.')).toBe(true);
    expect(errors).toEqual([]);
  });

  for (const c of trickyPrompts) {
    it(`${c.name}: the streamed answer ends as one render of the whole text`, async ({ page, errors }) => {
      await send(page, c.prompt);
      await waitDone(page);
      const { answer, oneRender } = await answerAndOneRender(page, c.text);
      expect(answer).toBe(oneRender);
      expect(errors).toEqual([]);
    });
  }

  it('a think block then the answer: the answer alone, as one render', async ({ page, errors }) => {
    await send(page, 'Think first');
    await waitDone(page);
    const { answer, oneRender } = await answerAndOneRender(page, thinkAnswer);
    expect(answer).toBe(oneRender);
    expect(await page.locator('.msg.assistant .think-text').textContent()).toBe('A thought.\n\nAnother thought.');
    expect(errors).toEqual([]);
  });

  it('a lone `</think>`: paragraphs settled while it looked like the answer go, the answer is one render', async ({ page, errors }) => {
    // Records whether the thought was on show as the answer, settled paragraphs and all.
    await page.evaluate(() => {
      new MutationObserver(() => {
        const answer = document.querySelector('.msg.assistant:last-child .answer');
        if (answer && answer.querySelectorAll('p').length >= 2 && answer.textContent!.startsWith('Let me think.')) (window as any).thoughtShown = true;
      }).observe(document.getElementById('messages')!, { subtree: true, childList: true });
    });
    await send(page, 'Lone close');
    await waitDone(page);
    expect(await page.evaluate(() => (window as any).thoughtShown)).toBe(true);
    const { answer, oneRender } = await answerAndOneRender(page, afterLoneClose);
    expect(answer).toBe(oneRender);
    expect(await page.locator('.msg.assistant .think-text').textContent()).toBe(loneCloseThought);
    expect(errors).toEqual([]);
  });
});
