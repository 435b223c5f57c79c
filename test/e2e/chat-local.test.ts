// `grpst chat --model_dir DIR|OWNER/NAME`, Ollama's `ollama run` in one command: the model is served
// for the session by a child `grpst serve` on a loopback port, the chat talks to it, and the child
// is gone when the chat ends, however it ends (stdin closed, the chat killed with SIGKILL); a model
// the server refuses is the chat's error; a Hub id is pulled first.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';
import { repoFromFiles, startHubStandin, type HubStandin } from '../helpers/hub-standin.js';

let cli: Cli;
let hub: HubStandin;
let tinyA: string;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const sessionFolders = () => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('grpst-chat-session-'));

async function gone(pid: number, withinMs: number): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !alive(pid);
}

function chat(args: string[], env: NodeJS.ProcessEnv = {}) {
  return execa(process.execPath, [...cliArgv, 'chat', ...args], { env: { ...cli.env, NO_COLOR: '1', GRPST_API_KEY: undefined, ...env }, cwd: cli.home, reject: false, stdin: 'pipe', timeout: 120_000 });
}

beforeAll(async () => {
  cli = makeCli();
  tinyA = checkpoint('tiny-a');
  const files: Record<string, Buffer> = {};
  for (const name of fs.readdirSync(tinyA)) if (name !== 'weights.sha256') files[name] = fs.readFileSync(path.join(tinyA, name));
  hub = await startHubStandin({ 'test-org/tiny-a': repoFromFiles(files, 'tiny-a') });
});

afterAll(async () => {
  await hub?.close();
  if (cli) fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst chat --model_dir', () => {
  it('serves the folder for the session, answers, and leaves no server or folder behind', async () => {
    const before = sessionFolders();
    const child = chat(['--model_dir', tinyA, '--max_tokens', '4']);
    child.stdin!.end('Hello there\nAnd again\n');
    const r = await child;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    const stderr = String(r.stderr);
    const banner = /serving .*tiny-a on (http:\/\/127\.0\.0\.1:\d+) \(pid (\d+)\) for this chat/.exec(stderr);
    expect(banner, stderr).not.toBeNull();
    expect(stderr).toContain(`chatting with model qwen3 at ${banner![1]}`);
    expect([...stderr.matchAll(/^\(prompt \d+ tokens, answer 4 tokens, [\d.]+ tokens\/s, cut at max_tokens\)$/gm)]).toHaveLength(2);
    expect(String(r.stdout).length).toBeGreaterThan(0);
    expect(await gone(Number(banner![2]), 10_000)).toBe(true);
    expect(sessionFolders()).toEqual(before);
  });

  it('a chat killed outright still takes its server down, and the next chat removes its folder', async () => {
    const before = sessionFolders();
    const child = chat(['--model_dir', tinyA]);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const deadline = Date.now() + 60_000;
    while (!/\(pid (\d+)\) for this chat/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const serverPid = Number(/\(pid (\d+)\) for this chat/.exec(stderr)?.[1]);
    expect(alive(serverPid), stderr).toBe(true);
    child.kill('SIGKILL');
    await child;
    expect(await gone(serverPid, 15_000)).toBe(true);
    const left = sessionFolders().filter((f) => !before.includes(f));
    expect(left).toHaveLength(1);  // killed outright: nothing could remove it
    const next = chat(['--model_dir', tinyA, '--max_tokens', '2']);
    next.stdin!.end('Hi\n');
    const r = await next;
    expect(r.exitCode, String(r.stderr)).toBe(0);
    expect(sessionFolders()).not.toContain(left[0]);
  });

  it("says the server's refusal, refuses --model_dir with a server name or --url, and pulls a Hub id first", async () => {
    const missing = chat(['--model_dir', '/nonexistent/model']);
    missing.stdin!.end('');
    const m = await missing;
    expect(m.exitCode).toBe(2);
    expect(String(m.stderr)).toMatch(/--model_dir \/nonexistent\/model is not a folder\n.*fix: pass the folder grpst build wrote/);
    const both = chat(['--model_dir', tinyA, '--url', 'http://127.0.0.1:9']);
    both.stdin!.end('');
    const b = await both;
    expect(b.exitCode).toBe(2);
    expect(String(b.stderr)).toMatch(/--model_dir starts a model for this chat; a server name or --url names one already running/);

    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-chat-hf-'));
    try {
      const hubChat = chat(['--model_dir', 'test-org/tiny-a', '--max_tokens', '3'], { HF_ENDPOINT: hub.endpoint, HF_HOME: home, HF_TOKEN: '', HF_HUB_OFFLINE: '', NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' });
      hubChat.stdin!.end('Hi\n');
      const h = await hubChat;
      expect(h.exitCode, String(h.stderr)).toBe(0);
      expect(String(h.stderr)).toContain('--model_dir test-org/tiny-a: no such folder; downloading it from');
      expect(String(h.stderr)).toMatch(/serving .*models--test-org--tiny-a\/snapshots\/[0-9a-f]{40} on http/);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});
