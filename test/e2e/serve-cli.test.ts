// `grpst serve` as vLLM users call it: --max_model_len and --api_key with --model_dir, answered by
// a real server through the official openai client; and what cannot work refused before the port
// is bound, in words with the flag or conf key to change (no stack): `serve DIR`, a host that
// does not resolve (flag or server conf), device cuda on a CPU-only runtime, a bad drain limit.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeAddon } from '../../src/engine/addon.js';
import { checkpoint } from '../helpers/fixtures.js';
import { serveForeground } from '../helpers/foreground-server.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let modelDir: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-serve-cli-'));
  cli = makeCli();
  modelDir = checkpoint('tiny-a');
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

const noStack = (text: string) => expect(text).not.toMatch(/^\s+at /m);

describe('grpst serve --model_dir with --max_model_len and --api_key', () => {
  it('serves the lowered context and demands the key', async () => {
    const key = 'serve-cli-test-key-7';
    const server = await serveForeground(cli, ['--model_dir', modelDir, '--max_model_len', '64', '--api_key', key], work);
    try {
      const denied = await fetch(`${server.url}/v1/models`);
      expect(denied.status).toBe(401);
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
      const models = (await client.models.list()).data as unknown as { id: string; max_model_len: number }[];
      expect(models.map((m) => [m.id, m.max_model_len])).toEqual([['qwen3', 64]]);
      // A prompt plus answer past 64 tokens is the server's context_length_exceeded, not a generation.
      const past = await client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 60 }).catch((e: unknown) => e);
      expect(past).toBeInstanceOf(OpenAI.BadRequestError);
      expect((past as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('context_length_exceeded');
    } finally {
      await server.stop();
    }
    expect(server.output()).toContain('max_seq_len 64');
    expect(server.output()).not.toContain(key);
  }, 90_000);

  it('--max_num_seqs, --max_num_batched_tokens and --kv_cache_dtype size the engine: no more sequences decode at once', async () => {
    const server = await serveForeground(cli, ['--model_dir', modelDir, '--max_num_seqs', '2', '--max_num_batched_tokens', '48', '--kv_cache_dtype', 'fp8'], work);
    try {
      const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      // Six requests at once: two decode, the rest wait their turn (the engine's own gauges).
      let mostRunning = 0;
      let mostWaiting = 0;
      const answers = Promise.all(
        Array.from({ length: 6 }, (_, i) => client.completions.create({ model: 'qwen3', prompt: `count ${i}`, max_tokens: 40, temperature: 0, ignore_eos: true } as never)),
      );
      let done = false;
      void answers.finally(() => (done = true));
      while (!done) {
        const text = await (await fetch(`${server.url}/metrics`)).text();
        const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
        mostRunning = Math.max(mostRunning, gauge('grpst_engine_sequences_running'));
        mostWaiting = Math.max(mostWaiting, gauge('grpst_engine_sequences_waiting'));
        await new Promise((r) => setTimeout(r, 5));
      }
      expect((await answers).map((a) => a.usage!.completion_tokens)).toEqual([40, 40, 40, 40, 40, 40]);
      expect(mostRunning).toBe(2);
      expect(mostWaiting).toBeGreaterThan(0);
    } finally {
      await server.stop();
    }
    expect(server.output()).toMatch(/max_batch_size 2, max_num_tokens 48, kv_cache_dtype fp8/);
  }, 90_000);

  it('refuses a --max_model_len past the checkpoint, and a short --api_key without repeating it', async () => {
    const long = await cli.run(['serve', '--model_dir', modelDir, '--max_model_len', '1000000', '--port', '0'], { cwd: work });
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/--max_model_len 1000000 is past the model's \d+ positions/);
    expect(long.stderr).toMatch(/fix: pass --max_model_len \d+ or less/);
    expect(long.stdout).not.toContain('listening on');
    const short = await cli.run(['serve', '--model_dir', modelDir, '--api_key', 'abc12', '--port', '0'], { cwd: work });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--api_key is shorter than 8 characters');
    expect(short.stderr).not.toContain('abc12');
    const withConf = await cli.run(['serve', '--inference_conf', 'x.yml', '--max_model_len', '64'], { cwd: work });
    expect(withConf.code).toBe(2);
    expect(withConf.stderr).toContain('--max_model_len goes with --model_dir');
    // The conf's own key for it, which the conf check accepts.
    expect(withConf.stderr).toContain('set max_seq_len under models[0].inferer_args in x.yml');
    const seqsWithConf = await cli.run(['serve', '--inference_conf', 'x.yml', '--max_num_seqs', '4'], { cwd: work });
    expect(seqsWithConf.code).toBe(2);
    expect(seqsWithConf.stderr).toContain('--max_num_seqs goes with --model_dir');
    expect(seqsWithConf.stderr).toContain('set max_batch_size under models[0].inferer_args in x.yml');
    const zero = await cli.run(['serve', '--model_dir', modelDir, '--max_num_batched_tokens', '0'], { cwd: work });
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('--max_num_batched_tokens takes a whole number of at least 1, got "0"');
  });
});

