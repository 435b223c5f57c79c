// Faults of the real server process on the tiny engine: SIGTERM while 16 streams run (all finish,
// then exit 0), kill -9 in the middle of a load (ps says dead, the log keeps what happened, the
// same name starts again), and an engine changed or truncated after `grpst build` (refused at
// start with the file named and the fix).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, tinyEngine } from '../../bench/soak-daemon.js';
import { freePort } from '../../src/daemon/ports.js';
import { groupMembers } from '../../src/daemon/processes.js';
import { sseFrames } from '../e2e/server-harness.js';
import { repoRoot } from '../helpers/fixtures.js';
import { cliArgv, drainGraceMs, makeCli, type Cli } from '../helpers/grpst-cli.js';

let tmp: string;
let engine: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-faults-'));
  engine = await tinyEngine(makeCli());
}, 600_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A project folder with the tiny conf pointed at `engineDir` and a server.yml on `port`. */
function project(name: string, engineDir: string, port: number): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'conf', 'inference_tiny.yml'), fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engineDir));
  fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), `interface:\n  host: 127.0.0.1\n  port: ${port}\nmax_concurrency: 32\nweb_ui: false\n`);
  return dir;
}

const streamBody = (i: number, maxTokens: number) =>
  JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content: `Stream ${i}: count slowly.` }], max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } });

/** Opens a stream; `first` resolves at its first byte, `done` with the whole body (or the error). */
function openStream(url: string, i: number, maxTokens: number) {
  let firstByte!: () => void;
  const first = new Promise<void>((r) => (firstByte = r));
  const done = (async () => {
    try {
      const res = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: streamBody(i, maxTokens) });
      let text = '';
      for await (const chunk of res.body) {
        text += chunk.toString();
        firstByte();
      }
      return { status: res.statusCode, text, endedAt: Date.now(), error: undefined as string | undefined };
    } catch (err) {
      firstByte();
      return { status: -1, text: '', endedAt: Date.now(), error: (err as Error).message };
    }
  })();
  return { first, done };
}

describe('drain', () => {
  it('SIGTERM while 16 streams run: all 16 finish whole, then the server exits 0', async () => {
    const port = await freePort('127.0.0.1');
    const dir = project('drain16', engine, port);
    const cli = makeCli();
    cleanups.push(() => fs.rmSync(cli.home, { recursive: true, force: true }));
    const child = execa(process.execPath, [...cliArgv, 'serve', '--inference_conf', 'conf/inference_tiny.yml', '--server_conf', 'conf/server.yml'], { cwd: dir, reject: false, env: cli.env, forceKillAfterDelay: drainGraceMs });
    cleanups.push(() => void child.kill('SIGKILL'));
    const url = `http://127.0.0.1:${port}`;
    let health = 0;
    for (let i = 0; i < 600 && health !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      health = await fetch(`${url}/health`).then((r) => r.status, () => 0);
    }
    expect(health).toBe(200);
    // 600 tokens each: long enough that none ends before the SIGTERM on a loaded machine.
    const streams = Array.from({ length: 16 }, (_, i) => openStream(url, i, 600));
    await Promise.all(streams.map((s) => s.first));
    const sigterm = Date.now();
    child.kill('SIGTERM');
    const results = await Promise.all(streams.map((s) => s.done));
    const exit = await child;
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(200);
      const frames = sseFrames(r.text);
      expect(frames.at(-1)).toBe('[DONE]');
      expect(frames.filter((f) => typeof f === 'object' && f.error)).toEqual([]);
      expect(frames.at(-2).usage.completion_tokens).toBe(600);
      expect(r.endedAt).toBeGreaterThan(sigterm);
    }
    expect(exit.exitCode).toBe(0);
    expect(String(exit.stdout)).toMatch(/SIGTERM: draining[\s\S]*drained; exiting/);
  });
});

