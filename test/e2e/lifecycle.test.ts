// The README's flow with real processes and the real runtime on a tiny Qwen3 checkpoint:
// archive (self-contained) -> start -> ps -> chat with the official openai client -> stop, plus
// drain under load, a crash while loading, and the API key kept out of logs, argv and ps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { groupMembers } from '../../src/daemon/processes.js';
import type { ServerState } from '../../src/daemon/state.js';
import { defaultStopTimeoutS } from '../../src/daemon/stop.js';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { cliArgv, drainGraceMs, makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let model: string;

/** A project like the README's: conf/ with the shipped tiny conf pointed at a model folder. */
function project(name: string, serverYml: string, modelDir = model): string {
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', modelDir);
  fs.writeFileSync(path.join(dir, 'conf', 'inference_tiny.yml'), conf);
  fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), serverYml);
  return dir;
}

const serverOn = (port: number, extra = '') => `interface:\n  host: 127.0.0.1\n  port: ${port}\nmax_concurrency: 16\n${extra}`;
const stateOf = (name: string) => JSON.parse(fs.readFileSync(path.join(cli.home, '.run', `${name}.json`), 'utf8')) as { pid: number; pgid: number };

async function startProject(dir: string, name: string, flags: string[] = ['--include_engine'], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const archived = await cli.run(['archive', '.', ...flags], { cwd: dir });
  expect(archived.code, archived.stderr).toBe(0);
  const started = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', name], { cwd: dir, env });
  expect(started.code, started.stderr).toBe(0);
  return started.stdout;
}

/** `grpst serve` of a project's tiny conf, in the foreground. */
function serveInForeground(dir: string) {
  return execa(process.execPath, [...cliArgv, 'serve', '--inference_conf', 'conf/inference_tiny.yml', '--server_conf', 'conf/server.yml'], { cwd: dir, reject: false, env: cli.env, forceKillAfterDelay: drainGraceMs });
}

async function waitHealthy(port: number): Promise<void> {
  let health = 0;
  for (let i = 0; i < 300 && health !== 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0);
  }
  expect(health).toBe(200);
}

/** The `chat:` line `grpst start` prints: its URL, headers and JSON body. */
function chatHint(stdout: string): { url: string; headers: string[]; body: Record<string, unknown> } {
  const line = stdout.split('\n').find((l) => l.trim().startsWith('chat:'));
  const m = line?.match(/curl (\S+) (.*) -d '(.*)'$/);
  if (!m) throw new Error(`no chat hint in: ${stdout}`);
  return { url: m[1], headers: [...m[2].matchAll(/-H "([^"]+)"/g)].map((h) => h[1]), body: JSON.parse(m[3]) };
}

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-lifecycle-'));
  model = checkpoint('tiny-a');
  cli = makeCli();
});