describe('grpst serve refuses before the port is bound', () => {
  it('`grpst serve DIR`: the --model_dir command to type instead', async () => {
    const r = await cli.run(['serve', modelDir], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`grpst serve takes the folder to serve as --model_dir, not as an argument (got "${modelDir}")`);
    expect(r.stderr).toContain(`fix: grpst serve --model_dir ${modelDir}`);
  });

  it('a host that does not resolve, from --host or from the server conf: exit 2, the setting named, no stack', async () => {
    const flag = await cli.run(['serve', '--model_dir', modelDir, '--host', 'no-such-host.invalid', '--port', '0'], { cwd: work });
    expect(flag.code, flag.stderr).toBe(2);
    expect(flag.stderr).toMatch(/error: cannot listen on no-such-host\.invalid:0 \((ENOTFOUND|EAI_AGAIN)/);
    expect(flag.stderr).toContain('fix: change --host to an address of this machine');
    noStack(flag.stderr);
    fs.writeFileSync(path.join(work, 'server.yml'), 'interface:\n  host: no-such-host.invalid\n  port: 0\n');
    const conf = await cli.run(['serve', '--model_dir', modelDir, '--server_conf', 'server.yml'], { cwd: work });
    expect(conf.code, conf.stderr).toBe(2);
    expect(conf.stderr).toContain('fix: change interface.host in server.yml (or pass --host) to an address of this machine');
    noStack(conf.stderr);
    for (const r of [flag, conf]) expect(r.stdout).not.toContain('loading');
  });

  it('--device cuda on a runtime built without CUDA: exit 3 with its own fix only, nothing listens', async () => {
    if (probeAddon().cuda) return; // a CUDA build serves it: nothing to refuse
    const r = await cli.run(['serve', '--model_dir', modelDir, '--device', 'cuda', '--host', '127.0.0.1', '--port', '0'], { cwd: work });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('--device cuda asks for the GPU, but this build of the native runtime has only the CPU backend');
    expect(r.stderr).toContain('fix: pass --device cpu or auto, or install the CUDA toolkit');
    expect(r.stderr).not.toContain('check the model folder');
    expect(r.stdout).not.toContain('listening on');
  });

  it('a GRPST_DRAIN_TIMEOUT_S that is no number of seconds is refused, naming the variable and the value', async () => {
    for (const value of ['abc', '-5', '0']) {
      const r = await cli.run(['serve', '--model_dir', modelDir, '--host', '127.0.0.1', '--port', '0'], { cwd: work, env: { GRPST_DRAIN_TIMEOUT_S: value } });
      expect(r.code, value).toBe(2);
      expect(r.stderr).toContain(`GRPST_DRAIN_TIMEOUT_S is set to "${value}", which is not a number of seconds above 0`);
      expect(r.stdout).not.toContain('listening on');
    }
  });
});
