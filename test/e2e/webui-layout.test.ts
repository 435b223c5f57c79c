// The web chat page as it looks and behaves around the answers, in a real browser (Debian's
// Chromium via playwright-core): a phone-sized screen keeps the header, messages, composer and
// settings usable, held sideways too; long words, URLs and wide tables stay inside their bubbles;
// table alignment survives the content security policy; a reader scrolled up is not pulled down
// while an answer streams, and once the list is full each new answer is scrolled into view; empty
// think blocks are not shown; a cut answer says what cut it, and one cut while still thinking is
// not sent back as an empty answer; a failed turn gives the message back to send again; a wrong
// API key is called refused. Replies come from ScriptedEngine.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions, type ServerOptions } from '../../src/server/options.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { ScriptedEngine } from './scripted-engine.js';
import { loadTiny, type TinyModel } from './server-harness.js';
import { itWithPage, launchBrowser, type Browser } from './webui-browser.js';

const longUrl = `https://example.com/${'segment'.repeat(45)}`;
const wideTable = ['| a | b | c | d | e | f | g | h | i | j | k | l |', '|:--|--:|:-:|---|---|---|---|---|---|---|---|---|', `| left | right | center | ${'wide cell '.repeat(4)} | e | f | g | h | i | j | k | l |`].join('\n');
const longAnswer = Array.from({ length: 25 }, (_, i) => `Paragraph ${i} of a long answer.`).join('\n\n');
const polling = { timeout: 30_000, interval: 50 };

let model: TinyModel;
let server: RunningServer;
let keyed: RunningServer;
let browser: Browser;
const it = itWithPage(() => browser);

async function start(overrides: Partial<ServerOptions>, scripted: ScriptedEngine): Promise<RunningServer> {
  const s = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, extraRoutes: webUiRoutes() }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true, ...overrides });
  await s.ready;
  return s;
}

async function send(p: Page, text: string, state = 'done'): Promise<void> {
  const before = await p.locator('.msg.assistant').count();
  await p.fill('#prompt', text);
  await p.press('#prompt', 'Enter');
  await p.waitForFunction(([n, s]) => document.querySelectorAll('.msg.assistant').length > (n as number) && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === s, [before, state], { timeout: 60_000 });
}

beforeAll(async () => {
  // A short context, so an answer without max_tokens can run into it.
  model = await loadTiny('tiny-a', { maxSeqLen: 512 });
  const scripted = new ScriptedEngine(
    model.engine,
    model.tokenizer,
    [
      { whenPromptHas: 'Plain', reply: 'A plain answer.' },
      { whenPromptHas: 'Wide things', reply: `A link: ${longUrl}\n\n${wideTable}` },
      { whenPromptHas: 'Long answer', reply: longAnswer },
      { whenPromptHas: 'Empty thought', reply: '<think>\n\n</think>\n\nOnly answer.' },
      { whenPromptHas: 'Endless', reply: 'word '.repeat(600) },
      { whenPromptHas: 'Ponder', reply: `<think>\n${'pondering '.repeat(300)}</think>\n\nDone.` },
    ],
    { delayMs: 5 },
  );
  server = await start({}, scripted);
  keyed = await start({ apiKey: 'layout-test-key-0123' }, scripted);
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await keyed?.close();
  await model?.engine.close();
});

