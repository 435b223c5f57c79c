// The web UI switch in server.yml, through `grpst serve` as a user runs it: the shipped
// conf/server.yml serves the chat page at / (web_ui: true); web_ui: false leaves only the API.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { cliArgv, drainGraceMs } from '../helpers/grpst-cli.js';
import { get, waitFor } from './server-harness.js';

let work: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-webui-switch-'));
  fs.mkdirSync(path.join(work, 'conf'));
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', checkpoint('tiny-a'));
  fs.writeFileSync(path.join(work, 'conf', 'inference_tiny.yml'), conf);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** The shipped server.yml on a free loopback port, with web_ui as given (undefined: as shipped). */
function serverConf(port: number, webUi?: boolean): string {
  let text = fs.readFileSync(path.join(repoRoot, 'conf', 'server.yml'), 'utf8');
  expect(text).toMatch(/^web_ui: true\b/m);
  text = text.replace(/^(\s+host:) .*$/m, '$1 127.0.0.1').replace(/^(\s+port:) .*$/m, `$1 ${port}`);
  if (webUi !== undefined) text = text.replace(/^web_ui: true\b/m, `web_ui: ${webUi}`);
  const file = path.join(work, 'conf', `server-${port}.yml`);
  fs.writeFileSync(file, text);
  return file;
}

async function withServe(conf: string, port: number, fn: (url: string) => Promise<void>): Promise<void> {
  const child = execa(process.execPath, [...cliArgv, 'serve', '--inference_conf', 'conf/inference_tiny.yml', '--server_conf', conf], { cwd: work, reject: false, stdin: 'ignore', forceKillAfterDelay: drainGraceMs });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => (await get(`${url}/health`).catch(() => ({ status: 0 }))).status === 200, 60_000);
    await fn(url);
  } finally {
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(0);
  }
}

describe('server.yml web_ui', () => {
  it('as shipped (true): the chat page at / and /ui, its assets, and the API beside them', async () => {
    const port = await freePort('127.0.0.1');
    await withServe(serverConf(port), port, async (url) => {
      const page = await get(`${url}/`);
      expect(page.status).toBe(200);
      expect(page.text).toContain('<title>grpst chat</title>');
      expect((await get(`${url}/ui`)).status).toBe(200);
      for (const asset of ['/ui/app.js', '/ui/chat-stream.js', '/ui/think-splitter.js', '/ui/markdown-stream.js', '/ui/message-actions.js', '/ui/style.css', '/ui/markdown-it.min.js']) {
        expect((await get(`${url}${asset}`)).status, asset).toBe(200);
      }
      expect((await get(`${url}/v1/models`)).json.data[0].id).toBe('qwen3');
    });
  });

  it('false: / is an unknown route (404 envelope) and the API still answers', async () => {
    const port = await freePort('127.0.0.1');
    await withServe(serverConf(port, false), port, async (url) => {
      for (const p of ['/', '/ui', '/ui/app.js']) {
        const r = await get(`${url}${p}`);
        expect(r.status, p).toBe(404);
        expect(r.json.error.code).toBe('unknown_url');
      }
      expect((await get(`${url}/v1/models`)).status).toBe(200);
    });
  });
});
