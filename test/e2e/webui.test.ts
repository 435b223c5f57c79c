// The web chat page in a real browser (Debian's Chromium via playwright-core) against the real
// server on the tiny fixture model: streaming, the think block apart from the answer, the
// thinking toggle, sampling settings, stop, multi-turn history, markdown without HTML injection,
// the API key, and what a reload keeps. Think blocks and markdown come from recorded outputs
// (ScriptedEngine): the random-weight model writes neither.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions, type ServerOptions } from '../../src/server/options.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { ScriptedEngine } from './scripted-engine.js';
import { get, loadTiny, metric, waitFor, type TinyModel } from './server-harness.js';
import { itWithPage, launchBrowser, screenshot, type Browser } from './webui-browser.js';

const thinkReply = [
  '<think>',
  'The user wants to see formatting. A list and a code block will do; raw HTML must stay text.',
  '</think>',
  '',
  'Here is **bold** text and a list:',
  '',
  '- streaming tokens',
  '- a collapsed think block',
  '',
  '```js',
  "console.log('hello');",
  '```',
  '',
  'Raw HTML stays text: <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> and [a link](javascript:window.__xss=3).',
].join('\n');

const apiKey = 'webui-test-key-0123';
/** Page loads and model answers take a while on a busy two-core machine. */
const polling = { timeout: 30_000, interval: 50 };
let model: TinyModel;
let scripted: ScriptedEngine;
let open: RunningServer;
let keyed: RunningServer;
let browser: Browser;
const it = itWithPage(() => browser);

async function start(overrides: Partial<ServerOptions>): Promise<RunningServer> {
  const options: ServerOptions = { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true, ...overrides };
  const server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, extraRoutes: webUiRoutes() }, options);
  await server.ready;
  return server;
}

const metrics = async (server: RunningServer) => (await get(`${server.url}/metrics`, { authorization: `Bearer ${apiKey}` })).text;
const lastAssistant = (p: Page) => p.locator('.msg.assistant').last();
const stateOf = (p: Page) => lastAssistant(p).getAttribute('data-state');

async function sendMessage(p: Page, text: string): Promise<void> {
  await p.fill('#prompt', text);
  await p.press('#prompt', 'Enter');
}

async function waitDone(p: Page, state = 'done'): Promise<void> {
  await p.waitForFunction((s) => document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === s, state, { timeout: 60_000 });
}

beforeAll(async () => {
  model = await loadTiny('tiny-a', { maxSeqLen: 4096 });
  scripted = new ScriptedEngine(
    model.engine,
    model.tokenizer,
    [
      { whenPromptHas: 'Show me some formatting', reply: thinkReply },
      { whenPromptHas: 'Answer plainly', reply: 'A plain answer.' },
    ],
    { delayMs: 15 },
  );
  open = await start({});
  keyed = await start({ apiKey });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await open?.close();
  await keyed?.close();
  await model?.engine.close();
});

