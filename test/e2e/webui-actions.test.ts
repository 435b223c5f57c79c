// The chat page's message actions in a real browser (Debian's Chromium via playwright-core)
// against the real server with recorded replies (ScriptedEngine): Copy on a code block copies the
// code alone and Copy on an answer its markdown without the think block, through the clipboard
// API or, where a page over plain http has none, the textarea fallback; Regenerate sends the
// conversation without the last answer and shows one answer in its place; Edit sends the changed
// message with everything after it dropped; Retry sends a failed turn's conversation again, after
// an error answer, after a dropped connection and after a stream closed before the server finished
// (whose part stays shown); Escape stops an answer and is left alone otherwise; the buttons are
// named, reachable by keyboard, off while an answer streams, and keep working after an error, a
// Stop and a New chat.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import type { Route } from '../../src/server/router.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { ScriptedEngine } from './scripted-engine.js';
import { loadTiny, type TinyModel } from './server-harness.js';
import { itWithPage, launchBrowser, type Browser, sendAndWait, waitAnswerState } from './webui-browser.js';

const code = 'echo "a  b" && ls -la\n\n\tprintf \'%s\\n\' <done>';
const codeAnswer = `Run this:\n\n\`\`\`bash\n${code}\n\`\`\`\n\nThat is **all**. ${'More words after the code. '.repeat(40)}`;
const polling = { timeout: 30_000, interval: 50 };

let model: TinyModel;
let server: RunningServer;
let browser: Browser;
const it = itWithPage(() => browser);

const lastAssistant = (p: Page) => p.locator('.msg.assistant').last();
const button = (p: Page, name: string) => p.getByRole('button', { name, exact: true });
const answerText = (p: Page) => lastAssistant(p).locator('.answer').textContent();
const focusedName = (p: Page) => p.evaluate(() => document.activeElement?.id || document.activeElement?.getAttribute('aria-label'));

/** SSE chunks with these deltas; the last one carries finish (null: the stream never says it ended). */
function sse(deltas: object[], finish: string | null = null): string {
  return deltas
    .map((delta, i) => {
      const chunk = { id: 'chatcmpl-cut', object: 'chat.completion.chunk', created: 0, model: 'qwen3', choices: [{ index: 0, delta, finish_reason: i === deltas.length - 1 ? finish : null }] };
      return `data: ${JSON.stringify(chunk)}\n\n`;
    })
    .join('');
}

/** Half an answer, then the connection is torn down: what a server that dies mid-answer leaves. */
const connectionLostRoute: Route = {
  method: 'POST',
  path: '/test/connection-lost',
  guard: 'open',
  handler: async ({ res }) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(sse([{ content: 'Half of it' }]));
    await new Promise((r) => setTimeout(r, 200));
    res.socket?.destroy();
  },
};

/** The clipboard as another page of the browser reads it. */
async function clipboard(): Promise<string> {
  const reader = await browser.context.newPage();
  try {
    await reader.goto(`${server.url}/ui/style.css`);
    return await reader.evaluate(() => navigator.clipboard.readText());
  } finally {
    await reader.close();
  }
}

async function setClipboard(text: string): Promise<void> {
  const writer = await browser.context.newPage();
  await writer.goto(`${server.url}/ui/style.css`);
  await writer.evaluate((t) => navigator.clipboard.writeText(t), text);
  await writer.close();
}

beforeAll(async () => {
  model = await loadTiny('tiny-a', { maxSeqLen: 4096 });
  const scripted = new ScriptedEngine(
    model.engine,
    model.tokenizer,
    [
      { whenPromptHas: 'Plain', reply: 'A plain answer.' },
      { whenPromptHas: 'Code please', reply: `<think>\nPlanning the snippet.\n</think>\n\n${codeAnswer}` },
      { whenPromptHas: 'Edited question', reply: 'The edited answer.' },
      { whenPromptHas: 'Slow', reply: 'word '.repeat(600) },
    ],
    { delayMs: 15 },
  );
  server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, extraRoutes: [...webUiRoutes(), connectionLostRoute] }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true });
  await server.ready;
  browser = await launchBrowser();
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await model?.engine.close();
});

async function open(p: Page): Promise<void> {
  await p.goto(server.url);
  await expect.poll(() => p.textContent('#model-status'), polling).toBe('model qwen3');
}

