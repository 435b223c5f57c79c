// `grpst chat NAME` as a person uses it: a server started with `grpst start` (API key in its
// server.yml) is found by name, questions go in on stdin, answers stream out; multi-turn history,
// /think, Ctrl-C stopping an answer (the server frees the slot), and the errors for a wrong name,
// a wrong key and a dead server. With stdout piped, stdout holds only the answers: the banner,
// thinking and stats go to stderr, as with `ollama run`. Thinking shown dimmed needs a think
// block, which the random model never writes: that part talks to an in-process server replaying
// a recorded output, found through a state file like any other server.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa, execaSync, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { writeState } from '../../src/daemon/state.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';
import { ScriptedEngine } from './scripted-engine.js';
import { get, loadTiny, metric, post, waitFor, type TinyModel } from './server-harness.js';

const apiKey = 'chat-cli-test-key-42';
let work: string;
let cli: Cli;
let port: number;
const base = () => `http://127.0.0.1:${port}`;

/** `grpst chat ARGS` with stdin fed by the test. */
function chat(args: string[], env: NodeJS.ProcessEnv = {}): ResultPromise<{ reject: false; stdin: 'pipe' }> {
  return execa(process.execPath, [...cliArgv, 'chat', ...args], {
    env: { ...cli.env, NO_COLOR: '1', FORCE_COLOR: undefined, GRPST_API_KEY: undefined, ...env },
    cwd: cli.home,
    reject: false,
    stdin: 'pipe',
    timeout: 120_000,
  }) as ResultPromise<{ reject: false; stdin: 'pipe' }>;
}

async function chatWith(args: string[], input: string, env: NodeJS.ProcessEnv = {}) {
  const child = chat(args, env);
  child.stdin!.end(input);
  const r = await child;
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const statsLines = (stdout: string) => [...stdout.matchAll(/^\((?:stopped, )?prompt (\d+) tokens, answer (\d+) tokens, [\d.]+ tokens\/s(, cut at max_tokens)?\)$/gm)];

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-chat-'));
  cli = makeCli();
  port = await freePort('127.0.0.1');
  const dir = path.join(work, 'project');
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', checkpoint('tiny-a'));
  fs.writeFileSync(path.join(dir, 'conf', 'inference_tiny.yml'), conf);
  fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), `interface:\n  host: 127.0.0.1\n  port: ${port}\napi_key: ${apiKey}\n`);
  const archived = await cli.run(['archive', '.', '--include_engine'], { cwd: dir });
  expect(archived.code, archived.stderr).toBe(0);
  const started = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'chatty'], { cwd: dir });
  expect(started.code, started.stderr).toBe(0);
});

