// The web chat page as a keyboard, mouse and screen-reader user meets it, in a real browser
// (Debian's Chromium via playwright-core) against the real server with recorded replies
// (ScriptedEngine): focus never falls to the page body when Send and Stop swap places; a
// conversation that outgrew the context says to start a new chat rather than to resend (no Retry),
// and one refused for its max_tokens says to lower that and Retry; a setting that is no number holds the message; text
// selected in an answer survives the rest of it streaming in; settings typed just before a
// reload are kept; messages say who wrote them and the list is marked busy while an answer streams.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { ScriptedEngine } from './scripted-engine.js';
import { loadTiny, type TinyModel } from './server-harness.js';
import { itWithPage, launchBrowser, type Browser, sendAndWait, waitAnswerState } from './webui-browser.js';

const polling = { timeout: 30_000, interval: 50 };
let model: TinyModel;
let server: RunningServer;
let browser: Browser;
const it = itWithPage(() => browser, { open: () => server.url });

const lastAssistant = (p: Page) => p.locator('.msg.assistant').last();
const retryButtons = (p: Page) => lastAssistant(p).getByRole('button', { name: 'Retry message' }).count();
const focused = (p: Page) => p.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);

/** Waits until the streaming answer has at least `chars` characters. */
async function answerPast(p: Page, chars: number): Promise<void> {
  await expect.poll(async () => ((await lastAssistant(p).locator('.answer').textContent()) ?? '').length, polling).toBeGreaterThan(chars);
}

beforeAll(async () => {
  // A short context, so a couple of turns fill it.
  model = await loadTiny('tiny-a', { maxSeqLen: 512 });
  const scripted = new ScriptedEngine(
    model.engine,
    model.tokenizer,
    [
      { whenPromptHas: 'Plain', reply: 'A plain answer.' },
      { whenPromptHas: 'Slow', reply: `First paragraph to copy.\n\n${'word '.repeat(300)}\n\nThe end.` },
      { whenPromptHas: 'Endless', reply: 'word '.repeat(600) },
    ],
    { delayMs: 15 },
  );
  server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, extraRoutes: webUiRoutes() }, { ...defaultServerOptions, host: '127.0.0.1', port: 0 });
  await server.ready;
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await model?.engine.close();
});

