// use_mmap and use_mlock with real servers on the tiny engine. A daemon started with use_mmap: false
// holds its own copy of the weights: truncating, then overwriting, its engine's weights file leaves
// it answering the same greedy tokens; mapped, the truncation ends it (SIGBUS), with a line that
// names the file and use_mmap: false. use_mlock
// locks the weights where the system allows it and, where it does not (RLIMIT_MEMLOCK), logs a
// warning naming the limit and `ulimit -l` and serves on. A value that is not a boolean is refused
// with the conf line before anything listens.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyEngine } from '../../bench/soak-daemon.js';
import { freePort } from '../../src/daemon/ports.js';
import { repoRoot } from '../helpers/fixtures.js';
import { serveForeground } from '../helpers/foreground-server.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let engine: string;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-weights-'));
  cli = makeCli();
  engine = await tinyEngine(cli);
}, 600_000);

afterAll(async () => {
  const run = path.join(cli.home, '.run');
  for (const f of fs.existsSync(run) ? fs.readdirSync(run) : []) if (f.endsWith('.json')) await cli.run(['stop', f.slice(0, -5), '--timeout', '5']);
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

/** The shipped tiny conf on `engineDir` with `lines` added to inferer_args; no prefix cache, so every answer is computed again. */
function tinyConf(lines: string[], engineDir = engine): string {
  return fs
    .readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8')
    .replaceAll('./models/qwen3-tiny/engine', engineDir)
    .replace('      enable_kv_cache_reuse: true', ['      enable_kv_cache_reuse: false', ...lines.map((l) => `      ${l}`)].join('\n'));
}

const prompts = ['The sea is', 'Once upon a time, in a land far away,'];

/** Greedy completions with the generated ids and the 5 likeliest alternatives at every position. */
async function greedyAnswers(url: string): Promise<unknown[]> {
  const out = [];
  for (const prompt of prompts) {
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen3', prompt, max_tokens: 16, temperature: 0, ignore_eos: true, logprobs: 5, return_token_ids: true }),
    });
    const body = (await res.json()) as { choices: { token_ids: number[]; text: string; logprobs: { token_logprobs: number[]; top_logprobs: unknown[] } }[] };
    expect(res.status, JSON.stringify(body)).toBe(200);
    const c = body.choices[0];
    expect(c.token_ids).toHaveLength(16);
    out.push({ ids: c.token_ids, text: c.text, logprobs: c.logprobs.token_logprobs, top: c.logprobs.top_logprobs });
  }
  return out;
}

describe('use_mmap: false', () => {
  it('grpst start: truncating, then overwriting, the weights file under the server leaves it answering the same tokens', async () => {
    const port = await freePort('127.0.0.1');
    const dir = path.join(work, 'no-mmap');
    fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
    // A copy of its own: the test damages its weights file, and the cached engine is shared.
    const damaged = path.join(work, 'engine-damaged');
    fs.cpSync(engine, damaged, { recursive: true });
    fs.writeFileSync(path.join(dir, 'conf', 'inference_tiny.yml'), tinyConf(['use_mmap: false'], damaged));
    fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), `interface:\n  host: 127.0.0.1\n  port: ${port}\nweb_ui: false\n`);
    // The conf names the engine by its absolute path: the daemon reads the file the test damages.
    expect((await cli.run(['archive', '.'], { cwd: dir })).code).toBe(0);
    const started = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'nommap'], { cwd: dir, timeoutMs: 300_000 });
    expect(started.code, started.stderr).toBe(0);
    const state = JSON.parse(fs.readFileSync(path.join(cli.home, '.run', 'nommap.json'), 'utf8')) as { pid: number; logFile: string };
    const url = `http://127.0.0.1:${port}`;

    const before = await greedyAnswers(url);
    const weights = path.join(damaged, 'rank0.weights');
    const size = fs.statSync(weights).size;
    fs.truncateSync(weights, 0);
    expect(await greedyAnswers(url)).toEqual(before);
    // Rewritten in place with other bytes, as a rebuild into the same folder would.
    fs.writeFileSync(weights, Buffer.alloc(size, 0x3c));
    expect(await greedyAnswers(url)).toEqual(before);

    expect((await cli.run(['ps'])).stdout).toMatch(new RegExp(`^${port}\\s+nommap\\s+${state.pid}\\s+.*\\s+running$`, 'm'));
    const stopped = await cli.run(['stop', 'nommap']);
    expect(stopped.code, stopped.stderr).toBe(0);
    const log = fs.readFileSync(state.logFile, 'utf8');
    expect(log).toMatch(/model qwen3 ready \(cpu, [^\n]*, weights read into memory\)/);
    expect(log).toContain('drained; exiting');
    expect(log).not.toMatch(/ERROR/);
  }, 300_000);
});

/** `grpst serve --inference_conf FILE` in the foreground, run through `prefix` (a command that changes its limits). */
const serveThrough = (prefix: string[], conf: string) => serveForeground(cli, ['--inference_conf', conf], work, prefix);