afterAll(async () => {
  const run = path.join(cli.home, '.run');
  for (const f of fs.existsSync(run) ? fs.readdirSync(run) : []) if (f.endsWith('.json')) await cli.run(['stop', f.slice(0, -5), '--timeout', '5']);
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst lifecycle on the native runtime', () => {
  it('archive --include_engine -> start -> ps -> chat (stream and not) -> stop', async () => {
    const port = await freePort('127.0.0.1');
    const dir = project('readme', serverOn(port));
    const started = await startProject(dir, 'my_grps');
    // The printed chat command works as pasted, and ends on its own (max_tokens: a model with
    // random weights never says its end token).
    const hint = chatHint(started);
    expect(hint.headers).toEqual(['Content-Type: application/json']);
    const hinted = await fetch(hint.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(hint.body) });
    expect(hinted.status).toBe(200);
    const hintedReply = (await hinted.json()) as { usage: { completion_tokens: number } };
    expect(hintedReply.usage.completion_tokens).toBeLessThanOrEqual(Number(hint.body.max_tokens));
    // The archive is self-contained: the model was copied in and the conf points at the copy.
    const deployed = fs.readFileSync(path.join(cli.home, 'my_grps', 'conf', 'inference_tiny.yml'), 'utf8');
    expect(deployed).toContain('gpt_model_path: ./engines/tiny-a');

    const ps = await cli.run(['ps']);
    expect(ps.stdout.split('\n')[0]).toMatch(/^PORT\(HTTP,RPC\)\s+NAME\s+PID\s+DEPLOY_PATH\s+STATUS$/);
    expect(ps.stdout).toMatch(new RegExp(`^${port}\\s+my_grps\\s+${stateOf('my_grps').pid}\\s+${path.join(cli.home, 'my_grps')}\\s+running$`, 'm'));

    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
    const reply = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0 });
    expect(reply.id).toMatch(/^chatcmpl-/);
    expect(reply.usage?.completion_tokens).toBeGreaterThan(0);
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 8, temperature: 0, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toBe(reply.choices[0].message.content);

    const { pgid } = stateOf('my_grps');
    const stopped = await cli.run(['stop', 'my_grps']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(groupMembers(pgid)).toEqual([]);
    expect((await cli.run(['ps'])).stdout.trim().split('\n')).toHaveLength(1);
    const log = fs.readFileSync(path.join(cli.home, 'my_grps', 'logs', 'grpst_server.log'), 'utf8');
    expect(log).toMatch(/model qwen3 ready[\s\S]*SIGTERM: draining[\s\S]*drained; exiting/);
  });

  it('SIGTERM during 8 streaming requests: all 8 complete, then the server exits 0', async () => {
    const port = await freePort('127.0.0.1');
    await startProject(project('drain', serverOn(port)), 'drainer');
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    let firstChunks = 0;
    const ended: number[] = [];
    const streams = Array.from({ length: 8 }, async (_, i) => {
      const stream = await client.chat.completions.create({
        model: 'qwen3',
        messages: [{ role: 'user', content: `Count to ${i}` }],
        // Long enough to outlast `grpst stop`'s start on a loaded machine: 8 rows of the tiny
        // model step in about 2 ms, so 300 tokens could end before the SIGTERM arrived.
        max_tokens: 2000,
        stream: true,
        stream_options: { include_usage: true },
        // @ts-expect-error vLLM/grpst extension: keep generating past end-of-text.
        ignore_eos: true,
      });
      let finish: string | null | undefined;
      let tokens = 0;
      let seen = false;
      for await (const chunk of stream) {
        if (!seen) {
          seen = true;
          firstChunks++;
        }
        finish = chunk.choices[0]?.finish_reason ?? finish;
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
      }
      ended.push(Date.now());
      return { finish, tokens };
    });
    while (firstChunks < 8) await new Promise((r) => setTimeout(r, 20));
    const stopped = await cli.run(['stop', 'drainer', '--timeout', '120']);
    const results = await Promise.all(streams);
    expect(results).toEqual(Array.from({ length: 8 }, () => ({ finish: 'length', tokens: 2000 })));
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('drainer stopped');
    const log = fs.readFileSync(path.join(cli.home, 'drainer', 'logs', 'grpst_server.log'), 'utf8');
    expect(log).toContain('drained; exiting');
    // Every stream was still running when the server got SIGTERM: the drain is what let them finish.
    const sigterm = Date.parse(/^(\S+) INFO SIGTERM: draining/m.exec(log)![1]);
    expect(Math.min(...ended)).toBeGreaterThan(sigterm);
  });

  it('while a stop drains, ps says draining (not unhealthy) and a start of the name waits for it', async () => {
    const port = await freePort('127.0.0.1');
    await startProject(project('draining', serverOn(port)), 'slow', undefined, { GRPST_DRAIN_TIMEOUT_S: '90' });
    // The server's own drain limit is kept with its state: stop waits for it, whatever the
    // stopping shell's GRPST_DRAIN_TIMEOUT_S says.
    const state = stateOf('slow') as ServerState;
    expect(state.drainTimeoutS).toBe(90);
    expect(defaultStopTimeoutS(state, { GRPST_DRAIN_TIMEOUT_S: '1' })).toBe(120);
    expect(defaultStopTimeoutS({ ...state, drainTimeoutS: undefined }, { GRPST_DRAIN_TIMEOUT_S: '1' })).toBe(31);
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    const ac = new AbortController();
    // @ts-expect-error vLLM/grpst extension: keep generating past end-of-text.
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 40000, stream: true, ignore_eos: true }, { signal: ac.signal });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next(); // generating: the drain must wait for this answer
    const stopping = cli.run(['stop', 'slow'], { env: { GRPST_DRAIN_TIMEOUT_S: '1' } });
    let row: { status: string; drainingSince: string | null } | undefined;
    for (let i = 0; i < 100 && row?.status !== 'draining'; i++) {
      const listed = JSON.parse((await cli.run(['ps', '--json'])).stdout) as { name: string; status: string; drainingSince: string | null }[];
      row = listed.find((r) => r.name === 'slow');
      expect(row?.status).not.toBe('unhealthy');
    }
    expect(row?.status).toBe('draining');
    expect(Date.parse(row!.drainingSince!)).toBeGreaterThan(Date.now() - 60_000);
    expect((await cli.run(['ps'])).stdout).toMatch(/\sslow\s.*\sdraining \(since \d{4}-/);
    const again = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'slow'], { cwd: path.join(work, 'draining') });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('slow is still stopping (draining since');
    ac.abort(); // the client leaves: its request ends, so does the drain
    const stopped = await stopping;
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('slow stopped');
    expect(fs.readdirSync(path.join(cli.home, '.run')).filter((f) => f.startsWith('slow.'))).toEqual([]);
  });

  /**
   * Starts NAME with an answer streaming, runs `grpst stop NAME` and interrupts it (Ctrl-C) once it
   * drains; returns when ps shows the server draining, with the abort that ends the answer.
   */
  async function interruptedStop(name: string): Promise<AbortController> {
    const port = await freePort('127.0.0.1');
    await startProject(project(`stop-interrupted-${name}`, serverOn(port)), name);
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    const ac = new AbortController();
    // @ts-expect-error vLLM/grpst extension: keep generating past end-of-text.
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 40000, stream: true, ignore_eos: true }, { signal: ac.signal });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next(); // generating: the drain waits for this answer
    const stop = execa(process.execPath, [...cliArgv, 'stop', name], { env: cli.env, reject: false, stdin: 'ignore' });
    let said = '';
    stop.stderr?.on('data', (d: Buffer) => {
      said += String(d);
      if (said.includes('draining in-flight requests')) stop.kill('SIGINT');
    });
    const interrupted = await stop;
    expect(interrupted.exitCode, said).toBe(130);
    expect(said).toContain(`SIGINT: stopped waiting; ${name} goes on draining`);
    expect(said).toContain(`\`grpst stop ${name}\` waits for it again`);
    // The SIGTERM went out before the interrupt; on a busy machine the server may take a moment to act on it.
    let status: string | undefined;
    for (let i = 0; i < 100 && status !== 'draining'; i++) {
      status = (JSON.parse((await cli.run(['ps', '--json'])).stdout) as { name: string; status: string }[]).find((r) => r.name === name)?.status;
      expect(status).toMatch(/^(running|draining)$/);
    }
    expect(status).toBe('draining');
    return ac;
  }

  it('Ctrl-C on a stop that drains: it says the server goes on draining, and a second stop waits for it', async () => {
    const ac = await interruptedStop('patient');
    // The client leaves once the second stop is waiting on the drain (not after a fixed delay: on
    // a busy machine the drain could end before that stop had even looked, and find no server).
    const again = execa(process.execPath, [...cliArgv, 'stop', 'patient'], { env: cli.env, reject: false, stdin: 'ignore' });
    let saidAgain = '';
    again.stderr?.on('data', (d: Buffer) => {
      saidAgain += String(d);
      if (saidAgain.includes('draining in-flight requests')) ac.abort(); // its request ends, so does the drain
    });
    const stopped = await again;
    expect(stopped.exitCode, saidAgain).toBe(0);
    expect(saidAgain).toContain('patient stopped');
  });

  it('Ctrl-C on a stop, then the drain ends on its own: the server is gone from ps, not listed dead', async () => {
    const ac = await interruptedStop('finisher');
    const { pgid } = stateOf('finisher');
    ac.abort(); // its request ends, so does the drain, with no stop waiting
    for (let i = 0; i < 300 && groupMembers(pgid).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(groupMembers(pgid)).toEqual([]);
    const log = fs.readFileSync(path.join(cli.home, 'finisher', 'logs', 'grpst_server.log'), 'utf8');
    expect(log).toContain('drained; exiting');
    // As `docker ps` after a container exited cleanly: not listed, and nothing left to prune.
    const ps = await cli.run(['ps', '--json']);
    expect((JSON.parse(ps.stdout) as { name: string }[]).map((r) => r.name)).not.toContain('finisher');
    expect((await cli.run(['ps'])).stdout).not.toMatch(/\sfinisher\s/);
    expect(fs.readdirSync(path.join(cli.home, '.run')).filter((f) => f.startsWith('finisher.'))).toEqual([]);
    const stop = await cli.run(['stop', 'finisher']);
    expect(stop.stderr).toContain('finisher is not running (it stopped at');
  });

  it('stop --timeout shorter than a running answer: the server is killed, and its log says so', async () => {
    const port = await freePort('127.0.0.1');
    await startProject(project('kill', serverOn(port)), 'killed');
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    // @ts-expect-error vLLM/grpst extension: keep generating past end-of-text.
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 3000, stream: true, ignore_eos: true });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next(); // generating
    const stopped = await cli.run(['stop', 'killed', '--timeout', '1']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('killed did not finish within 1 s and was killed');
    const log = fs.readFileSync(path.join(cli.home, 'killed', 'logs', 'grpst_server.log'), 'utf8');
    expect(log).toMatch(/ERROR grpst stop: the drain did not finish within 1 s; the server was killed \(SIGKILL\)/);
    const rest = (async () => {
      for (let r = await chunks.next(); !r.done; r = await chunks.next());
    })();
    await expect(rest).rejects.toThrow(); // the answer was cut, not finished
  });

  it('grpst serve runs in the foreground and exits 0 after draining on SIGTERM', async () => {
    const port = await freePort('127.0.0.1');
    const dir = project('foreground', serverOn(port));
    const child = serveInForeground(dir);
    await waitHealthy(port);
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(0);
    expect(String(result.stdout)).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+[\s\S]*SIGTERM: draining[\s\S]*drained; exiting/);
  });

  it('grpst serve stopped before it listens exits 0, not killed by the signal', async () => {
    const dir = project('early', serverOn(await freePort('127.0.0.1')));
    const child = serveInForeground(dir);
    // Its first line comes before the confs and the tokenizer are read, well before it listens.
    await new Promise<void>((resolve) => child.stdout!.on('data', (b: Buffer) => String(b).includes('grpst serve (pid') && resolve()));
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode, String(result.stdout)).toBe(0);
    expect(String(result.stdout)).toMatch(/SIGTERM (before the server listened: exiting|: draining)/);
  });

  it('grpst serve: a second Ctrl-C cancels the answers still running and exits 130 at once', async () => {
    const port = await freePort('127.0.0.1');
    const dir = project('interrupted', serverOn(port));
    const child = serveInForeground(dir);
    await waitHealthy(port);
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    // @ts-expect-error vLLM/grpst extension: keep generating past end-of-text.
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 40000, stream: true, ignore_eos: true });
    const chunks = stream[Symbol.asyncIterator]();
    await chunks.next(); // generating
    const rest = (async () => {
      let finish: string | null | undefined;
      for (let r = await chunks.next(); !r.done; r = await chunks.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
      return finish;
    })().catch((e: unknown) => e);
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    const second = Date.now();
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(Date.now() - second).toBeLessThan(15_000); // not the whole 40,000-token answer
    expect(await rest).not.toBe('length'); // cut: an error, not a finished answer
    expect(String(result.stdout) + String(result.stderr)).toContain('second interrupt: cancelling the requests in flight');
  });

  it('a typo in --inference_conf: exit 2, the archive\'s confs listed, nothing deployed', async () => {
    const dir = project('typo', serverOn(await freePort('127.0.0.1')));
    const archived = await cli.run(['archive', '.'], { cwd: dir });
    expect(archived.code, archived.stderr).toBe(0);
    const r = await cli.run(['start', './server.mar', '--inference_conf=conf/infernce_tiny.yml', '--name', 'typo'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--inference_conf=conf/infernce_tiny.yml: no such file in ./server.mar');
    expect(r.stderr).toContain('fix: the archive holds --inference_conf=conf/inference_tiny.yml');
    expect(fs.existsSync(path.join(cli.home, 'typo'))).toBe(false);
    expect(fs.existsSync(path.join(cli.home, '.run', 'typo.json'))).toBe(false);
  });

  it('two starts racing for one port: one serves, the other fails (never both "running")', async () => {
    const dir = project('race', serverOn(await freePort('127.0.0.1')));
    expect((await cli.run(['archive', '.', '--include_engine'], { cwd: dir })).code).toBe(0);
    const start = (name: string) => cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', name, '--timeout', '60'], { cwd: dir });
    const results = await Promise.all([start('race1'), start('race2')]);
    // The loser fails at the port check (2) or, when both passed it together, once its daemon
    // cannot listen (4); before, the second one took the winner's /health as its own and said 0.
    const codes = results.map((r) => r.code).sort();
    expect(codes[0]).toBe(0);
    expect([2, 4]).toContain(codes[1]);
    const loser = results.find((r) => r.code !== 0)!;
    expect(loser.stderr).toMatch(/is already in use|is taken by grpst server/);
    const ps = await cli.run(['ps', '--json']);
    const listed = (JSON.parse(ps.stdout) as { name: string; status: string }[]).filter((s) => s.name.startsWith('race'));
    expect(listed.map((s) => s.status)).toEqual(['running']);
    expect((await cli.run(['stop', listed[0].name, '--timeout', '30'])).code).toBe(0);
  });

  it('deploy settings that cannot work are refused before anything is deployed: exit 2', async () => {
    const blocker = path.join(work, 'a-file');
    fs.writeFileSync(blocker, 'x');
    const cases: [string, string, RegExp][] = [
      ['logdir', `${serverOn(await freePort('127.0.0.1'))}log:\n  log_dir: ${blocker}/logs\n`, /log\.log_dir .*a-file\/logs cannot be created: .*a-file is a file/],
      // /proc takes no new folders, even from root (whom its permission bits let write).
      ['procdir', `${serverOn(await freePort('127.0.0.1'))}log:\n  log_dir: /proc/grpst-none/logs\n`, /log\.log_dir \/proc\/grpst-none\/logs cannot be created \(E[A-Z]+\)/],
      ['badhost', 'interface:\n  host: no.such.host.invalid\n  port: 0\n', /cannot listen on no\.such\.host\.invalid:0 \(ENOTFOUND|EAI_AGAIN/],
    ];
    for (const [name, yml, message] of cases) {
      const dir = project(name, yml);
      expect((await cli.run(['archive', '.', '--include_engine'], { cwd: dir })).code).toBe(0);
      const r = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', name], { cwd: dir });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(fs.existsSync(path.join(cli.home, name)), name).toBe(false);
      expect(fs.existsSync(path.join(cli.home, '.run', `${name}.json`)), name).toBe(false);
    }
    const dir = path.join(work, 'logdir');
    const home = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'nohome'], { cwd: dir, env: { GRPST_HOME: path.join(blocker, 'home') } });
    expect(home.code).toBe(2);
    expect(home.stderr).toMatch(/cannot use .*a-file\/home as GRPST_HOME \(ENOTDIR\)\n.*fix: set GRPST_HOME to a folder you can write/);
    const toFolder = await cli.run(['archive', '.', '-o', work], { cwd: dir });
    expect(toFolder.code).toBe(2);
    expect(toFolder.stderr).toMatch(/-o .* is a folder\n.*fix: -o takes the archive's file path: pass -o .*server\.mar/);
  });

  it('a crash while loading (corrupt weights): start fails with the log tail and no state', async () => {
    const corrupt = path.join(work, 'corrupt-model');
    fs.cpSync(model, corrupt, { recursive: true });
    const weights = path.join(corrupt, 'model.safetensors');
    fs.truncateSync(weights, Math.floor(fs.statSync(weights).size / 2));
    const port = await freePort('127.0.0.1');
    const dir = project('corrupt', serverOn(port), corrupt);
    const archived = await cli.run(['archive', '.'], { cwd: dir });
    expect(archived.code).toBe(0);
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'broken'], { cwd: dir });
    expect(res.code).toBe(4);
    expect(res.stderr).toContain('broken exited while starting; the last lines of its log:');
    expect(res.stderr).toMatch(/\| .*ERROR the engine could not be loaded: .*model\.safetensors/);
    expect(fs.existsSync(path.join(cli.home, '.run', 'broken.json'))).toBe(false);
    expect((await cli.run(['ps'])).stdout).not.toContain('broken');
    // In the foreground the same failure is exit 4 ("the work failed"), not 1 (an unknown name).
    const serve = await cli.run(['serve', '--inference_conf', 'conf/inference_tiny.yml', '--server_conf', 'conf/server.yml'], { cwd: dir });
    expect(serve.code).toBe(4);
    // Errors on stderr (journald and container runtimes tell severity by the stream), once.
    expect(serve.stderr).toMatch(/ERROR the engine could not be loaded: .*model\.safetensors/);
    expect(serve.stdout).toMatch(/INFO loading /);
    expect(serve.stdout).not.toMatch(/ERROR|WARN/);
    expect((serve.stdout + serve.stderr).match(/could not be loaded|loading the engine failed/g)).toHaveLength(1);
  });

  it('with an API key: /v1 demands it, and the key appears in no log, argv, state file or ps output', async () => {
    const key = `sk-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const port = await freePort('127.0.0.1');
    const dir = project('auth', serverOn(port, 'api_key_file: secrets/key\n'));
    fs.mkdirSync(path.join(dir, 'secrets'));
    fs.writeFileSync(path.join(dir, 'secrets', 'key'), `${key}\n`, { mode: 0o600 });
    const started = await startProject(dir, 'locked');
    expect(chatHint(started).headers).toContain('Authorization: Bearer <api key>');

    const denied = await fetch(`http://127.0.0.1:${port}/v1/models`);
    expect(denied.status).toBe(401);
    const allowed = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect(allowed.status).toBe(200);
    const ps = await cli.run(['ps', '--json']);
    expect(JSON.parse(ps.stdout)[0].status).toBe('running');

    const { pid } = stateOf('locked');
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const texts = [ps.stdout, (await cli.run(['ps'])).stdout, cmdline, fs.readFileSync(path.join(cli.home, '.run', 'locked.json'), 'utf8')];
    expect((await cli.run(['stop', 'locked'])).code).toBe(0);
    texts.push(fs.readFileSync(path.join(cli.home, 'locked', 'logs', 'grpst_server.log'), 'utf8'));
    for (const text of texts) expect(text).not.toContain(key);
  });
});