afterAll(async () => {
  await cli?.run(['stop', 'chatty', '--timeout', '5']);
  fs.rmSync(work, { recursive: true, force: true });
  if (cli) fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst chat against a started server', () => {
  it('finds the server and its API key by name; multi-turn answers stream; /think and /exit', async () => {
    const r = await chatWith(['chatty', '--max_tokens', '6'], 'Hello\n/think off\nAnd a second question\n/exit\nnever sent\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`chatting with chatty (model qwen3 at ${base()}); /help for commands`);
    expect(r.stderr).toContain('thinking off');
    const stats = statsLines(r.stderr);
    expect(stats).toHaveLength(2);
    expect(stats.map((m) => Number(m[2]))).toEqual([6, 6]);
    expect(stats.every((m) => m[3] === ', cut at max_tokens')).toBe(true);
    // The first turn uses the conf's default (thinking on); the second carries the history.
    const first = await post(`${base()}/tokenize`, { model: 'qwen3', messages: [{ role: 'user', content: 'Hello' }] }, { authorization: `Bearer ${apiKey}` });
    expect(Number(stats[0][1])).toBe(first.json.count);
    expect(Number(stats[1][1])).toBeGreaterThan(first.json.count + 6);
  });

  it('piped in and out (`echo Hello | grpst chat chatty > out`): stdout holds only the answer', async () => {
    const r = await chatWith(['chatty', '--max_tokens', '6', '--temperature', '0', '--enable_thinking', 'false'], 'Hello\n');
    expect(r.code, r.stderr).toBe(0);
    const direct = await post(`${base()}/v1/chat/completions`, { model: 'qwen3', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 6, temperature: 0, enable_thinking: false }, { authorization: `Bearer ${apiKey}` });
    const answer = (direct.json as { choices: { message: { content: string } }[] }).choices[0].message.content;
    // The chat drops the blank before an answer; execa drops the newline that ends stdout.
    expect(r.stdout).toBe(answer.trimStart().replace(/\n$/, ''));
    expect(r.stderr).toContain(`chatting with chatty (model qwen3 at ${base()}); /help for commands`);
    expect(statsLines(r.stderr)).toHaveLength(1);
  });

  it('Ctrl-C stops the answer (the server cancels it) and the chat goes on', async () => {
    const cancelled = async () => Number(/^grpst_request_finished_total\{reason="cancelled"\} (\d+)$/m.exec((await get(`${base()}/metrics`)).text)?.[1] ?? 0);
    const before = await cancelled();
    const child = chat(['chatty', '--max_tokens', '3000']);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    child.stdin!.write('Write a long story\n');
    await waitFor(async () => out.length > 200, 60_000);
    child.kill('SIGINT');
    await waitFor(async () => /^\(stopped/m.test(out), 20_000);
    await waitFor(async () => (await cancelled()) > before, 30_000);
    expect(metric((await get(`${base()}/metrics`)).text, 'grpst_requests_running')).toBe(0);
    child.stdin!.end('/exit\n');
    const r = await child;
    expect(r.exitCode).toBe(0);
  });

  it("Ollama's /bye, /clear and /set nothink work; an unknown command is named, not sent", async () => {
    const r = await chatWith(['chatty', '--max_tokens', '2'], '/set nothink\n/clear\n/nope now\n/bye\nnever sent\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('thinking off\nconversation forgotten\nunknown command /nope now; /help lists them');
    expect(r.stdout).toBe('');
    expect(statsLines(r.stderr)).toHaveLength(0);
  });

  it('--url with a path the server has no API under is named with the address to give', async () => {
    const r = await chatWith(['--url', `${base()}/v2`], '', { GRPST_API_KEY: apiKey });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: no OpenAI-compatible API at ${base()}/v2: GET /v1/models answered 404 (not found)`);
    expect(r.stderr).toContain(`fix: give --url the server's address alone or with /v1, e.g. --url ${base()}`);
  });

  it('a wrong key, an unknown name and a dead server are named with the fix', async () => {
    const wrongKey = await chatWith(['chatty'], 'Hello\n', { GRPST_API_KEY: 'not-the-right-key' });
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain('the server chatty refused the API key');
    expect(wrongKey.stderr).toContain('fix: pass --api_key KEY or set GRPST_API_KEY');

    const unknown = await chatWith(['nobody'], '');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no server named nobody');
    expect(unknown.stderr).toContain('running servers: chatty');

    const state = JSON.parse(fs.readFileSync(path.join(cli.home, '.run', 'chatty.json'), 'utf8'));
    writeState({ ...state, name: 'ghost', pid: 999_999, pgid: 999_999, procStart: undefined }, cli.home);
    const dead = await chatWith(['ghost'], '');
    expect(dead.code).toBe(2);
    expect(dead.stderr).toContain('the server ghost is not running (pid 999999 died)');
    fs.rmSync(path.join(cli.home, '.run', 'ghost.json'));
    fs.rmSync(path.join(cli.home, '.run', 'ghost.pid'));
  });
});

describe('grpst chat shows thinking dimmed', () => {
  let model: TinyModel;
  let server: RunningServer;
  let scripted: ScriptedEngine;

  beforeAll(async () => {
    model = await loadTiny('tiny-a');
    scripted = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Think first', reply: '<think>\nWeighing the options.\n</think>\n\nThe answer is 42.' }]);
    server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true });
    await server.ready;
    const url = new URL(server.url);
    // A state file like `grpst start` writes, for a server this test process runs.
    writeState(
      { name: 'replay', pid: process.pid, pgid: process.pid, deployPath: work, host: url.hostname, httpPort: Number(url.port), backend: 'native', logFile: path.join(work, 'replay.log'), inferenceConf: path.join(work, 'none.yml'), startedAt: new Date().toISOString(), authHealth: false },
      cli.home,
    );
  });

  afterAll(async () => {
    fs.rmSync(path.join(cli.home, '.run', 'replay.json'), { force: true });
    fs.rmSync(path.join(cli.home, '.run', 'replay.pid'), { force: true });
    await server?.close();
    await model?.engine.close();
  });

  it('dim think block, plain answer, and the turn goes back into the history', async () => {
    const r = await chatWith(['replay'], 'Think first\nThink first\n', { NO_COLOR: undefined, FORCE_COLOR: '1' });
    expect(r.code, r.stderr).toBe(0);
    // Piped: the answers alone on stdout, the thinking (dimmed) and the stats on stderr.
    expect(r.stdout).toBe('The answer is 42.\nThe answer is 42.');
    expect(r.stderr).toContain('\x1b[2mthinking: Weighing the options.\n\x1b[22m\x1b[2m(prompt ');
    const stats = [...r.stderr.matchAll(/prompt (\d+) tokens/g)].map((m) => Number(m[1]));
    expect(stats).toHaveLength(2);
    // The second prompt holds the first turn: the question and the answer.
    const withHistory = await post(`${server.url}/tokenize`, {
      messages: [
        { role: 'user', content: 'Think first' },
        { role: 'assistant', content: 'The answer is 42.' },
        { role: 'user', content: 'Think first' },
      ],
    });
    expect(stats[1]).toBe(withHistory.json.count);

    const plain = await chatWith(['replay'], 'Think first\n');
    expect(plain.stderr).not.toContain('\x1b[');
    expect(plain.stderr).toContain('thinking: Weighing the options.\n(prompt ');
    expect(plain.stdout).toBe('The answer is 42.');
    expect(scripted.requests.at(-1)!.thinkBudget).toBeUndefined();
  });

  it('--thinking_budget reaches the server as thinking_token_budget; a bad one is refused before the chat', async () => {
    const r = await chatWith(['replay', '--thinking_budget', '7'], 'Think first\n');
    expect(r.code, r.stderr).toBe(0);
    expect(scripted.requests.at(-1)!.thinkBudget).toMatchObject({ maxTokens: 7 });
    const bad = await chatWith(['replay', '--thinking_budget', 'lots'], '');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--thinking_budget takes a whole number (0 or more), got "lots"');
  });
});

describe('grpst chat on a terminal', () => {
  const hasScript = execaSync('sh', ['-c', 'command -v script'], { reject: false }).exitCode === 0;

  /** The processes under PID (`script`'s shell and the chat, on its pseudo-terminal), from ps's parent links. */
  function descendants(pid: number): number[] {
    const links = execaSync('ps', ['-e', '-o', 'pid=,ppid=']).stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    const found: number[] = [];
    for (let i = 0, parents = [pid]; i < 4 && parents.length > 0; i++) {
      parents = links.filter(([, ppid]) => parents.includes(ppid)).map(([p]) => p);
      found.push(...parents);
    }
    return found;
  }

  /** `grpst chat ARGS` on a pseudo-terminal (util-linux `script`), its output collected. */
  function onTerminal(args: string[], redirect = '') {
    const command = [process.execPath, ...cliArgv, 'chat', ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ') + redirect;
    const child = execa('script', ['-qfec', command, '/dev/null'], { env: { ...cli.env, NO_COLOR: '1', GRPST_API_KEY: undefined }, cwd: cli.home, reject: false, stdin: 'pipe', timeout: 120_000 });
    const seen = { text: '' };
    child.stdout!.on('data', (b: Buffer) => (seen.text += b.toString()));
    return { child, seen };
  }

  it.skipIf(!hasScript)('Ctrl-C on a half-typed line clears it and the chat goes on; Ctrl-C at an empty prompt leaves', async () => {
    const { child, seen } = onTerminal(['chatty', '--max_tokens', '3']);
    await waitFor(async () => seen.text.includes('> '), 30_000);
    child.stdin!.write('half typed');
    await waitFor(async () => seen.text.includes('half typed'), 10_000);
    child.stdin!.write('\x03');
    await new Promise((r) => setTimeout(r, 300));
    child.stdin!.write('Hello\n');
    await waitFor(async () => /prompt \d+ tokens/.test(seen.text), 60_000);
    child.stdin!.write('\x03');
    const r = await child;
    expect(r.exitCode, seen.text).toBe(0);
    const one = await post(`${base()}/tokenize`, { model: 'qwen3', messages: [{ role: 'user', content: 'Hello' }] }, { authorization: `Bearer ${apiKey}` });
    expect(Number(/prompt (\d+) tokens/.exec(seen.text)![1])).toBe(one.json.count);
  });

  it.skipIf(!hasScript)('with stdout piped, the prompt and typed keys stay on the terminal and the pipe gets no cursor codes', async () => {
    const file = path.join(work, 'piped.txt');
    const { child, seen } = onTerminal(['chatty', '--max_tokens', '3'], ` > '${file}'`);
    await waitFor(async () => seen.text.includes('> '), 30_000);
    child.stdin!.write('Hello\n');
    await waitFor(async () => /prompt \d+ tokens/.test(seen.text), 60_000);
    child.stdin!.write('\x04');
    const r = await child;
    expect(r.exitCode, seen.text).toBe(0);
    expect(seen.text).toMatch(/> (\x1b\[\d+G)?Hello/);
    // The file gets the answer alone, as with `ollama run > file`; the banner and stats stay on the terminal.
    const piped = fs.readFileSync(file, 'utf8');
    expect(piped).not.toContain('\x1b');
    expect(piped).not.toMatch(/chatting with|prompt \d+ tokens/);
    expect(piped).toMatch(/\n$/);
    expect(seen.text).toMatch(/chatting with chatty [^]*\(prompt \d+ tokens, answer 3 tokens, /);
  });

  it.skipIf(!hasScript)('a terminal resize during an answer does not redraw the prompt into it', async () => {
    const { child, seen } = onTerminal(['chatty', '--max_tokens', '3000']);
    await waitFor(async () => seen.text.includes('> '), 30_000);
    child.stdin!.write('Write a long story\n');
    await waitFor(async () => seen.text.length > 400, 60_000);
    // Resize the chat's pseudo-terminal as a terminal window does: the kernel sends it SIGWINCH.
    const tty = execaSync('ps', ['-o', 'tty=', '-p', String(descendants(child.pid!).at(-1))]).stdout.trim();
    for (const cols of [60, 100]) execaSync('stty', ['-F', `/dev/${tty}`, 'cols', String(cols), 'rows', '30']);
    await new Promise((r) => setTimeout(r, 300));
    child.stdin!.write('\x03');
    await waitFor(async () => /^\(stopped/m.test(seen.text), 20_000);
    child.stdin!.write('\x04');
    expect((await child).exitCode, seen.text).toBe(0);
    const answer = seen.text.slice(seen.text.indexOf('Write a long story'), seen.text.search(/^\(stopped/m));
    expect(answer).not.toContain('\x1b[');
  });

  it.skipIf(!hasScript)('a pasted block of lines is one message, and Ctrl-D during an answer ends the chat once it is done', async () => {
    const { child, seen } = onTerminal(['chatty', '--max_tokens', '300']);
    await waitFor(async () => seen.text.includes('> '), 30_000);
    child.stdin!.write('First line\n    second line, indented\n'); // one read of the terminal: a paste
    await waitFor(async () => /prompt \d+ tokens/.test(seen.text) || seen.text.length > 400, 60_000);
    child.stdin!.write('\x04'); // Ctrl-D, most likely while the answer still streams
    const r = await child;
    expect(r.exitCode, seen.text).toBe(0);
    const stats = [...seen.text.matchAll(/prompt (\d+) tokens/g)].map((m) => Number(m[1]));
    expect(stats).toHaveLength(1);
    const one = await post(`${base()}/tokenize`, { model: 'qwen3', messages: [{ role: 'user', content: 'First line\n    second line, indented' }] }, { authorization: `Bearer ${apiKey}` });
    expect(stats[0]).toBe(one.json.count);
  });
});

describe('grpst chat when the server goes away mid-answer', () => {
  it('says so, with how to check, and leaves the terminal undimmed', async () => {
    // A server that lists its model, starts a think block, then drops the connection.
    const server = http.createServer((req, res) => {
      if (req.url === '/v1/models') return void res.end(JSON.stringify({ object: 'list', data: [{ id: 'qwen3' }] }));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: '<think>\nhalf a thought' } }] })}\n\n`);
      setTimeout(() => req.socket.destroy(), 100);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port: gonePort } = server.address() as AddressInfo;
    writeState({ name: 'gone', pid: process.pid, pgid: process.pid, deployPath: work, host: '127.0.0.1', httpPort: gonePort, backend: 'native', logFile: path.join(work, 'gone.log'), inferenceConf: path.join(work, 'none.yml'), startedAt: new Date().toISOString(), authHealth: false }, cli.home);
    try {
      const r = await chatWith(['gone'], 'Hello\n', { NO_COLOR: undefined, FORCE_COLOR: '1' });
      // Piped input is a script: the unanswered turn shows in the exit status.
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('1 of 1 turn failed');
      expect(r.stderr).toContain('\x1b[2mthinking: half a thought\x1b[22m\nerror: the server gone went away');
      expect(r.stderr).toMatch(/error: the server gone went away \(.+\); `grpst ps` shows whether it runs, `grpst logs gone` why it stopped/);
    } finally {
      server.close();
      fs.rmSync(path.join(cli.home, '.run', 'gone.json'), { force: true });
      fs.rmSync(path.join(cli.home, '.run', 'gone.pid'), { force: true });
    }
  });
});