const status = (pid: number) => fs.readFileSync(`/proc/${pid}/status`, 'utf8');
/** CAP_IPC_LOCK (bit 14 of the effective set) lets a process lock past RLIMIT_MEMLOCK. */
const canLockAnyAmount = () => (BigInt(`0x${/^CapEff:\s+([0-9a-f]+)$/m.exec(status(process.pid))![1]}`) & (1n << 14n)) !== 0n;
const onPath = (tool: string) => (process.env.PATH ?? '').split(path.delimiter).some((d) => fs.existsSync(path.join(d, tool)));

describe('use_mmap: true (the default)', () => {
  it('truncating the weights file under the server ends it, and its output names the file and use_mmap: false', async () => {
    const copy = path.join(work, 'engine-mapped');
    fs.cpSync(engine, copy, { recursive: true });
    const conf = path.join(work, 'mapped.yml');
    fs.writeFileSync(conf, tinyConf([], copy));
    const server = await serveThrough([], conf);
    const weights = path.join(copy, 'rank0.weights');
    try {
      expect(await greedyAnswers(server.url)).toHaveLength(2);
      fs.truncateSync(weights, 0);
      // The next forward pass reads pages that are gone: the process cannot answer.
      await expect(greedyAnswers(server.url)).rejects.toThrow();
    } finally {
      await server.stop();
    }
    expect(server.output()).toContain(`grpst: fatal: ${weights} was truncated or replaced while the server had it mapped (SIGBUS reading its weights)`);
    expect(server.output()).toContain('set use_mmap: false in the inference conf');
  }, 120_000);
});

describe('use_mlock: true', () => {
  it('where the process may lock past its limit: the weights are locked, and the ready line says so', async (ctx) => {
    if (!canLockAnyAmount()) ctx.skip();
    const conf = path.join(work, 'mlock.yml');
    fs.writeFileSync(conf, tinyConf(['use_mlock: true']));
    const server = await serveThrough([], conf);
    try {
      const locked = Number(/^VmLck:\s+(\d+) kB$/m.exec(status(server.process.pid!))![1]) * 1024;
      expect(locked).toBeGreaterThanOrEqual(fs.statSync(path.join(engine, 'rank0.weights')).size);
      expect(await greedyAnswers(server.url)).toHaveLength(2);
    } finally {
      await server.stop();
    }
    expect(server.output()).toMatch(/model qwen3 ready \([^\n]*, weights mapped and locked\)/);
    expect(server.output()).not.toContain('use_mlock: could not lock');
  }, 120_000);

  it('under RLIMIT_MEMLOCK 0: a warning naming the limit and ulimit -l, then the server serves unlocked', async (ctx) => {
    // Root keeps CAP_IPC_LOCK unless its bounding set drops it (setpriv); the limit itself is lowered in a shell.
    const drop = canLockAnyAmount() ? ['setpriv', '--bounding-set=-ipc_lock', '--inh-caps=-ipc_lock'] : [];
    if (drop.length > 0 && !onPath('setpriv')) ctx.skip();
    const conf = path.join(work, 'mlock-refused.yml');
    fs.writeFileSync(conf, tinyConf(['use_mmap: false', 'use_mlock: true']));
    // Its stderr (WARN) joins its stdout (INFO) in one pipe, so the two keep the order they were
    // written in (read from two pipes, either may arrive first).
    const server = await serveThrough([...drop, 'sh', '-c', 'ulimit -l 0 && exec "$@" 2>&1', 'sh'], conf);
    try {
      expect(status(server.process.pid!)).toMatch(/^VmLck:\s+0 kB$/m);
      expect(await greedyAnswers(server.url)).toHaveLength(2);
    } finally {
      await server.stop();
    }
    const out = server.output();
    expect(out).toMatch(/WARN use_mlock: could not lock the \d+ MiB of weights in RAM \(mlock: [^;]+; RLIMIT_MEMLOCK, the most memory this process may lock, is 0 KiB\)/);
    expect(out).toContain('Fix: raise the limit where the server starts (ulimit -l unlimited in its shell');
    expect(out).toContain('or set use_mlock: false');
    expect(out).toMatch(/model qwen3 ready \([^\n]*, weights read into memory, not locked\)/);
    // The warning comes before the ready line, which a reader scanning for "ready" sees next.
    expect(out.indexOf('use_mlock: could not lock')).toBeLessThan(out.indexOf('model qwen3 ready'));
  }, 120_000);
});

describe('a use_mmap / use_mlock that is not a boolean', () => {
  it('grpst serve refuses it with the conf line before it listens (exit 2)', async () => {
    const conf = path.join(work, 'bad-mmap.yml');
    fs.writeFileSync(conf, tinyConf(['use_mmap: "no"', 'use_mlock: 1']));
    const r = await cli.run(['serve', '--inference_conf', conf, '--host', '127.0.0.1', '--port', '0'], { cwd: work, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:7: models\\[0\\]\\.inferer_args\\.use_mmap: expected boolean, got "no" \\(a string\\)`));
    expect(r.stderr).toMatch(/inferer_args\.use_mlock: expected boolean, got 1 \(a number\)/);
    expect(`${r.stdout}${r.stderr}`).not.toContain('listening on');
  });
});