describe('web chat page message actions', () => {
  it('Copy on a code block copies the code alone, Copy on an answer its markdown without the think block; neither while it streams', async ({ page, errors }) => {
    await open(page);
    await page.fill('#prompt', 'Code please');
    await page.press('#prompt', 'Enter');
    // Waits for code text inside the block: before the fence's line ends (say at "```ba") the
    // block already shows, with the language not yet known.
    await page.waitForFunction(() => document.querySelector('.msg.assistant:last-child[data-state="streaming"] .code-block pre')?.textContent?.includes('echo'), null, { timeout: 60_000 });
    const whileStreaming = await page.evaluate(() => ({
      state: document.querySelector('.msg.assistant:last-child')!.getAttribute('data-state'),
      shownButtons: [...document.querySelectorAll('.msg.assistant button')].filter((b) => (b as HTMLElement).offsetParent !== null).length,
      language: document.querySelector('.code-lang')!.textContent,
    }));
    expect(whileStreaming).toEqual({ state: 'streaming', shownButtons: 0, language: 'bash' });
    await waitAnswerState(page, 'done');

    await setClipboard('before');
    await button(page, 'Copy code').click();
    await expect.poll(() => lastAssistant(page).locator('.copy-code').textContent(), polling).toBe('Copied');
    expect(await clipboard()).toBe(code);
    // The label comes back for the next copy.
    await expect.poll(() => button(page, 'Copy code').textContent(), polling).toBe('Copy');

    await button(page, 'Copy answer').click();
    await expect.poll(() => lastAssistant(page).locator('.msg-actions button').first().textContent(), polling).toBe('Copied');
    expect(await clipboard()).toBe(codeAnswer);
    expect(errors).toEqual([]);
  });

  it('without navigator.clipboard (plain http away from localhost) the hidden-textarea fallback copies', async ({ page, errors }) => {
    await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined }));
    await open(page);
    expect(await page.evaluate(() => navigator.clipboard)).toBeUndefined();
    await sendAndWait(page, 'Code please');
    await setClipboard('before');
    await page.bringToFront();
    await button(page, 'Copy code').focus();
    await page.keyboard.press('Enter');
    await expect.poll(() => lastAssistant(page).locator('.copy-code').textContent(), polling).toBe('Copied');
    expect(await page.locator('.clipboard-proxy').count()).toBe(0);
    expect(await focusedName(page)).toBe('Copied'); // focus is back on the button
    expect(await clipboard()).toBe(code);
    expect(errors).toEqual([]);
  });

  it('Regenerate sends the conversation without the last answer, with the settings as they are now, and shows one answer', async ({ page, errors, chats }) => {
    await open(page);
    await sendAndWait(page, 'Plain one');
    await sendAndWait(page, 'Plain two');
    // Offered on the last answer only.
    expect(await page.locator('.regenerate').evaluateAll((bs) => bs.map((b) => (b as HTMLElement).offsetParent !== null))).toEqual([false, true]);
    expect(await button(page, 'Regenerate answer').count()).toBe(1);
    await page.evaluate(() => ((document.querySelector('.msg.assistant:last-child') as any).replaced = true));
    await page.fill('#temperature', '0.4');
    await lastAssistant(page).getByRole('button', { name: 'Regenerate answer' }).click();
    await page.waitForFunction(() => !(document.querySelector('.msg.assistant:last-child') as any).replaced && document.querySelector('.msg.assistant:last-child')!.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats).toHaveLength(3);
    expect(chats[2].messages).toEqual(chats[1].messages);
    expect(chats[2].messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(chats[2].temperature).toBe(0.4);
    expect(await page.locator('.msg').evaluateAll((els) => els.map((e) => e.getAttribute('aria-label')))).toEqual(['You', 'Answer', 'You', 'Answer']);
    expect(await answerText(page)).toBe('A plain answer.\n');
    expect(await focusedName(page)).toBe('prompt');
    // The regenerated answer is the one the next turn sends back.
    await sendAndWait(page, 'Plain three');
    expect(chats[3].messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user']);
    expect(errors).toEqual([]);
  });

  it('Edit puts the message in an editor under it; sending drops it and everything after, Escape leaves all as it was', async ({ page, errors, chats }) => {
    await open(page);
    await sendAndWait(page, 'Plain one');
    await sendAndWait(page, 'Plain two');
    await sendAndWait(page, 'Plain three');
    await page.locator('.msg.user').nth(1).getByRole('button', { name: 'Edit message' }).click();
    const editor = page.getByRole('textbox', { name: 'Edit message' });
    expect(await editor.inputValue()).toBe('Plain two');
    expect(await focusedName(page)).toBe('Edit message');
    await page.keyboard.press('Escape');
    expect(await editor.count()).toBe(0);
    expect(await page.locator('.msg.user .text').allTextContents()).toEqual(['Plain one', 'Plain two', 'Plain three']);
    expect(await focusedName(page)).toBe('Edit message'); // back on the button
    expect(chats).toHaveLength(3);

    await page.keyboard.press('Enter'); // the focused Edit button opens the editor again
    await editor.fill('Edited question\nwith a second line');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 4 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats).toHaveLength(4);
    expect(chats[3].messages).toEqual([
      { role: 'user', content: 'Plain one' },
      { role: 'assistant', content: 'A plain answer.' },
      { role: 'user', content: 'Edited question\nwith a second line' },
    ]);
    expect(await page.locator('.msg.user .text').allTextContents()).toEqual(['Plain one', 'Edited question\nwith a second line']);
    expect(await answerText(page)).toBe('The edited answer.\n');

    // The first message too: the whole conversation starts again from it.
    await page.locator('.msg.user').first().getByRole('button', { name: 'Edit message' }).click();
    await editor.fill('Plain again');
    await page.getByRole('button', { name: 'Send edited message' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 2 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats[4].messages).toEqual([{ role: 'user', content: 'Plain again' }]);
    expect(errors).toEqual([]);
  });

  it('Retry on a failed turn sends the same conversation again with the settings as they are now, in place of the failed pair', async ({ page, errors, chats }) => {
    await open(page);
    await sendAndWait(page, 'Plain one');
    await page.fill('#max-tokens', '100000'); // refused by the server
    await sendAndWait(page, 'Plain two', 'error');
    expect(await page.inputValue('#prompt')).toBe('Plain two');
    await page.fill('#max-tokens', ''); // the fix the error names
    await lastAssistant(page).getByRole('button', { name: 'Retry message' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 4 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats).toHaveLength(3);
    expect(chats[2].messages).toEqual([
      { role: 'user', content: 'Plain one' },
      { role: 'assistant', content: 'A plain answer.' },
      { role: 'user', content: 'Plain two' },
    ]);
    expect(chats[2].messages).toEqual(chats[1].messages);
    expect([chats[1].max_tokens, chats[2].max_tokens]).toEqual([100000, undefined]);
    expect(await page.locator('.msg').evaluateAll((els) => els.map((e) => [e.getAttribute('aria-label'), e.getAttribute('data-state')]))).toEqual([
      ['You', null],
      ['Answer', 'done'],
      ['You', null],
      ['Answer', 'done'],
    ]);
    // The copy put back in the box was sent by Retry: it leaves the box.
    expect(await page.inputValue('#prompt')).toBe('');
    expect(await focusedName(page)).toBe('prompt');
    // The retried turn is part of the conversation now.
    await sendAndWait(page, 'Plain three');
    expect(chats[3].messages.map((m: any) => m.content)).toEqual(['Plain one', 'A plain answer.', 'Plain two', 'A plain answer.', 'Plain three']);
    expect(errors.filter((e) => !e.includes('400'))).toEqual([]);
  });

  it('Retry after a dropped connection; a message changed in the box stays there; an older failed turn offers no Retry', async ({ page, errors, chats }) => {
    await open(page);
    // The connection is reset before any answer, as by a server that went away.
    await page.route('**/v1/chat/completions', (route) => route.abort('connectionreset'), { times: 1 });
    await sendAndWait(page, 'Plain one', 'error');
    expect(await lastAssistant(page).locator('.error').textContent()).toMatch(/could not be reached or went away .*Retry sends it again/);
    await page.fill('#prompt', 'Plain one, changed');
    await lastAssistant(page).getByRole('button', { name: 'Retry message' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 2 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats.map((c) => c.messages)).toEqual([[{ role: 'user', content: 'Plain one' }], [{ role: 'user', content: 'Plain one' }]]);
    expect(await page.inputValue('#prompt')).toBe('Plain one, changed');

    // A failed turn followed by another message is no longer the end of the conversation.
    await page.route('**/v1/chat/completions', (route) => route.abort('connectionreset'), { times: 1 });
    await page.fill('#prompt', 'Plain two');
    await page.press('#prompt', 'Enter');
    await waitAnswerState(page, 'error');
    await sendAndWait(page, 'Plain three');
    expect(await page.locator('.retry').evaluateAll((bs) => bs.map((b) => (b as HTMLElement).offsetParent !== null))).toEqual([false]);
    expect(chats.at(-1).messages.map((m: any) => m.content)).toEqual(['Plain one', 'A plain answer.', 'Plain three']);
    expect(errors.filter((e) => !e.includes('ERR_CONNECTION_RESET'))).toEqual([]);
  });

  it('a stream closed before the server finished, cleanly or not: the part that came stays, the page says it was cut off, Retry asks again', async ({ page, errors, chats }) => {
    await open(page);
    // What a proxy that times out, or a server that restarts, leaves: a clean close mid-answer.
    await page.route('**/v1/chat/completions', (route) => route.fulfill({ contentType: 'text/event-stream', body: sse([{ role: 'assistant', content: '' }, { content: 'The first half' }, { content: ' of an answer' }]) }), { times: 1 });
    await sendAndWait(page, 'Plain one', 'error');
    expect(await answerText(page)).toBe('The first half of an answer\n');
    expect(await lastAssistant(page).locator('.error').textContent()).toBe(
      'The answer was cut off: the connection closed before the server finished it. Retry sends it again; your message is also back in the box, to change.',
    );
    expect(await lastAssistant(page).getByRole('button').evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')))).toEqual(['Retry message']);
    expect(await page.locator('.msg.user').last().getAttribute('data-state')).toBe('failed');
    expect(await page.inputValue('#prompt')).toBe('Plain one');
    await lastAssistant(page).getByRole('button', { name: 'Retry message' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 2 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(await answerText(page)).toBe('A plain answer.\n');
    expect(chats.map((c) => c.messages)).toEqual([[{ role: 'user', content: 'Plain one' }], [{ role: 'user', content: 'Plain one' }]]);

    // The connection lost mid-answer says so too.
    await page.route('**/v1/chat/completions', (route) => route.continue({ url: `${server.url}/test/connection-lost` }), { times: 1 });
    await sendAndWait(page, 'Plain lost', 'error');
    expect(await answerText(page)).toBe('Half of it\n');
    expect(await lastAssistant(page).locator('.error').textContent()).toMatch(/^The answer was cut off: the connection to the server was lost before it finished \(.+\); is it still running\? \(grpst ps\) Retry sends it again/);
    await page.fill('#prompt', '');

    // Cut while still thinking: the thinking is shown, and no longer said to be going on.
    await page.route('**/v1/chat/completions', (route) => route.fulfill({ contentType: 'text/event-stream', body: sse([{ content: '<think>\nHalf a ' }, { content: 'thought' }]) }), { times: 1 });
    await sendAndWait(page, 'Plain two', 'error');
    expect(await lastAssistant(page).locator('.error').textContent()).toMatch(/^The answer was cut off: the connection closed before the server finished it\./);
    expect(await lastAssistant(page).evaluate((el) => ({ open: el.querySelector('details')!.open, summary: el.querySelector('summary')!.textContent, thought: el.querySelector('.think-text')!.textContent }))).toEqual({ open: true, summary: 'Thought', thought: 'Half a thought' });
    await page.fill('#prompt', '');

    // A finish_reason is the end of the answer, with [DONE] after it or not.
    for (const done of ['data: [DONE]\n\n', '']) {
      await page.route('**/v1/chat/completions', (route) => route.fulfill({ contentType: 'text/event-stream', body: sse([{ content: 'A whole answer.' }, {}], 'stop') + done }), { times: 1 });
      await sendAndWait(page, 'Plain three');
      expect(await answerText(page)).toBe('A whole answer.\n');
      expect(await lastAssistant(page).getByRole('button').evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-label')))).toEqual(['Copy answer', 'Regenerate answer']);
    }
    expect(chats.at(-1).messages.map((m: any) => m.content)).toEqual(['Plain one', 'A plain answer.', 'Plain three', 'A whole answer.', 'Plain three']);
    expect(errors.filter((e) => !e.includes('ERR_INCOMPLETE_CHUNKED_ENCODING'))).toEqual([]);
  });

  it('Escape stops an answer as Stop does, keeping what is typed; with nothing streaming it is left alone', async ({ page, errors, chats }) => {
    await open(page);
    await page.fill('#prompt', 'Slow, please');
    await page.press('#prompt', 'Enter');
    await expect.poll(async () => ((await answerText(page)) ?? '').length, polling).toBeGreaterThan(10);
    await page.keyboard.type('a draft');
    await page.keyboard.press('Escape');
    await waitAnswerState(page, 'stopped');
    expect(await lastAssistant(page).locator('.meta').textContent()).toBe('stopped');
    const stoppedAt = await answerText(page);
    await page.waitForTimeout(300);
    expect(await answerText(page)).toBe(stoppedAt);
    expect(await page.inputValue('#prompt')).toBe('a draft');
    expect(await page.isVisible('#send')).toBe(true);

    // Nothing streaming: the key reaches the page unhandled (browser's own uses keep working).
    await page.evaluate(() => window.addEventListener('keydown', (e) => e.key === 'Escape' && ((window as any).escapeDefaultPrevented = e.defaultPrevented)));
    await page.keyboard.press('Escape');
    expect(await page.evaluate(() => (window as any).escapeDefaultPrevented)).toBe(false);
    expect(await page.inputValue('#prompt')).toBe('a draft');
    await page.keyboard.type(' goes on');
    expect(await page.inputValue('#prompt')).toBe('a draft goes on');
    expect(chats).toHaveLength(1);
    expect(errors).toEqual([]);
  });

  it('the buttons are reachable by keyboard, off while an answer streams, and keep working after a Stop, an error and a New chat', async ({ page, errors, chats }) => {
    await open(page);
    await sendAndWait(page, 'Plain one');
    // Shift+Tab from the message box reaches the last answer's buttons.
    await page.focus('#prompt');
    await page.keyboard.press('Shift+Tab');
    expect(await focusedName(page)).toBe('Regenerate answer');
    await page.keyboard.press('Shift+Tab');
    expect(await focusedName(page)).toBe('Copy answer');

    await page.fill('#prompt', 'Slow, please');
    await page.press('#prompt', 'Enter');
    await expect.poll(async () => ((await answerText(page)) ?? '').length, polling).toBeGreaterThan(10);
    const whileStreaming = await page.evaluate(() => ({
      edits: [...document.querySelectorAll<HTMLButtonElement>('.msg.user button')].map((b) => b.disabled),
      regenerateShown: [...document.querySelectorAll<HTMLElement>('.regenerate')].filter((b) => b.offsetParent !== null).length,
      streamingButtons: document.querySelectorAll('.msg.assistant:last-child button').length,
    }));
    expect(whileStreaming).toEqual({ edits: [true, true], regenerateShown: 0, streamingButtons: 0 });
    await page.click('#stop');
    await waitAnswerState(page, 'stopped');
    expect(await page.locator('.msg.user button').evaluateAll((bs) => bs.map((b) => (b as HTMLButtonElement).disabled))).toEqual([false, false]);
    // A stopped answer can be regenerated: the conversation sent again ends with its question.
    await page.fill('#max-tokens', '100000'); // refused by the server: this time the turn fails
    await lastAssistant(page).getByRole('button', { name: 'Regenerate answer' }).click();
    await waitAnswerState(page, 'error');
    expect(chats[2].messages).toEqual(chats[1].messages);
    // The failed message went back to the box: it has no Edit; the earlier one still does.
    expect(await page.locator('.msg.user').last().getAttribute('data-state')).toBe('failed');
    expect(await page.locator('.msg.user').last().getByRole('button').count()).toBe(0);
    expect(await page.inputValue('#prompt')).toBe('Slow, please');
    await page.fill('#max-tokens', '');
    await page.locator('.msg.user').first().getByRole('button', { name: 'Edit message' }).click();
    await page.getByRole('textbox', { name: 'Edit message' }).fill('Plain edited');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 2 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats.at(-1).messages).toEqual([{ role: 'user', content: 'Plain edited' }]);

    await page.click('#new-chat');
    await sendAndWait(page, 'Plain after new chat');
    await lastAssistant(page).getByRole('button', { name: 'Regenerate answer' }).click();
    await page.waitForFunction(() => document.querySelectorAll('.msg').length === 2 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(chats.at(-1).messages).toEqual([{ role: 'user', content: 'Plain after new chat' }]);
    expect(await answerText(page)).toBe('A plain answer.\n');
    expect(errors.filter((e) => !e.includes('400'))).toEqual([]);
  });
});
