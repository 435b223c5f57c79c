// The pre-launch check of what loading the engine would refuse (src/daemon/load-check.ts), on a
// real built engine and a checkpoint: each refusal names the conf line and key, and where its
// rule is the runtime's own (the KV pool of at least one block) the real runtime draws the line
// at the same value.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDeployment } from '../../src/config/resolve.js';
import { checkEngineLoads } from '../../src/daemon/load-check.js';
import { loadEngine } from '../../src/engine/index.js';
import { GrpstError } from '../../src/util/errors.js';
import { checkpoint } from '../helpers/fixtures.js';
import { makeCli } from '../helpers/grpst-cli.js';

let tmp: string;
let built: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-load-check-'));
  built = path.join(tmp, 'engine');
  const cli = makeCli();
  const r = await cli.run(['build', '--model_dir', checkpoint('tiny-a'), '--output_dir', built, '--max_batch_size', '4', '--max_seq_len', '512', '--max_num_tokens', '256', '--max_input_len', '256', '--eval_tokens', '64']);
  fs.rmSync(cli.home, { recursive: true, force: true });
  expect(r.code, r.stderr).toBe(0);
}, 180_000);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A conf serving `model` with these inferer_args lines (from line 9 on), checked as `grpst serve` checks it. */
function deployment(model: string, lines: string[]) {
  const file = path.join(tmp, `inference-${Math.random().toString(36).slice(2)}.yml`);
  const args = ['llm_style: qwen3', `tokenizer_path: ${model}`, `gpt_model_path: ${model}`, 'device: cpu', ...lines];
  fs.writeFileSync(file, `models:\n  - name: m\n    version: 1\n    inferer_args:\n${args.map((l) => `      ${l}\n`).join('')}`);
  return { file, d: loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }) };
}

async function refusal(model: string, lines: string[], env: NodeJS.ProcessEnv = {}): Promise<{ file: string; err: GrpstError }> {
  const { file, d } = deployment(model, lines);
  const err = await checkEngineLoads(d, { env }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GrpstError);
  return { file, err: err as GrpstError };
}

describe('the pre-launch load check', () => {
  it("accepts values within the engine's limits, and a checkpoint's batch and step sizes (it has no build limits)", async () => {
    await checkEngineLoads(deployment(built, ['max_batch_size: 4', 'max_seq_len: 256', 'max_num_tokens: 128', 'kv_cache_dtype: fp8']).d, { env: {} });
    await checkEngineLoads(deployment(checkpoint('tiny-a'), ['max_batch_size: 64', 'max_num_tokens: 100000', 'max_seq_len: 40960']).d, { env: {} });
  });

  it("names each key above the engine's build limits with its line, both values and one fix", async () => {
    const { file, err } = await refusal(built, ['max_batch_size: 5', 'max_num_tokens: 257']);
    expect(err.message).toBe(
      [
        `${file}:9:7: max_batch_size 5 is above the engine's build limit of 4 (${built}/engine.json)`,
        `  ${file}:10:7: max_num_tokens 257 is above the engine's build limit of 256 (${built}/engine.json)`,
      ].join('\n'),
    );
    expect(err.hint).toBe('set max_batch_size to at most 4, max_num_tokens to at most 256 in the inference conf, or rebuild the engine with --max_batch_size 5 --max_num_tokens 257 (grpst build)');
  });

  it("a rebuild never offers more positions than the model has", async () => {
    const { err } = await refusal(built, ['max_seq_len: 100000']);
    expect(err.message).toContain("max_seq_len 100000 is above the engine's build limit of 512");
    expect(err.hint).toContain('or rebuild the engine with --max_seq_len 40960 (grpst build)');
  });

  it('a KV pool of less than one block is refused at the value where the runtime refuses it', async () => {
    const { file, err } = await refusal(built, ['max_tokens_in_paged_kv_cache: 15']);
    expect(err.message).toBe(`${file}:9:7: max_tokens_in_paged_kv_cache 15 is less than one KV block (kv_block_size 16, the default): the KV cache would hold nothing`);
    await checkEngineLoads(deployment(built, ['max_tokens_in_paged_kv_cache: 8', 'kv_block_size: 8']).d, { env: {} });

    // tiny-a: 2 layers x (k, v) x 2 KV heads x 32 x 2 bytes (bfloat16) x 16 tokens.
    const oneBlock = 2 * 2 * 2 * 32 * 2 * 16;
    const bytes = await refusal(built, [`kv_cache_bytes: ${oneBlock - 1}`]);
    expect(bytes.err.message).toContain(`kv_cache_bytes ${oneBlock - 1} is less than one KV block (kv_block_size 16, the default) of this model: ${oneBlock} bytes (bfloat16)`);
    await checkEngineLoads(deployment(built, [`kv_cache_bytes: ${oneBlock}`]).d, { env: {} });
    await expect(loadEngine(built, { device: 'cpu', threads: 1, kvCacheBytes: oneBlock - 1 })).rejects.toThrow(/would hold no block/);
    const engine = await loadEngine(built, { device: 'cpu', threads: 1, kvCacheBytes: oneBlock });
    await engine.close();
  });

  it('reports every problem at once: kv_cache_dtype int8 without scales, float32 on the GPU, and GRPST_CPU_KERNELS', async () => {
    const { file, err } = await refusal(built, ['kv_cache_dtype: int8', 'max_batch_size: 8'], { GRPST_CPU_KERNELS: 'neon' });
    const lines = err.message.split('\n');
    expect(lines[0]).toBe(`${file}:10:7: max_batch_size 8 is above the engine's build limit of 4 (${built}/engine.json)`);
    expect(lines[1]).toBe(`  ${file}:9:7: kv_cache_dtype int8: an int8 KV cache needs per-layer scales from calibration, and ${built} has none`);
    expect(lines[2]).toMatch(/^ {2}GRPST_CPU_KERNELS is set to "neon", which is not a CPU kernel level/);
    expect(err.hint).toContain('--kv_cache_dtype int8');
    expect(err.hint).toContain('unset GRPST_CPU_KERNELS');

    const gpu = deployment(built, ['kv_cache_dtype: float32']);
    gpu.d.runtime.load.device = 'cuda';
    await expect(checkEngineLoads(gpu.d, { env: {} })).rejects.toThrow(`${gpu.file}:9:7: kv_cache_dtype float32 is not served on the GPU (device: cuda)`);
  });

  it('an engine folder the runtime cannot read is named where the conf names it', async () => {
    const damaged = path.join(tmp, 'damaged');
    fs.cpSync(built, damaged, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(damaged, 'engine.json'), 'utf8'));
    fs.writeFileSync(path.join(damaged, 'engine.json'), JSON.stringify({ ...manifest, mapping: { tp_size: 1, pp_size: 2 } }));
    const { file, err } = await refusal(damaged, []);
    expect(err.message).toBe(`${file}:7:7: ${damaged} is split into 2 pipeline stages; grpst runs tensor parallelism only`);
  });
});
