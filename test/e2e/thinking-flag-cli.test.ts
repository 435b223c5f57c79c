// --enable_thinking is spelled alike on `grpst run` and `grpst chat`: bare (on), with true or
// false, or as --enable_thinking=false. Qwen3's template closes an empty think block in the prompt
// when thinking is off, so the prompt's token count tells which one reached the template: the
// engine's in `grpst run`, a real server's in `grpst chat`.
import fs from 'node:fs';
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

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-thinking-flag-'));
  cli = makeCli();
  server = await serveForeground(cli, ['--model_dir', checkpoint('tiny-a')], work);
}, 90_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

async function runPromptTokens(flags: string[]): Promise<number> {
  const r = await cli.run(['run', '--engine_dir', checkpoint('tiny-a'), '--input_text', 'hi', '--max_output_len', '1', ...flags], { cwd: work });
  expect(r.code, `${flags.join(' ')}: ${r.stderr}`).toBe(0);
  return Number(/prompt tokens: (\d+)/.exec(r.stdout)![1]);
}

async function chatPromptTokens(args: string[]): Promise<number> {
  const child = execa(process.execPath, [...cliArgv, 'chat', ...args, '--max_tokens', '1'], { env: { ...cli.env, NO_COLOR: '1', GRPST_API_KEY: undefined }, cwd: work, reject: false, stdin: 'pipe', timeout: 60_000 });
  child.stdin!.end('hi\n');
  const r = await child;
  expect(r.exitCode, `${args.join(' ')}: ${String(r.stderr)}`).toBe(0);
  return Number(/\(prompt (\d+) tokens/.exec(String(r.stderr))![1]);
}

describe('--enable_thinking', () => {
  it('grpst run: bare, true and =true think; false and =false do not, as without the flag', async () => {
    const [bare, on, onEq, off, offEq, none] = [
      await runPromptTokens(['--enable_thinking']),
      await runPromptTokens(['--enable_thinking', 'true']),
      await runPromptTokens(['--enable_thinking=true']),
      await runPromptTokens(['--enable_thinking', 'false']),
      await runPromptTokens(['--enable_thinking=false']),
      await runPromptTokens([]),
    ];
    expect([on, onEq]).toEqual([bare, bare]);
    expect([offEq, none]).toEqual([off, off]);
    expect(off).toBeGreaterThan(bare); // the empty think block
  }, 120_000);

  it('grpst chat: the same spellings, and bare before the server name still finds the server', async () => {
    const url = server!.url;
    const on = await chatPromptTokens(['--url', url, '--enable_thinking']);
    expect(await chatPromptTokens(['--url', url, '--enable_thinking', 'true'])).toBe(on);
    const off = await chatPromptTokens(['--url', url, '--enable_thinking=false']);
    expect(await chatPromptTokens(['--url', url, '--enable_thinking', 'false'])).toBe(off);
    expect(off).toBeGreaterThan(on);
    // The switch does not swallow the name that follows it.
    const named = await cli.run(['chat', '--enable_thinking', 'nosuch'], { cwd: work });
    expect(named.code).toBe(1);
    expect(named.stderr).toContain('no server named nosuch');
  }, 120_000);

  it('any other value is refused by the flag, on both commands', async () => {
    for (const args of [['run', '--engine_dir', checkpoint('tiny-a'), '--input_text', 'hi', '--enable_thinking', 'maybe'], ['chat', '--enable_thinking', 'maybe', 'my_grps'], ['chat', '--enable_thinking=maybe']]) {
      const r = await cli.run(args, { cwd: work });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('--enable_thinking takes true or false, got "maybe"');
    }
  });
});