describe('web chat page usability', () => {
  it('focus stays in the message box when Send is clicked and when Stop is pressed from the keyboard', async ({ page, errors }) => {
    await page.fill('#prompt', 'Slow, please');
    await page.click('#send');
    await answerPast(page, 10);
    // The next message can be typed while the answer streams.
    expect(await focused(page)).toBe('prompt');
    await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('stop');
    await page.keyboard.press('Enter');
    await waitAnswerState(page, 'stopped');
    expect(await focused(page)).toBe('prompt');
    await page.keyboard.type('Plain follow-up');
    await page.keyboard.press('Enter');
    await waitAnswerState(page, 'done');
    expect(await page.locator('.msg.user .text').last().textContent()).toBe('Plain follow-up');
    expect(errors).toEqual([]);
  });

  it('a conversation grown past the context says to start a new chat, not to send the same again', async ({ page }) => {
    await sendAndWait(page, 'Endless, please');
    expect(await lastAssistant(page).locator('.meta').textContent()).toContain("cut at the model's length limit");
    await sendAndWait(page, 'Plain follow-up', 'error');
    const said = await lastAssistant(page).locator('.error').textContent();
    expect(said).toContain('maximum context length');
    expect(said).toContain('start a New chat');
    expect(await page.inputValue('#prompt')).toBe('Plain follow-up');
    // The same conversation would fail the same way again.
    expect(await retryButtons(page)).toBe(0);
    // As advised: a new chat takes the same message.
    await page.click('#new-chat');
    await page.press('#prompt', 'Enter');
    await waitAnswerState(page, 'done');
    expect(await lastAssistant(page).locator('.answer').textContent()).toBe('A plain answer.\n');
  });

  it('max_tokens past what the context leaves is named as the fix, not a new chat; a message too long alone, to shorten', async ({ page }) => {
    await sendAndWait(page, 'Plain first');
    await page.fill('#max-tokens', '600'); // more than the whole 512-token context
    await sendAndWait(page, 'Plain follow-up', 'error');
    const said = (await lastAssistant(page).locator('.error').textContent())!;
    expect(said).toMatch(/max_tokens \(Settings\) asks for more than the \d+ tokens the context leaves for the answer: lower or clear it/);
    expect(said).not.toContain('New chat');
    expect(await retryButtons(page)).toBe(1);
    // As advised: cleared, the same message goes through in the same conversation.
    await page.fill('#max-tokens', '');
    await page.press('#prompt', 'Enter');
    await waitAnswerState(page, 'done');
    await page.click('#new-chat');
    await sendAndWait(page, `Plain ${'many words '.repeat(300)}`, 'error');
    expect(await lastAssistant(page).locator('.error').textContent()).toContain('shorten it to send it again');
    expect(await retryButtons(page)).toBe(0);
  });

  it('a sampling setting that is no number is pointed out, not silently replaced by the server default', async ({ page, chats }) => {
    await page.click('#temperature');
    await page.keyboard.type('1e'); // the field shows it; its value reads as empty
    await page.fill('#prompt', 'Plain, please');
    await page.press('#prompt', 'Enter');
    await page.waitForTimeout(300);
    expect(chats).toEqual([]);
    expect(await focused(page)).toBe('temperature');
    expect(await page.inputValue('#prompt')).toBe('Plain, please');
    await page.fill('#temperature', '0.3');
    await page.press('#prompt', 'Enter');
    await waitAnswerState(page, 'done');
    expect(chats.map((c) => c.temperature)).toEqual([0.3]);
  });

  it('text selected in an answer stays selected while the rest streams in, which then follows', async ({ page, errors }) => {
    await page.fill('#prompt', 'Slow, please');
    await page.press('#prompt', 'Enter');
    await answerPast(page, 60);
    await page.evaluate(() => {
      const p = document.querySelector('.msg.assistant:last-child .answer p')!;
      const range = document.createRange();
      range.selectNodeContents(p);
      getSelection()!.removeAllRanges();
      getSelection()!.addRange(range);
    });
    await page.waitForTimeout(500);
    expect(await lastAssistant(page).getAttribute('data-state')).toBe('streaming');
    expect(await page.evaluate(() => getSelection()!.toString())).toBe('First paragraph to copy.');
    await page.evaluate(() => getSelection()!.removeAllRanges());
    await waitAnswerState(page, 'done');
    const text = (await lastAssistant(page).locator('.answer').textContent())!;
    expect(text.startsWith('First paragraph to copy.')).toBe(true);
    expect(text.trimEnd().endsWith('The end.')).toBe(true);
    expect(errors).toEqual([]);
  });

  it('a setting typed and followed at once by a reload is kept', async ({ page }) => {
    await page.fill('#max-tokens', '77');
    await page.fill('#system-prompt', 'Be brief.');
    await page.reload();
    expect(await page.inputValue('#max-tokens')).toBe('77');
    expect(await page.inputValue('#system-prompt')).toBe('Be brief.');
  });

  it('messages say who wrote them; the list is marked busy while an answer streams', async ({ page }) => {
    await page.fill('#prompt', 'Slow, please');
    await page.press('#prompt', 'Enter');
    await answerPast(page, 10);
    expect(await page.getAttribute('#messages', 'aria-busy')).toBe('true');
    await waitAnswerState(page, 'done');
    expect(await page.getAttribute('#messages', 'aria-busy')).toBe('false');
    expect(await page.getByRole('article', { name: 'You' }).locator('.text').textContent()).toBe('Slow, please');
    expect(await page.getByRole('article', { name: 'Answer' }).locator('.answer').textContent()).toContain('The end.');
  });
});
