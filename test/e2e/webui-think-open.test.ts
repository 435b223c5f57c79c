// The chat page in a real browser (Debian's Chromium via playwright-core) on a model whose chat
// template opens the think block in its generation prompt, as the Qwen3 *-Thinking-2507
// checkpoints' does whatever enable_thinking says, so the model writes only `</think>`. With the
// think block inline (the default) or split off by the reasoning parser, and the Thinking switch on
// or off: the reasoning streams into the think block, never into the answer; an answer cut at
// max_tokens before `</think>` is shown as thinking cut off, and no empty answer goes back to the
// server. Replies come from ScriptedEngine.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { openingThinkTemplate, ScriptedEngine } from './scripted-engine.js';
import { loadTiny, type TinyModel } from './server-harness.js';
import { itWithPage, launchBrowser, type Browser } from './webui-browser.js';

const thought = 'The user asks for a thought.\n\nA second paragraph of it.';

let model: TinyModel;
const servers: Record<string, RunningServer> = {};
let browser: Browser;
const it = itWithPage(() => browser);

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  const scripted = new ScriptedEngine(
    model.engine,
    model.tokenizer,
    [
      { whenPromptHas: 'Think it over', reply: `${thought}\n</think>\n\nThe answer.` },
      { whenPromptHas: 'Ponder', reply: `${'pondering '.repeat(100)}\n</think>\n\nDone.` },
    ],
    { delayMs: 5 },
  );
  const deps = { engine: scripted, tokenizer: model.tokenizer, template: openingThinkTemplate(model.template), extraRoutes: webUiRoutes() };
  for (const [name, reasoningParser] of [['inline', false], ['reasoning parser', true]] as const) {
    servers[name] = await startServer(deps, { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true, reasoningParser });
    await servers[name].ready;
  }
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  for (const s of Object.values(servers)) await s.close();
  await model?.engine.close();
});

async function send(p: Page, text: string): Promise<void> {
  const before = await p.locator('.msg.assistant').count();
  await p.fill('#prompt', text);
  await p.press('#prompt', 'Enter');
  await p.waitForFunction((n) => document.querySelectorAll('.msg.assistant').length > n && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', before, { timeout: 60_000 });
}

/** The last answer as the page shows it. */
function lastAnswer(p: Page) {
  return p.evaluate(() => {
    const last = document.querySelector('.msg.assistant:last-child')!;
    const think = last.querySelector('details.think') as HTMLDetailsElement;
    return {
      thinkShown: !think.hidden,
      thinkOpen: think.open,
      thought: last.querySelector('.think-text')!.textContent,
      answer: last.querySelector('.answer')!.textContent,
      meta: last.querySelector('.meta')!.textContent,
      buttons: [...last.querySelectorAll('button')].map((b) => b.getAttribute('aria-label')),
    };
  });
}

describe('web chat page on a template that opens the think block itself', () => {
  for (const name of ['inline', 'reasoning parser']) {
    for (const thinking of [true, false]) {
      it(`${name}, Thinking ${thinking ? 'on' : 'off'}: the reasoning is the think block, whole or cut before </think>`, async ({ page, errors, chats }) => {
        await page.goto(servers[name].url);
        await page.waitForSelector('#model-status[data-state="ok"]', { timeout: 30_000 });
        await page.setChecked('#thinking', thinking);
        // Any reasoning shown as the answer while it streams is caught here.
        await page.evaluate(() => {
          new MutationObserver(() => {
            const answer = document.querySelector('.msg.assistant:last-child .answer');
            if (answer && /user asks|pondering/.test(answer.textContent ?? '')) (window as any).reasoningInAnswer = true;
          }).observe(document.getElementById('messages')!, { childList: true, subtree: true, characterData: true });
        });

        await send(page, 'Think it over');
        const whole = await lastAnswer(page);
        expect(whole).toMatchObject({ thinkShown: true, thinkOpen: false, thought, answer: 'The answer.\n', buttons: ['Copy answer', 'Regenerate answer'] });
        expect(whole.meta).not.toContain('cut');

        await page.fill('#max-tokens', '12');
        await send(page, 'Ponder this');
        const cut = await lastAnswer(page);
        expect(cut.meta).toContain('cut at max_tokens while still thinking, before any answer: raise max_tokens or set a Thinking budget');
        expect(cut).toMatchObject({ thinkShown: true, thinkOpen: true, answer: '', buttons: ['Regenerate answer'] });
        expect(cut.thought).toMatch(/^pondering pondering/);
        expect(await page.evaluate(() => (window as any).reasoningInAnswer ?? false)).toBe(false);

        await page.fill('#max-tokens', '');
        await send(page, 'Think it over again');
        expect(chats.map((c) => c.enable_thinking)).toEqual([thinking, thinking, thinking]);
        // The answer goes back without its reasoning; the one cut while thinking not at all.
        expect(chats.at(-1).messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
          ['user', 'Think it over'],
          ['assistant', 'The answer.'],
          ['user', 'Ponder this'],
          ['user', 'Think it over again'],
        ]);
        expect(errors).toEqual([]);
      });
    }
  }
});
