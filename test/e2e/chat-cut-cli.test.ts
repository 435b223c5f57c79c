// `grpst chat` against a server whose answer stream stops early: a stream that closes cleanly
// without `data: [DONE]` and before any finish_reason is an answer cut off (a proxy's timeout, a
// server restart), not a finished one. The turn fails, saying so, with the text that came still
// shown, and stays out of the history; a finish_reason without [DONE], or a [DONE] without its
// blank line, still ends the answer whole.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';

let cli: Cli;
let server: http.Server;
let url = '';
/** The messages of every chat request, in arrival order. */
const asked: { role: string; content: string }[][] = [];

const frame = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`;
const delta = (d: Record<string, unknown>, finish: string | null = null) => frame({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: d, finish_reason: finish }] });

beforeAll(async () => {
  cli = makeCli();
  server = http.createServer((req, res) => {
    if (req.url === '/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'qwen3' }] }));
    let body = '';
    req.on('data', (b) => (body += b));
    req.on('end', () => {
      const messages = JSON.parse(body).messages;
      asked.push(messages);
      const question = messages.at(-1).content;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(delta({ role: 'assistant', content: '' }));
      // Closed cleanly mid-answer: no finish_reason, no [DONE].
      if (question === 'Cut') return void res.end(delta({ content: 'Half an ' }) + delta({ content: 'answer' }));
      if (question === 'Cut while thinking') return void res.end(delta({ content: '<think>\nhalf a thought' }));
      // Finished, though the end marker never came.
      if (question === 'Finish') return void res.end(delta({ content: 'Whole.' }) + delta({}, 'stop'));
      // The end marker without its blank line.
      res.end(`${delta({ content: 'Done.' })}data: [DONE]`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (cli) fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst chat when the answer stream ends before the server finished it', () => {
  it('is a failed turn that says the answer was cut off, the partial text still shown; a finish_reason or [DONE] ends it whole', async () => {
    const child = execa(process.execPath, [...cliArgv, 'chat', '--url', url], {
      env: { ...cli.env, NO_COLOR: '1', FORCE_COLOR: undefined, GRPST_API_KEY: undefined },
      cwd: cli.home,
      reject: false,
      stdin: 'pipe',
      timeout: 120_000,
    });
    child.stdin!.end('Cut\nFinish\nCut while thinking\nDone\n');
    const r = await child;
    const [stdout, stderr] = [String(r.stdout), String(r.stderr)];
    // Piped input is a script: the cut turns show in the exit status.
    expect(r.exitCode, stderr).toBe(1);
    expect(stderr).toContain('2 of 4 turns failed');
    // Piped, stdout holds the answers: the partial one as it came, ended by its line.
    expect(stdout).toBe('Half an answer\nWhole.\nDone.');
    const cut = 'error: the answer was cut off: the connection closed before the server finished it\n';
    expect(stderr.split(cut)).toHaveLength(3);
    expect(stderr).toContain(`thinking: half a thought\n${cut}`);
    // The two whole answers have their stats; a cut one none.
    expect(stderr.match(/^\(.*\)$/gm)).toHaveLength(2);
    // A cut turn is forgotten, question and all: the next question is sent after the last whole turn.
    expect(asked.map((m) => m.map((x) => `${x.role}: ${x.content}`))).toEqual([
      ['user: Cut'],
      ['user: Finish'],
      ['user: Finish', 'assistant: Whole.', 'user: Cut while thinking'],
      ['user: Finish', 'assistant: Whole.', 'user: Done'],
    ]);
  });
});