describe('web chat page layout', () => {
  it('on a phone-sized screen: header, messages, composer and settings all usable; the page itself does not scroll', async ({ page, errors }) => {
    await page.setViewportSize({ width: 375, height: 667 });
    await page.goto(server.url);
    for (let i = 0; i < 3; i++) await send(page, `Plain question ${i}`);
    const box = await page.evaluate(() => {
      const rect = (sel: string) => document.querySelector(sel)!.getBoundingClientRect();
      const aside = document.querySelector('aside')!;
      return {
        pageScroll: document.scrollingElement!.scrollHeight - innerHeight,
        headerTop: rect('header').top,
        composerBottom: rect('#composer').bottom,
        asideHeight: rect('aside').height,
        asideWanted: Math.min(aside.scrollHeight, innerHeight * 0.38),
        messagesHeight: rect('#messages').height,
        height: innerHeight,
      };
    });
    expect(box.pageScroll).toBeLessThanOrEqual(1);
    expect(box.headerTop).toBeGreaterThanOrEqual(0);
    expect(box.composerBottom).toBeLessThanOrEqual(box.height);
    expect(box.asideHeight).toBeGreaterThanOrEqual(box.asideWanted - 2); // not squeezed to a strip
    expect(box.asideHeight).toBeGreaterThan(150);
    expect(box.messagesHeight).toBeGreaterThan(100);
    expect(errors).toEqual([]);
  });

  it('on a phone held sideways the settings sit beside the chat, leaving the messages more than a strip', async ({ page, errors }) => {
    await page.setViewportSize({ width: 740, height: 360 });
    await page.goto(server.url);
    await send(page, 'Plain question');
    const box = await page.evaluate(() => {
      const rect = (sel: string) => document.querySelector(sel)!.getBoundingClientRect();
      return { pageScroll: document.scrollingElement!.scrollHeight - innerHeight, messagesHeight: rect('#messages').height, composerBottom: rect('#composer').bottom, asideLeft: rect('aside').left, mainRight: rect('main').right, height: innerHeight };
    });
    expect(box.pageScroll).toBeLessThanOrEqual(1);
    expect(box.messagesHeight).toBeGreaterThan(150); // below the chat, the settings left it 74 px
    expect(box.composerBottom).toBeLessThanOrEqual(box.height);
    expect(box.asideLeft).toBeGreaterThanOrEqual(box.mainRight - 1);
    expect(errors).toEqual([]);
  });

  it('long words, URLs and wide tables stay inside their bubbles; table alignment survives the CSP', async ({ page, errors }) => {
    await page.goto(server.url);
    await send(page, `Wide things ${'x'.repeat(200)}`);
    const fit = await page.evaluate(() => {
      const inside = (el: Element) => {
        const list = document.querySelector('#messages')!.getBoundingClientRect();
        const r = el.getBoundingClientRect();
        return r.left >= list.left - 1 && r.right <= list.right + 1;
      };
      const user = document.querySelector('.msg.user')!;
      const answer = document.querySelector('.msg.assistant .answer')!;
      const cells = [...document.querySelectorAll('.msg.assistant td')].slice(0, 3).map((td) => getComputedStyle(td).textAlign);
      return { user: inside(user) && user.scrollWidth <= user.clientWidth + 1, answer: inside(answer) && answer.scrollWidth <= answer.clientWidth + 1, cells };
    });
    expect(fit).toEqual({ user: true, answer: true, cells: ['left', 'right', 'center'] });
    expect(errors).toEqual([]); // no "violates style-src" for the table cells
  });

  it('a reader scrolled up stays where they are while the answer streams; one at the end follows it', async ({ page }) => {
    await page.goto(server.url);
    await page.setViewportSize({ width: 1000, height: 500 });
    await send(page, 'Long answer one');
    const atEnd = await page.evaluate(() => {
      const m = document.querySelector('#messages')!;
      return m.scrollHeight - m.scrollTop - m.clientHeight;
    });
    expect(atEnd).toBeLessThan(40); // followed to the end
    await page.click('#new-chat'); // the context is short: the next answer starts afresh
    await page.fill('#prompt', 'Long answer two');
    await page.press('#prompt', 'Enter');
    // Scrolled up once the answer is well past the bottom of the list (before, the top is its end).
    await page.waitForFunction(() => {
      const m = document.querySelector('#messages')!;
      return m.scrollHeight > m.clientHeight + 200 && document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'streaming';
    }, null, { timeout: 60_000 });
    await page.evaluate(() => (document.querySelector('#messages')!.scrollTop = 0));
    await page.waitForFunction(() => document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'done', null, { timeout: 60_000 });
    expect(await page.evaluate(() => document.querySelector('#messages')!.scrollTop)).toBe(0);
  });

  it('once the list is full, each new answer, its status line and an error are scrolled into view', async ({ page }) => {
    await page.setViewportSize({ width: 1000, height: 500 });
    await page.goto(server.url);
    const hiddenBelow = () => page.evaluate(() => {
      const m = document.querySelector('#messages')!;
      // Scroll offsets can be fractional: half a pixel left below is the end.
      return { overflowing: m.scrollHeight > m.clientHeight, below: Math.round(m.scrollHeight - m.scrollTop - m.clientHeight) };
    });
    for (let i = 0; i < 5; i++) await send(page, `Plain question ${i}`);
    expect(await hiddenBelow()).toEqual({ overflowing: true, below: 0 });
    await send(page, 'Empty thought, short answer');
    expect(await hiddenBelow()).toEqual({ overflowing: true, below: 0 });
    await page.fill('#max-tokens', '100000'); // refused by the server: the error is what must show
    await send(page, 'Plain, refused', 'error');
    expect(await hiddenBelow()).toEqual({ overflowing: true, below: 0 });
  });

  it('an empty think block is not shown; a cut answer says whether max_tokens or the length limit cut it', async ({ page }) => {
    await page.goto(server.url);
    await send(page, 'Empty thought');
    expect(await page.locator('.msg.assistant .think').last().isHidden()).toBe(true);
    expect((await page.locator('.msg.assistant .answer').last().textContent())?.trim()).toBe('Only answer.');
    await send(page, 'Endless, please');
    expect(await page.locator('.msg.assistant .meta').last().textContent()).toContain("cut at the model's length limit");
    await page.click('#new-chat'); // that answer filled the short context
    await page.fill('#max-tokens', '5');
    await send(page, 'Endless again');
    expect(await page.locator('.msg.assistant .meta').last().textContent()).toContain('cut at max_tokens');
  });
});

