// `grpst build` of a Qwen3-MoE checkpoint (tiny-moe: 8 experts, top 2, layer 1 dense) through the
// real runtime: bf16 and int8_wo engines whose experts and routers keep the checkpoint's names, a
// bf16 engine that matches transformers' references, an AutoAWQ MoE checkpoint converted as it is,
// the dry run's text, and the refusals (exit code, message, nothing written) of what MoE builds
// cannot do yet. The calibrated formats (int4_awq, fp8, int8_sq): build-moe-calibrated.test.ts.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest, type EngineManifest } from '../../src/build/manifest.js';
import { loadEngine } from '../../src/engine/load.js';
import { writeTinyLoraAdapter } from '../../src/model/tiny-lora.js';
import { checkpoint, refs, specFile } from '../helpers/fixtures.js';
import { loraSpecFile } from '../helpers/lora-fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { firstNearTie, greedy, run } from '../native/helpers.js';
import { awqCheckpoint, leftovers } from './build-helpers.js';
import { writeFp8Checkpoint } from '../helpers/fp8-checkpoint.js';
import { openSource, readFloat } from '../../src/build/native/source.js';
import { checkMoeBuild } from '../../src/build/moe-checks.js';
import { resolveSettings } from '../../src/build/options.js';
import { encodeFloats } from '../../src/quant/numeric.js';

/** test/native/parity.test.ts's tolerance on logprobs against transformers (float32 KV cache). */
const TOL = 1e-3;

let work: string;
let cli: Cli;
let tinyMoe: string;
const engines = { bf16: '', int8: '' };
const summaries: Record<keyof typeof engines, { qformat: string; accuracy?: { top1_agreement: number; mean_kl: number } }> = {} as never;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-moe-'));
  cli = makeCli();
  tinyMoe = checkpoint('tiny-moe');
  // One build per format, shared by the tests below; each runs its accuracy report on the CPU.
  for (const [key, qformat] of [['bf16', 'full_prec'], ['int8', 'int8_wo']] as const) {
    engines[key] = join(work, `engine-${key}`);
    const r = await cli.run(['build', '--model_dir', tinyMoe, '--output_dir', engines[key], '--qformat', qformat, '--eval_tokens', '130', '--json']);
    expect(r.code, r.stderr).toBe(0);
    summaries[key] = JSON.parse(r.stdout);
  }
}, 180_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

const sparseLayers = [0, 2]; // tiny-moe's mlp_only_layers is [1]

function tensorsOf(m: EngineManifest): Record<string, { dtype: string; shape: number[] }> {
  return m.ranks[0].tensors;
}

