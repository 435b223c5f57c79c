// An engine's build limits hold where it runs: --max_input_len and --max_seq_len refuse prompts in
// the server (OpenAI's context_length_exceeded) and in `grpst run`, --max_num_tokens caps the
// runtime's tokens per step, and load options may lower the limits but never raise them; and
// --output_dir can never be a folder the build would wrongly replace (the checkpoint, the current
// folder), --force or not.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatTemplate } from '../../src/chat/chat-template.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { loadEngine } from '../../src/engine/index.js';
import type { GenerationEngine } from '../../src/engine/types.js';
import { ExitCode, GrpstError } from '../../src/util/errors.js';
import { checkpoint } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { serve, type TestServer } from './server-harness.js';

let work: string;
let cli: Cli;
let tinyA: string;
let engineDir: string;
let engine: GenerationEngine | undefined;
let srv: TestServer | undefined;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpst-limits-'));
  cli = makeCli();
  tinyA = checkpoint('tiny-a');
  engineDir = join(work, 'engine');
  const r = await cli.run(['build', '--model_dir', tinyA, '--output_dir', engineDir, '--max_input_len', '16', '--max_seq_len', '96', '--max_num_tokens', '32', '--eval_tokens', '64', '--json']);
  expect(r.code, r.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await srv?.server.close();
  await engine?.close();
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

const words = (n: number) => Array.from({ length: n }, () => 'hello').join(' ');

describe("an engine's build limits", () => {
  it('load as the engine info the server reads', async () => {
    engine = await loadEngine(engineDir, { device: 'cpu', threads: 1, maxTokensInPagedKvCache: 1024 });
    expect(engine.info).toMatchObject({ maxInputLen: 16, maxSeqLen: 96, maxNumTokens: 32 });
    // An explicit option below the engine's limit wins, as the inference conf's keys do.
    const narrower = await loadEngine(engineDir, { device: 'cpu', threads: 1, maxTokensInPagedKvCache: 1024, maxSeqLen: 64, maxNumTokens: 24 });
    expect(narrower.info).toMatchObject({ maxInputLen: 16, maxSeqLen: 64, maxNumTokens: 24 });
    await narrower.close();
  });

  it('refuse load options above them, naming each limit and the rebuild that lifts it', async () => {
    const err = await loadEngine(engineDir, { device: 'cpu', threads: 1, maxTokensInPagedKvCache: 1024, maxSeqLen: 200, maxNumTokens: 48, maxBatchSize: 32 }).then(
      () => undefined,
      (e: unknown) => e as GrpstError,
    );
    expect(err).toBeInstanceOf(GrpstError);
    expect(err!.exitCode).toBe(ExitCode.badInput);
    expect(err!.message).toBe(
      `${engineDir}: max_batch_size 32 is above the engine's build limit of 16; max_seq_len 200 is above the engine's build limit of 96; max_num_tokens 48 is above the engine's build limit of 32 (engine.json limits)`,
    );
    expect(err!.hint).toBe(
      'set max_batch_size to at most 16, max_seq_len to at most 96, max_num_tokens to at most 32 in the inference conf, or rebuild the engine with --max_batch_size 32 --max_seq_len 200 --max_num_tokens 48 (grpst build)',
    );
  });

  it('refuse a prompt past max_input_len over HTTP, with room left in max_seq_len', async () => {
    const dir = tinyA;
    srv = await serve({ engine: engine!, tokenizer: Tokenizer.fromDir(dir), template: ChatTemplate.fromDir(dir) });
    const short = await srv.client.completions.create({ model: 'qwen3', prompt: 'hello', max_tokens: 2, temperature: 0 });
    expect(short.usage?.prompt_tokens).toBeLessThanOrEqual(16);
    const err = await srv.client.completions.create({ model: 'qwen3', prompt: words(30), max_tokens: 2 }).then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    );
    expect(err?.status).toBe(400);
    expect(err?.code).toBe('context_length_exceeded');
    expect(err?.message).toMatch(/maximum input length is 16 tokens .*your prompt has 3\d tokens/);
    const chat = await srv.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: words(30) }], max_tokens: 2 }).then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof OpenAI.APIError>,
    );
    expect(chat?.param).toBe('messages');
    expect(chat?.message).toMatch(/maximum input length is 16 tokens/);
    // /v1/models says both limits, so a client sizing its prompts can find the smaller one.
    expect((await srv.client.models.list()).data[0]).toMatchObject({ max_model_len: 96, max_input_len: 16, max_input_tokens: 16, max_tokens: 95 });
  });

  it('hold for `grpst serve --model_dir` and its vLLM sizing flags, each named as typed, before anything listens', async () => {
    const cases: [string[], string, string][] = [
      [['--max_num_seqs', '17'], "--max_num_seqs 17 is above the engine's build limit of 16 sequences (max_batch_size in", 'pass --max_num_seqs 16 or less, or rebuild the engine with a larger --max_batch_size'],
      [['--max_num_batched_tokens', '33'], "--max_num_batched_tokens 33 is above the engine's build limit of 32 tokens (max_num_tokens in", 'pass --max_num_batched_tokens 32 or less, or rebuild the engine with a larger --max_num_tokens'],
      [['--max_model_len', '97'], "--max_model_len 97 is above the engine's build limit of 96 tokens (max_seq_len in", 'pass --max_model_len 96 or less, or rebuild the engine with a larger --max_seq_len'],
    ];
    for (const [flags, problem, fix] of cases) {
      const r = await cli.run(['serve', '--model_dir', engineDir, '--port', '0', ...flags]);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.stderr).toContain(problem);
      expect(r.stderr).toContain(`fix: ${fix}`);
      expect(r.stdout).not.toContain('listening on');
    }
  });

  it('hold in `grpst run`: past max_input_len, past max_seq_len, and within both', async () => {
    const long = await cli.run(['run', '--engine_dir', engineDir, '--input_text', words(40), '--max_output_len', '4']);
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/the prompt has \d+ tokens, past the engine's max_input_len 16\n.*fix: shorten --input_text/);
    const far = await cli.run(['run', '--engine_dir', engineDir, '--input_text', 'hi', '--max_output_len', '200']);
    expect(far.code).toBe(2);
    expect(far.stderr).toMatch(/need \d+, past the engine's max_seq_len 96\n.*fix: pass --max_output_len \d+ or less/);
    const ok = await cli.run(['run', '--engine_dir', engineDir, '--input_text', 'hi', '--max_output_len', '4']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/prompt tokens: \d+, output tokens: \d+/);
  });
});