describe('web chat page errors', () => {
  it('a failed turn: the message is marked, put back in the box, and the header says the server is gone', async ({ page }) => {
    const doomed = await start({}, new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Plain', reply: 'A plain answer.' }]));
    await page.goto(doomed.url);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('model qwen3');
    await doomed.close();
    await send(page, '    indented question', 'error');
    expect(await page.locator('.msg.user').last().getAttribute('data-state')).toBe('failed');
    expect(await page.inputValue('#prompt')).toBe('    indented question');
    expect(await page.locator('.msg.assistant .error').last().textContent()).toMatch(/could not be reached or went away .*Retry sends it again; your message is also back in the box/);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('server not reachable');
  });

  it('stopped while still thinking: the question stays, no empty answer goes back to the server', async ({ page, chats }) => {
    await page.goto(server.url);
    await page.fill('#prompt', 'Ponder this');
    await page.press('#prompt', 'Enter');
    await page.waitForSelector('.msg.assistant .think:not([hidden])', { timeout: 60_000 });
    await page.click('#stop');
    await page.waitForFunction(() => document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === 'stopped', null, { timeout: 60_000 });
    await send(page, 'Plain follow-up');
    expect(chats.at(-1).messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
      ['user', 'Ponder this'],
      ['user', 'Plain follow-up'],
    ]);
  });

  it('cut at max_tokens while still thinking: the page says so and shows the thinking; no empty answer goes back to the server', async ({ page, chats, errors }) => {
    await page.goto(server.url);
    await page.fill('#max-tokens', '20');
    await send(page, 'Ponder this');
    const cut = await page.evaluate(() => {
      const last = document.querySelector('.msg.assistant:last-child')!;
      return {
        meta: last.querySelector('.meta')!.textContent,
        thinkOpen: (last.querySelector('details.think') as HTMLDetailsElement).open,
        thought: last.querySelector('.think-text')!.textContent!.startsWith('pondering'),
        answer: last.querySelector('.answer')!.textContent,
        buttons: [...last.querySelectorAll('button')].map((b) => b.getAttribute('aria-label')),
      };
    });
    expect(cut.meta).toContain('cut at max_tokens while still thinking, before any answer: raise max_tokens or set a Thinking budget');
    expect(cut).toMatchObject({ thinkOpen: true, thought: true, answer: '', buttons: ['Regenerate answer'] });
    await page.fill('#max-tokens', '');
    await send(page, 'Plain follow-up');
    expect(chats.at(-1).messages.map((m: { role: string; content: string }) => [m.role, m.content])).toEqual([
      ['user', 'Ponder this'],
      ['user', 'Plain follow-up'],
    ]);
    expect(errors).toEqual([]);
  });

  it('a wrong API key is called refused; none at all, needed', async ({ page }) => {
    await page.goto(keyed.url);
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('API key needed (Settings)');
    await page.fill('#api-key', 'not-the-key-at-all');
    await page.dispatchEvent('#api-key', 'change');
    await expect.poll(() => page.textContent('#model-status'), polling).toBe('API key refused (Settings)');
  });
});