describe('a native build of a Qwen3-MoE checkpoint', () => {
  it('bf16: every expert projection and router under the checkpoint names, the dense layer as in Qwen3; the report agrees fully', () => {
    const m = readManifest(engines.bf16);
    const t = tensorsOf(m);
    const linears = m.ranks[0].linears;
    for (const i of sparseLayers) {
      expect(t[`model.layers.${i}.mlp.gate.weight`]).toMatchObject({ dtype: 'BF16', shape: [8, 64] });
      expect(t[`model.layers.${i}.mlp.gate_proj.weight`]).toBeUndefined();
      for (let e = 0; e < 8; e++) {
        expect(linears[`model.layers.${i}.mlp.experts.${e}.gate_proj`]).toMatchObject({ format: 'float', out_features: 48, in_features: 64 });
        expect(linears[`model.layers.${i}.mlp.experts.${e}.down_proj`]).toMatchObject({ format: 'float', out_features: 64, in_features: 48 });
      }
    }
    expect(linears['model.layers.1.mlp.down_proj']).toMatchObject({ format: 'float', out_features: 64, in_features: 160 });
    expect(m.quantization).toMatchObject({ qformat: 'full_prec', excluded: [] });
    expect(summaries.bf16.accuracy).toMatchObject({ top1_agreement: 1, mean_kl: 0 });
  });

  it("bf16: greedy tokens and logprobs equal transformers' references until a near tie", async () => {
    const engine = await loadEngine(engines.bf16, { kvCacheDtype: 'float32', maxTokensInPagedKvCache: 2048, maxSeqLen: 1024 });
    try {
      for (const p of refs('tiny-moe').prompts) {
        const r = await run(engine, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, promptLogprobs: true, logprobs: 1 });
        const prompt = r.first.promptLogprobs!.slice(1).map((e) => e!.logprob);
        expect(Math.max(...prompt.map((lp, j) => Math.abs(lp - p.prompt_logprobs[j]))), `${p.name}: prompt logprobs`).toBeLessThan(TOL);
        const n = firstNearTie(p.greedy.margins);
        expect(n, `${p.name}: steps before a near tie`).toBeGreaterThan(0);
        expect(r.tokens.slice(0, n), `${p.name}: greedy tokens`).toEqual(p.greedy.ids.slice(0, n));
        for (let j = 0; j < n; j++) expect(Math.abs(r.logprobs[j] - p.greedy.logprobs[j])).toBeLessThan(TOL);
      }
    } finally {
      await engine.close();
    }
  });

  it('int8_wo: experts quantized like dense projections, routers kept bf16 and listed as excluded; the engine runs close to the checkpoint', async () => {
    const m = readManifest(engines.int8);
    const t = tensorsOf(m);
    const linears = m.ranks[0].linears;
    for (const i of sparseLayers) {
      expect(t[`model.layers.${i}.mlp.gate.weight`]).toMatchObject({ dtype: 'BF16', shape: [8, 64] });
      for (let e = 0; e < 8; e++) {
        const up = `model.layers.${i}.mlp.experts.${e}.up_proj`;
        expect(linears[up]).toEqual({ format: 'int8_wo', out_features: 48, in_features: 64, tensors: { weight: `${up}.qweight`, scales: `${up}.scales` } });
        expect(t[`${up}.qweight`]).toMatchObject({ dtype: 'I8', shape: [48, 64] });
      }
    }
    expect(linears['model.layers.1.mlp.up_proj'].format).toBe('int8_wo');
    expect(m.quantization.excluded).toEqual(['lm_head', 'model.layers.0.mlp.gate', 'model.layers.2.mlp.gate']);
    expect(summaries.int8.accuracy!.top1_agreement).toBeGreaterThan(0.9);
    expect(summaries.int8.accuracy!.mean_kl).toBeLessThan(0.05);
    const engine = await loadEngine(engines.int8, { maxSeqLen: 256 });
    try {
      const p = refs('tiny-moe').prompts[0];
      const r = await run(engine, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 8 });
      expect(r.tokens).toHaveLength(8);
    } finally {
      await engine.close();
    }
  });

  it('int8_wo with an fp8 KV cache and a quantized lm_head: the cache calibrated on the CPU from the cached K/V', async () => {
    const out = join(work, 'engine-kv');
    const r = await cli.run(['build', '--model_dir', tinyMoe, '--output_dir', out, '--qformat', 'int8_wo', '--kv_cache_dtype', 'fp8', '--quantize_lm_head', '--calib_size', '8', '--eval_tokens', '130', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/calibrate done in .*: on CPU/);
    const m = readManifest(out);
    expect(m.kv_cache.dtype).toBe('fp8');
    expect(m.kv_cache.scales).toHaveLength(3);
    for (const [k, v] of m.kv_cache.scales!) expect(k > 0 && v > 0).toBe(true);
    expect(m.quantization.excluded).toEqual(['model.layers.0.mlp.gate', 'model.layers.2.mlp.gate']);
    expect(JSON.parse(r.stdout).accuracy.top1_agreement).toBeGreaterThan(0.85);
  });

  it('an AutoAWQ MoE checkpoint: its int4 experts converted as they are, its router float', async () => {
    const awq = awqCheckpoint('tiny-moe', 16);
    const out = join(work, 'engine-awq');
    const r = await cli.run(['build', '--model_dir', awq, '--output_dir', out]);
    expect(r.code, r.stderr).toBe(0);
    const m = readManifest(out);
    expect(m.quantization).toMatchObject({ qformat: 'int4_awq', awq_block_size: 16 });
    expect(m.ranks[0].linears['model.layers.2.mlp.experts.5.down_proj']).toMatchObject({ format: 'int4', group_size: 16, out_features: 64, in_features: 48 });
    expect(m.ranks[0].tensors['model.layers.2.mlp.gate.weight']).toMatchObject({ dtype: 'BF16', shape: [8, 64] });
    const engine = await loadEngine(out, { maxSeqLen: 256 });
    try {
      const ids = (await run(engine, { tokens: refs('tiny-moe').prompts[0].prompt_ids, sampling: greedy, maxTokens: 4 })).tokens;
      expect(ids).toHaveLength(4);
    } finally {
      await engine.close();
    }
    // The CUDA backend runs int4_awq MoE engines: its report may run on the GPU.
    expect(() => checkMoeBuild(resolveSettings({}, { model_dir: awq, output_dir: out, device: 'cuda' }), openSource(awq))).not.toThrow();
  });

  it('a block-scaled FP8 MoE checkpoint: experts dequantized, then written in bf16 like any float weight', async () => {
    const fp8 = join(work, 'tiny-moe-fp8');
    writeFp8Checkpoint(tinyMoe, fp8);
    const src = openSource(fp8);
    const expert = 'model.layers.2.mlp.experts.6.down_proj.weight';
    expect(src.fp8!.quantized.has(expert)).toBe(true);
    const out = join(work, 'engine-fp8');
    const r = await cli.run(['build', '--model_dir', fp8, '--output_dir', out]);
    expect(r.code, r.stderr).toBe(0);
    const m = readManifest(out);
    const t = m.ranks[0].tensors[expert];
    const written = readFileSync(join(out, m.ranks[0].file)).subarray(t.offset, t.offset + t.nbytes);
    expect(Buffer.from(written).equals(Buffer.from(encodeFloats(readFloat(src, expert), 'BF16')))).toBe(true);
    expect(m.ranks[0].tensors['model.layers.0.mlp.gate.weight']).toMatchObject({ dtype: 'BF16', shape: [8, 64] });
  });

  it('--dry-run names the experts, the routers and where the model runs', async () => {
    const r = await cli.run(['build', '--model_dir', tinyMoe, '--output_dir', join(work, 'never'), '--qformat', 'int8_wo', '--kv_cache_dtype', 'fp8', '--device', 'cpu', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('(3 layers, hidden 64; Qwen3-MoE, 8 experts (top 2) of size 48 in 2 of 3 layers)');
    expect(r.stdout).toMatch(/# 2\. calibrate on .*: the fp8 KV cache, running the checkpoint, on the CPU/);
    expect(r.stdout).toContain("# 3. quantize and pack: int8_wo, dtype bfloat16; 8 experts in each of 2 sparse layers: the experts' projections in int8_wo, the routers unquantized in bfloat16, lm_head in bfloat16");
    expect(r.stdout).toMatch(/# 5\. verify: .*, the engine running its fp8 KV cache, on the CPU/);
    expect(existsSync(join(work, 'never'))).toBe(false);
  });
});

describe('what a MoE build refuses before any work', () => {
  async function refused(args: string[], message: RegExp, fix: RegExp): Promise<void> {
    for (const dry of [[], ['--dry-run']]) {
      const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
      const r = await cli.run(['build', '--model_dir', tinyMoe, '--output_dir', out, ...args, ...dry]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(fix);
      expect(r.stderr).not.toMatch(/\] (quantize|calibrate)/);
      expect(existsSync(out), 'nothing may be left at --output_dir').toBe(false);
      expect(leftovers(work)).toEqual([]);
    }
  }

  it("--qformat int4_awq with an --awq_block_size that does not divide the experts' moe_intermediate_size", async () => {
    await refused(
      ['--qformat', 'int4_awq', '--awq_block_size', '32'],
      /awq_block_size 32 does not divide the input dimension 48 of the experts' down_proj \(moe_intermediate_size\)/,
      /fix: use an --awq_block_size that divides every input dimension \(64, 128, 160, 48\): 16/,
    );
  });

  it('--tp_size 2: no tensor parallelism for MoE engines yet', async () => {
    await refused(['--tp_size', '2'], /--tp_size 2: tensor parallelism is not available for Qwen3-MoE engines yet/, /fix: build with --tp_size 1/);
  });

  it("--merge_lora with an adapter of a sparse layer's MLP, which the checkpoint does not have", async () => {
    const adapter = join(work, 'lora-mlp');
    const spec = { ...loraSpecFile().adapters['tiny-b-lora-all'], target_modules: ['q_proj', 'gate_proj'] };
    writeTinyLoraAdapter(adapter, spec, specFile().checkpoints['tiny-moe']);
    await refused(
      ['--merge_lora', adapter],
      /--merge_lora: the adapter lora-mlp adapts model\.layers\.0\.mlp\.gate_proj, which .*tiny-moe does not have: layer 0 of this Qwen3-MoE model is 8 experts and a router/,
      /fix: merge an adapter of the attention projections .* only/,
    );
  });
});

describe('--merge_lora of an attention adapter', () => {
  it('merges into a MoE checkpoint (its tensors are the same as a dense model’s)', async () => {
    const adapter = join(work, 'lora-attn');
    const spec = { ...loraSpecFile().adapters['tiny-b-lora-all'], target_modules: ['q_proj', 'v_proj'] };
    writeTinyLoraAdapter(adapter, spec, specFile().checkpoints['tiny-moe']);
    const out = join(work, 'engine-lora');
    const r = await cli.run(['build', '--model_dir', tinyMoe, '--output_dir', out, '--merge_lora', adapter]);
    expect(r.code, r.stderr).toBe(0);
    const m = readManifest(out);
    expect(m.source.merged_lora).toMatchObject({ name: 'lora-attn', targets: ['q_proj', 'v_proj'] });
    // The merged q_proj differs from the checkpoint's; the experts are the checkpoint's own bytes.
    const file = join(out, m.ranks[0].file);
    const bytes = (name: string) => {
      const t = m.ranks[0].tensors[name];
      return readFileSync(file).subarray(t.offset, t.offset + t.nbytes);
    };
    const base = readManifest(engines.bf16);
    const baseBytes = (name: string) => {
      const t = base.ranks[0].tensors[name];
      return readFileSync(join(engines.bf16, base.ranks[0].file)).subarray(t.offset, t.offset + t.nbytes);
    };
    expect(bytes('model.layers.0.self_attn.q_proj.weight').equals(baseBytes('model.layers.0.self_attn.q_proj.weight'))).toBe(false);
    expect(bytes('model.layers.0.mlp.experts.3.up_proj.weight').equals(baseBytes('model.layers.0.mlp.experts.3.up_proj.weight'))).toBe(true);
  });
});
