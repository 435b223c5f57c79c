// grpst chat and grpst bench at a server's limits and at servers that are not one: a chat grown
// past the engine's max_input_len is told once that /reset starts over (and /reset does), a bench
// prompt past max_input_len is refused before anything is sent, as one past max_model_len is;
// and a web server that is no OpenAI-compatible API is summed up by status and content type,
// its HTML page never printed; https:// given for a plain-HTTP server is named with the http:// address.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { serveForeground, type ForegroundServer } from '../helpers/foreground-server.js';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let server: ForegroundServer | undefined;
let web: http.Server;
let webUrl = '';
const page = `<!DOCTYPE HTML>\n<html lang="en"><head><title>Error response</title></head>\n<body><h1>Error response</h1><p>Error code: 404</p></body></html>\n`;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-chat-bench-limits-'));
  cli = makeCli();
  const engine = path.join(work, 'engine');
  const built = await cli.run(['build', '--model_dir', checkpoint('tiny-a'), '--output_dir', engine, '--max_input_len', '48', '--max_seq_len', '128', '--eval_tokens', '64']);
  expect(built.code, built.stderr).toBe(0);
  server = await serveForeground(cli, ['--model_dir', engine], work);
  // As `python3 -m http.server`: every API path is a 404 page; under /half, /v1/models answers as an API would.
  web = http.createServer((req, res) => {
    if (req.url === '/half/v1/models') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [{ id: 'm' }] }));
    res.writeHead(404, { 'content-type': 'text/html;charset=utf-8' }).end(page);
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  webUrl = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await new Promise((resolve) => web?.close(resolve));
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

async function chat(args: string[], input: string) {
  const child = execa(process.execPath, [...cliArgv, 'chat', ...args], { env: { ...cli.env, NO_COLOR: '1', GRPST_API_KEY: undefined }, cwd: work, reject: false, stdin: 'pipe', timeout: 120_000 });
  child.stdin!.end(input);
  const r = await child;
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe('grpst chat past the context', () => {
  it('says once that /reset starts over; later refusals are one line; /reset does start over', async () => {
    const line = 'please tell me a long story about the sea and the ships';
    const turns = [line, line, line, line, '/reset', 'hi'];
    const r = await chat(['--url', server!.url, '--max_tokens', '4'], `${turns.join('\n')}\n`);
    const refusals = r.stderr.match(/^error: .*$/gm) ?? [];
    expect(refusals.length, r.stderr).toBeGreaterThanOrEqual(2);
    expect(refusals[0]).toMatch(/\b48 tokens/);
    expect(r.stderr.match(/\/reset starts over/g)).toHaveLength(1);
    expect(refusals.slice(1)).toEqual(refusals.slice(1).map(() => "error: the conversation is still past the model's context (refused again)"));
    // The turn after /reset is answered.
    const afterReset = r.stderr.slice(r.stderr.indexOf('conversation forgotten'));
    expect(afterReset).toMatch(/\(prompt \d+ tokens, answer 4 tokens/);
    expect(r.stderr).toContain(`${refusals.length} of 5 turns failed`);
  }, 120_000);
});

describe('grpst bench at the limits /v1/models lists', () => {
  it('a prompt past max_input_len is refused before anything is sent, exit 2', async () => {
    const before = await (await fetch(`${server!.url}/metrics`)).text();
    const r = await cli.run(['bench', '--url', server!.url, '--prompt_tokens', '60', '--output_tokens', '4'], { cwd: work });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain("--prompt_tokens 60 is past the model's max_input_len 48 (the longest prompt it takes)");
    expect(r.stderr).toContain('fix: lower --prompt_tokens to at most 48');
    // within the limit on average, past it at the longest --random_range_ratio draws
    const ranged = await cli.run(['bench', '--url', server!.url, '--prompt_tokens', '40', '--output_tokens', '4', '--random_range_ratio', '0.5'], { cwd: work });
    expect(ranged.code, ranged.stderr).toBe(2);
    expect(ranged.stderr).toContain("--prompt_tokens 40 with --random_range_ratio 0.5 (up to 60) is past the model's max_input_len 48 (the longest prompt it takes)");
    expect(ranged.stderr).toContain('fix: lower --prompt_tokens or --random_range_ratio to at most 48 tokens a prompt');
    const count = (text: string) => /^grpst_requests_total\{route="\/v1\/completions",status="400"\} (\d+)$/m.exec(text)?.[1] ?? '0';
    expect(count(await (await fetch(`${server!.url}/metrics`)).text())).toBe(count(before));
  });
});

describe('a server that is not an OpenAI-compatible API', () => {
  it('grpst chat and grpst bench say so by status and content type, without the page', async () => {
    for (const command of [['chat'], ['bench', '--requests', '1']]) {
      const r = await cli.run([...command, '--url', webUrl], { cwd: work });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`error: no OpenAI-compatible API at ${webUrl}: GET /v1/models answered 404 (text/html, ${Buffer.byteLength(page)} bytes)`);
      expect(r.stderr).toContain('fix: check that --url names an OpenAI-compatible server');
      expect(r.stderr).not.toMatch(/DOCTYPE|<html/i);
    }
  });

  it('https:// to a plain-HTTP server: named with the http:// address to use, not OpenSSL\'s words', async () => {
    const https = webUrl.replace(/^http:/, 'https:');
    for (const command of [['chat'], ['bench', '--requests', '1']]) {
      const r = await cli.run([...command, '--url', https], { cwd: work });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`error: the server at ${https} speaks plain HTTP, not HTTPS`);
      expect(r.stderr).toContain(`fix: use ${webUrl}`);
      expect(r.stderr).not.toMatch(/ssl3_get_record|wrong version number/i);
    }
  });

  it('one that lists models but has no chat or completions route: the failed turn and request are summed up too', async () => {
    const chatted = await chat(['--url', `${webUrl}/half`], 'hi\n');
    expect(chatted.stderr).toContain(`error: the server answered 404: text/html, ${Buffer.byteLength(page)} bytes`);
    const bench = await cli.run(['bench', '--url', `${webUrl}/half`, '--requests', '1'], { cwd: work });
    expect(bench.code).toBe(4);
    expect(bench.stderr).toContain(`failed: HTTP 404: text/html, ${Buffer.byteLength(page)} bytes`);
    for (const text of [chatted.stdout, chatted.stderr, bench.stderr]) expect(text).not.toMatch(/DOCTYPE|<html/i);
  });
});
