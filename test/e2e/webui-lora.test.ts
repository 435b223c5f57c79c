// The web chat page on a server with LoRA adapters (lora_modules), in real Chromium: a list beside
// the status offers the model and each adapter, the pick goes out as the request's "model" and
// the answer is that adapter's; on a server without adapters there is no list at all.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';
import { itWithPage, launchBrowser, type Browser } from './webui-browser.js';
import { loadTiny, type TinyModel } from './server-harness.js';

const polling = { timeout: 30_000, interval: 50 };
let model: TinyModel;
let withAdapters: RunningServer;
let plain: RunningServer;
let browser: Browser;
const it = itWithPage(() => browser);

beforeAll(async () => {
  model = await loadTiny('tiny-b');
  const start = async (loraModules?: { name: string; path: string }[]) => {
    const server = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, extraRoutes: webUiRoutes() }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, loraModules });
    await server.ready;
    return server;
  };
  withAdapters = await start([{ name: 'sql', path: loraAdapter('tiny-b-lora-all') }, { name: 'style', path: loraAdapter('tiny-b-lora-qv') }]);
  plain = await start();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await withAdapters?.close();
  await plain?.close();
  await model?.engine.close();
});

/** Sends one message at temperature 0 and returns the finished answer's text. */
async function ask(page: Page, text: string): Promise<string> {
  await page.fill('#temperature', '0');
  await page.fill('#max-tokens', '8');
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
  await page.waitForFunction(() => document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', undefined, { timeout: 60_000 });
  return (await page.locator('.msg.assistant').last().locator('.answer').textContent()) ?? '';
}

describe('the model list on the chat page', () => {
  it('offers the model and its adapters; the pick is sent as the model and answers as that adapter', async ({ page, errors, chats }) => {
    await page.goto(withAdapters.url);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('model qwen3');
    expect(await page.isVisible('#model-select')).toBe(true);
    expect(await page.locator('#model-select option').evaluateAll((os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]))).toEqual([
      ['qwen3', 'qwen3'],
      ['sql', 'sql (LoRA)'],
      ['style', 'style (LoRA)'],
    ]);
    const base = await ask(page, 'Name a color.');
    await page.click('#new-chat');
    await page.selectOption('#model-select', 'sql');
    expect(await page.textContent('#model-status')).toBe('model sql');
    const adapted = await ask(page, 'Name a color.');
    expect(chats.map((c) => c.model)).toEqual(['qwen3', 'sql']);
    expect(adapted.trim().length).toBeGreaterThan(0);
    expect(adapted).not.toBe(base);
    // The answer is the adapter's: the same request through the API gives the same text.
    const api = await fetch(`${withAdapters.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...chats[1], stream: false, stream_options: undefined }),
    });
    const answer = await api.json();
    expect(answer.model).toBe('sql');
    expect(answer.choices[0].message.content).toContain(adapted.trim());
    expect(errors).toEqual([]);
  });

  it('shows no list where the server serves no adapter', async ({ page }) => {
    await page.goto(plain.url);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('model qwen3');
    expect(await page.isVisible('#model-select')).toBe(false);
  });
});