describe('kill -9 in the middle of a load', () => {
  it('ps reports it dead, the log keeps what happened, and the same name starts again', async () => {
    const daemon = await startDaemon({ name: 'victim' });
    cleanups.push(() => fs.rmSync(daemon.cli.home, { recursive: true, force: true }));
    cleanups.push(() => daemon.stop(5));
    const streams = Array.from({ length: 24 }, (_, i) => openStream(daemon.url, i, 400));
    await Promise.all(streams.map((s) => s.first));
    process.kill(daemon.pid, 'SIGKILL');
    // Every client learns the server is gone: no stream hangs, none claims to be complete.
    const results = await Promise.all(streams.map((s) => s.done));
    for (const r of results) expect(r.error !== undefined || !r.text.includes('data: [DONE]')).toBe(true);

    const ps = await daemon.cli.run(['ps', '--json']);
    expect(JSON.parse(ps.stdout).find((s: { name: string }) => s.name === 'victim')?.status).toBe('dead');
    expect((await daemon.cli.run(['ps'])).stdout).toMatch(/victim\s+\d+\s+\S+\s+dead/);
    const logs = await daemon.cli.run(['logs', 'victim']);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain(`grpst serve (pid ${daemon.pid})`);
    expect(logs.stdout).toMatch(/model qwen3 ready/);

    // The same name, the same home: start clears the dead state and serves again.
    const started = await daemon.cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'victim'], { cwd: daemon.projectDir });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain('victim had died');
    const again = await request(`${daemon.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: streamBody(0, 8) });
    expect(sseFrames(await again.body.text()).at(-1)).toBe('[DONE]');
    // The log of the killed run is still there, before the new run's lines.
    const log = fs.readFileSync(daemon.logFile, 'utf8');
    const second = JSON.parse(fs.readFileSync(path.join(daemon.cli.home, '.run', 'victim.json'), 'utf8')) as { pid: number; pgid: number };
    expect(log.indexOf(`grpst serve (pid ${daemon.pid})`)).toBeGreaterThanOrEqual(0);
    expect(log.indexOf(`grpst serve (pid ${daemon.pid})`)).toBeLessThan(log.indexOf(`grpst serve (pid ${second.pid})`));
    const stopped = await daemon.cli.run(['stop', 'victim']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(groupMembers(second.pgid)).toEqual([]);
  });
});

describe('an engine changed after grpst build', () => {
  async function startWith(cli: Cli, engineDir: string, name: string, flags: string[] = []) {
    const dir = project(name, engineDir, await freePort('127.0.0.1'));
    const archived = await cli.run(['archive', '.', ...flags], { cwd: dir });
    expect(archived.code, archived.stderr).toBe(0);
    return cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', name], { cwd: dir });
  }

  it('truncated weights, or a tokenizer edited in place (archived with --include_engine): refused before anything starts', async () => {
    const cli = makeCli();
    cleanups.push(() => fs.rmSync(cli.home, { recursive: true, force: true }));
    const truncated = path.join(tmp, 'engine-truncated');
    fs.cpSync(engine, truncated, { recursive: true });
    const weights = path.join(truncated, 'rank0.weights');
    const size = fs.statSync(weights).size;
    fs.truncateSync(weights, size - 4096);
    const a = await startWith(cli, truncated, 'cut');
    expect(a.code).toBe(2);
    expect(a.stderr).toContain(`rank0.weights has ${size - 4096} bytes but engine.json records ${size} (truncated or replaced)`);
    expect(a.stderr).toContain('grpst build');

    const edited = path.join(tmp, 'engine-edited');
    fs.cpSync(engine, edited, { recursive: true });
    const tok = path.join(edited, 'tokenizer.json');
    const bytes = fs.readFileSync(tok);
    bytes[bytes.length - 10] ^= 0x01;
    fs.writeFileSync(tok, bytes);
    const b = await startWith(cli, edited, 'edited', ['--include_engine']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/tokenizer\.json was changed after the build \(sha256/);

    // Nothing was deployed or registered for either.
    for (const name of ['cut', 'edited']) {
      expect(fs.existsSync(path.join(cli.home, name))).toBe(false);
      expect(fs.existsSync(path.join(cli.home, '.run', `${name}.json`))).toBe(false);
    }
    expect(fs.readdirSync(cli.home).filter((f) => f.startsWith('.staging'))).toEqual([]);
  });
});