describe('--output_dir that must not be replaced', () => {
  it('refuses the checkpoint folder and the current folder, with or without --force, and deletes nothing', async () => {
    const ckpt = join(work, 'hf-copy');
    cpSync(tinyA, ckpt, { recursive: true });
    const before = readdirSync(ckpt).sort();
    const same = await cli.run(['build', '--model_dir', ckpt, '--output_dir', ckpt, '--force', '--json']);
    expect(same.code).toBe(2);
    expect(JSON.parse(same.stdout)).toMatchObject({ ok: false, error: expect.stringMatching(/is the checkpoint folder \(--model_dir\)/) });
    const parent = await cli.run(['build', '--model_dir', ckpt, '--output_dir', work, '--force']);
    expect(parent.code).toBe(2);
    expect(parent.stderr).toMatch(/holds the checkpoint folder/);
    expect(readdirSync(ckpt).sort()).toEqual(before);

    const here = join(work, 'project');
    mkdirSync(here);
    writeFileSync(join(here, 'notes.txt'), 'keep me');
    const cwd = await cli.run(['build', '--model_dir', ckpt, '--output_dir', '.', '--force'], { cwd: here });
    expect(cwd.code).toBe(2);
    expect(cwd.stderr).toMatch(/is the current folder or holds it/);
    const other = join(work, 'not-an-engine');
    cpSync(join(here, 'notes.txt'), join(other, 'notes.txt'), { recursive: true });
    const notEngine = await cli.run(['build', '--model_dir', ckpt, '--output_dir', other, '--force']);
    expect(notEngine.code).toBe(2);
    expect(notEngine.stderr).toMatch(/is not an engine folder \(no engine.json\)/);
    expect(existsSync(join(here, 'notes.txt')) && existsSync(join(other, 'notes.txt'))).toBe(true);
  });
});
