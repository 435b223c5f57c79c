// Debian's Chromium driven by playwright-core for the web UI tests: headless, no downloads, a
// fresh profile per launch, nothing reaching out to the network; a fresh tab per test.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { it } from 'vitest';
import { repoRoot } from '../helpers/fixtures.js';

export const chromiumPath = '/usr/bin/chromium';
export const artifactsDir = path.join(repoRoot, 'test-artifacts');

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  if (!fs.existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: install it with apt-get install -y chromium (.ci/run does)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-chromium-'));
  // launchPersistentContext is how playwright takes --user-data-dir: a fresh folder each run.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 820 },
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Page errors and console errors, for a test to assert there were none. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  return errors;
}

/** Bodies of the chat requests the page sent, parsed, in order. */
export function collectChatRequests(page: Page): any[] {
  const bodies: any[] = [];
  page.on('request', (req) => {
    if (req.url().endsWith('/v1/chat/completions') && req.method() === 'POST') bodies.push(JSON.parse(req.postData() ?? '{}'));
  });
  return bodies;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, name);
  await page.screenshot({ path: file });
  return file;
}

export interface PageFixtures {
  /** A fresh tab of the shared browser, closed after the test, a failed one too. */
  page: Page;
  /** Its page and console errors (collectErrors). */
  errors: string[];
  /** The chat request bodies it sent (collectChatRequests). */
  chats: any[];
}

/**
 * `it` with a tab per test: `it('...', async ({ page, errors, chats }) => ...)`. Errors and
 * requests are collected from the tab's first moment, so a failed page load is seen too.
 * browser: the file's browser, launched in its beforeAll. open: the address the tab loads before
 * the test, which starts once the page has found the served model (left out: a blank tab, for
 * tests that set it up before the first load).
 */
export function itWithPage(browser: () => Browser, { open }: { open?: () => string } = {}) {
  return it.extend<PageFixtures & { tab: PageFixtures }>({
    // vitest reads what a fixture needs from this pattern: nothing here.
    tab: async ({}, use) => {
      const page = await browser().context.newPage();
      try {
        const tab = { page, errors: collectErrors(page), chats: collectChatRequests(page) };
        if (open) {
          await page.goto(open());
          await page.waitForSelector('#model-status[data-state="ok"]', { timeout: 30_000 });
        }
        await use(tab);
      } finally {
        await page.close();
      }
    },
    page: async ({ tab }, use) => use(tab.page),
    errors: async ({ tab }, use) => use(tab.errors),
    chats: async ({ tab }, use) => use(tab.chats),
  });
}

/** Waits until the last answer's data-state is `state` (done, error, stopped, ...). */
export async function waitAnswerState(p: Page, state: string): Promise<void> {
  await p.waitForFunction((s) => document.querySelector('.msg.assistant:last-child')?.getAttribute('data-state') === s, state, { timeout: 60_000 });
}

/** Types `text` into the message box, sends it with Enter, and waits for the last answer to reach `state`. */
export async function sendAndWait(p: Page, text: string, state = 'done'): Promise<void> {
  await p.fill('#prompt', text);
  await p.press('#prompt', 'Enter');
  await waitAnswerState(p, state);
}