describe('web chat page', () => {
  it('is served at / and /ui with a strict content security policy', async ({ page }) => {
    for (const p of ['/', '/ui']) {
      const r = await get(`${open.url}${p}`);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(r.headers['content-security-policy']).toContain("script-src 'self'");
      expect(r.text).toContain('<script type="module" src="/ui/app.js"></script>');
    }
    const md = await get(`${open.url}/ui/markdown-it.min.js`);
    expect(md.status).toBe(200);
    expect(md.headers['content-type']).toBe('text/javascript; charset=utf-8');
    // The page itself needs no key: the key guards the API it calls.
    expect((await get(`${keyed.url}/`)).status).toBe(200);
    expect((await get(`${keyed.url}/v1/models`)).status).toBe(401);
  });

  it('streams an answer from the model, with the sampling settings in the request', async ({ page, errors, chats }) => {
    await page.goto(open.url);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('model qwen3');
    await page.fill('#max-tokens', '96');
    await page.fill('#temperature', '0.5');
    await page.fill('#top-k', '20');
    await page.fill('#thinking-budget', '64');
    // Record, as the page changes, each length the answer had and whether Stop was offered.
    await page.evaluate(() => {
      const w = window as any;
      w.__lengths = new Set();
      w.__stopSeen = false;
      new MutationObserver(() => {
        const answer = document.querySelector('.msg.assistant .answer');
        if (answer?.textContent) w.__lengths.add(answer.textContent.length);
        if (!document.getElementById('stop')!.hidden) w.__stopSeen = true;
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
    await sendMessage(page, 'Hello there');
    await waitDone(page);
    expect(await page.evaluate(() => (window as any).__stopSeen)).toBe(true);
    expect(await page.evaluate(() => (window as any).__lengths.size)).toBeGreaterThanOrEqual(3);
    expect(await page.isVisible('#send')).toBe(true);
    expect(await page.isVisible('#stop')).toBe(false);
    expect(await page.locator('.msg.user .text').textContent()).toBe('Hello there');
    expect((await lastAssistant(page).locator('.answer').textContent())!.length).toBeGreaterThan(0);
    expect(await lastAssistant(page).locator('.meta').textContent()).toMatch(/^96 tokens, [\d.]+ tokens\/s · cut at max_tokens$/);
    expect(chats).toHaveLength(1);
    expect(chats[0]).toMatchObject({ model: 'qwen3', stream: true, enable_thinking: true, max_tokens: 96, temperature: 0.5, top_k: 20, thinking_token_budget: 64, messages: [{ role: 'user', content: 'Hello there' }] });
    expect(chats[0]).not.toHaveProperty('top_p');
    expect(errors).toEqual([]);
  });

  it('shows the think block collapsed and apart from a markdown answer; HTML in the answer stays text', async ({ page, errors }) => {
    await page.goto(open.url);
    await sendMessage(page, 'Show me some formatting');
    const think = lastAssistant(page).locator('details.think');
    await expect.poll(() => think.isVisible(), polling).toBe(true);
    expect(await think.getAttribute('open')).toBeNull();
    await waitDone(page);
    const answer = lastAssistant(page).locator('.answer');
    expect(await answer.locator('strong').textContent()).toBe('bold');
    expect(await answer.locator('li').allTextContents()).toEqual(['streaming tokens', 'a collapsed think block']);
    expect(await answer.locator('pre code').textContent()).toBe("console.log('hello');\n");
    expect(await answer.textContent()).not.toContain('The user wants to see formatting');
    expect(await answer.textContent()).toContain('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script>');
    expect(await answer.locator('img, script').count()).toBe(0);
    expect(await answer.locator('a[href^="javascript"]').count()).toBe(0);
    expect(await page.evaluate(() => (window as any).__xss)).toBeUndefined();
    expect(await think.locator('summary').textContent()).toMatch(/^Thought for [\d.]+ s$/);
    expect(await think.locator('.think-text').isVisible()).toBe(false);
    await think.locator('summary').click();
    expect(await think.locator('.think-text').textContent()).toBe('The user wants to see formatting. A list and a code block will do; raw HTML must stay text.');
    await screenshot(page, 'webui.png');
    expect(errors).toEqual([]);
  });

  it('the thinking toggle reaches the template; the history goes back without think blocks', async ({ page, chats }) => {
    await page.goto(open.url);
    await sendMessage(page, 'Show me some formatting');
    await waitDone(page);
    await page.uncheck('#thinking');
    const before = scripted.matched.length;
    await sendMessage(page, 'Answer plainly');
    await waitDone(page);
    expect(await lastAssistant(page).locator('.answer').textContent()).toBe('A plain answer.\n');
    expect(chats.map((c) => c.enable_thinking)).toEqual([true, false]);
    const history = chats[1].messages;
    expect(history.map((m: any) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(history[1].content).toMatch(/^Here is \*\*bold\*\* text/);
    expect(history[1].content).not.toContain('<think>');
    // Thinking off: Qwen3's template closes an empty think block in the prompt.
    expect(scripted.matched[before].prompt.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n')).toBe(true);
    expect(await page.locator('.msg').count()).toBe(4);
  });

  it('Stop cancels the request: the answer stops growing and the server frees the slot', async ({ page, errors, chats }) => {
    const cancelledBefore = cancelledCount(await metrics(open));
    await page.goto(open.url);
    await page.fill('#max-tokens', '3000');
    await sendMessage(page, 'Write a long story');
    const answer = lastAssistant(page).locator('.answer');
    await expect.poll(async () => ((await answer.textContent()) ?? '').length, polling).toBeGreaterThan(10);
    await page.click('#stop');
    await waitDone(page, 'stopped');
    expect(await lastAssistant(page).locator('.meta').textContent()).toBe('stopped');
    const stoppedAt = await answer.textContent();
    await waitFor(async () => cancelledCount(await metrics(open)) > cancelledBefore, 30_000);
    expect(metric(await metrics(open), 'grpst_requests_running')).toBe(0);
    await page.waitForTimeout(300);
    expect(await answer.textContent()).toBe(stoppedAt);
    expect(await page.isVisible('#send')).toBe(true);
    // The stopped answer stays in the conversation.
    await sendMessage(page, 'Answer plainly');
    await waitDone(page);
    expect(chats[1].messages.map((m: any) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(errors).toEqual([]);
  });

  it('works with an API key kept for this tab only; a reload keeps the key but not the conversation', async ({ page, errors, chats }) => {
    await page.goto(keyed.url);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('API key needed (Settings)');
    await sendMessage(page, 'Answer plainly');
    await waitDone(page, 'error');
    expect(await lastAssistant(page).locator('.error').textContent()).toContain('Set the API key in Settings.');

    await page.fill('#api-key', apiKey);
    await page.press('#api-key', 'Tab');
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('model qwen3');
    await sendMessage(page, 'Answer plainly');
    await waitDone(page);
    // The failed turn was not kept: the retry sends one user message.
    expect(chats.at(-1).messages).toEqual([{ role: 'user', content: 'Answer plainly' }]);

    // Reload in the middle of a long answer: the request is cancelled, the page starts empty.
    const cancelledBefore = cancelledCount(await metrics(keyed));
    await page.fill('#max-tokens', '3000');
    await page.press('#max-tokens', 'Tab');
    await sendMessage(page, 'Write a long story');
    await expect.poll(async () => ((await lastAssistant(page).locator('.answer').textContent()) ?? '').length, polling).toBeGreaterThan(10);
    await page.reload();
    await waitFor(async () => cancelledCount(await metrics(keyed)) > cancelledBefore, 30_000);
    expect(metric(await metrics(keyed), 'grpst_requests_running')).toBe(0);
    expect(await page.locator('.msg').count()).toBe(0);
    expect(await page.inputValue('#prompt')).toBe('');
    expect(await page.inputValue('#api-key')).toBe(apiKey);
    expect(await page.inputValue('#max-tokens')).toBe('3000');
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('model qwen3');
    expect(await page.evaluate(() => localStorage.length)).toBe(0);
    expect(page.url()).not.toContain(apiKey);

    // Another tab does not get the key.
    const other = await browser.context.newPage();
    await other.goto(keyed.url);
    expect(await other.inputValue('#api-key')).toBe('');
    await other.close();
    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
  });

  it('New chat forgets the conversation, also in the middle of an answer', async ({ page, chats }) => {
    await page.goto(open.url);
    await sendMessage(page, 'Answer plainly');
    await waitDone(page);
    await page.fill('#max-tokens', '3000');
    await sendMessage(page, 'Write a long story');
    await expect.poll(async () => ((await lastAssistant(page).locator('.answer').textContent()) ?? '').length, polling).toBeGreaterThan(10);
    await page.click('#new-chat');
    expect(await page.locator('.msg').count()).toBe(0);
    await expect.poll(() => page.isVisible('#send'), polling).toBe(true);
    await sendMessage(page, 'Answer plainly');
    await waitDone(page);
    expect(chats.at(-1).messages).toEqual([{ role: 'user', content: 'Answer plainly' }]);
    expect(await page.locator('.msg').count()).toBe(2);
  });
});

function cancelledCount(text: string): number {
  const m = /^grpst_request_finished_total\{reason="cancelled"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}
