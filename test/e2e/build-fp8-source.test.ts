// Building from a block-scaled FP8 checkpoint (the format of Qwen/Qwen3-*-FP8) through the real
// runtime: engines that match transformers' references of that same checkpoint, every other format
// built from it, bad variants refused before anything is written, and the runtime refusing to load
// it unbuilt. The fixture and its references: test/helpers/fp8-checkpoint.ts, scripts/make_fp8_fixture.py.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild, type BuildSummary } from '../../src/build/index.js';
import { readManifest } from '../../src/build/manifest.js';
import { openSource, readBytes, readFloat } from '../../src/build/native/source.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { bf16BitsToF32, e4m3ToF32 } from '../../src/quant/numeric.js';
import type { PromptRef } from '../helpers/fixtures.js';
import { FP8_BLOCK, FP8_SOURCE, fp8Checkpoint, fp8Refs, writeFp8Checkpoint } from '../helpers/fp8-checkpoint.js';
import { checkpoint } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { firstNearTie, greedy, run } from '../native/helpers.js';
import { leftovers } from './build-helpers.js';
import { greedyTokens } from './engine-probes.js';

/** test/native/parity.test.ts's tolerance on logprobs against transformers (float32 KV cache). */
const TOL = 1e-3;

let work: string;
let cli: Cli;
let fixture: string;
let n = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-fp8-'));
  cli = makeCli();
  fixture = fp8Checkpoint();
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(cli.home, { recursive: true, force: true });
});

async function build(flags: BuildSettingsInput): Promise<BuildSummary & { reporter: MemoryReporter }> {
  const reporter = new MemoryReporter();
  const s = resolveSettings({}, { model_dir: fixture, output_dir: join(work, `engine-${++n}`), eval_tokens: 256, ...flags });
  return { ...(await runBuild(s, { reporter, version: 'test', bridge: loadRuntimeBridge })), reporter };
}

/** What a build leaves: the engine's own files, listed in engine.json, and nothing beside it. */
function expectCleanEngine(dir: string): void {
  const m = readManifest(dir);
  expect(readdirSync(dir).filter((f) => f !== 'engine.json').sort()).toEqual(Object.keys(m.files).sort());
  expect(leftovers(work)).toEqual([]);
}

interface Outcome {
  promptLogprobs: number[];
  top5: number[];
  tokens: number[];
  logprobs: number[];
}

async function outcomes(dir: string): Promise<Outcome[]> {
  const engine: Engine = await loadEngine(dir, { kvCacheDtype: 'float32', maxTokensInPagedKvCache: 2048, maxSeqLen: 1024 });
  try {
    const out: Outcome[] = [];
    for (const p of fp8Refs().prompts) {
      const r = await run(engine, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, promptLogprobs: true, logprobs: 5 });
      out.push({
        promptLogprobs: r.first.promptLogprobs!.slice(1).map((e) => e!.logprob),
        top5: r.first.topLogprobs![0].map((t) => t.token),
        tokens: r.tokens,
        logprobs: r.logprobs,
      });
    }
    return out;
  } finally {
    await engine.close();
  }
}

/** The parity test's checks; returns the largest logprob difference seen. */
function compare(got: Outcome[], refs: PromptRef[]): number {
  let worst = 0;
  refs.forEach((p, i) => {
    const g = got[i];
    const diffs = g.promptLogprobs.map((lp, j) => Math.abs(lp - p.prompt_logprobs[j]));
    worst = Math.max(worst, ...diffs);
    expect(g.top5, `${p.name}: top-5 at the last position`).toEqual(p.last_top5.ids);
    const k = firstNearTie(p.greedy.margins);
    expect(g.tokens.slice(0, k), `${p.name}: greedy tokens`).toEqual(p.greedy.ids.slice(0, k));
    for (let j = 0; j < k; j++) worst = Math.max(worst, Math.abs(g.logprobs[j] - p.greedy.logprobs[j]));
  });
  return worst;
}

describe('the FP8 fixture', () => {
  it('has several blocks both ways in every linear, partial blocks, and no two neighbouring scales alike', () => {
    const src = openSource(fixture);
    expect(src.fp8?.block).toEqual(FP8_BLOCK);
    expect(src.fp8?.quantized.size).toBe(3 * 7); // every linear of tiny-b's 3 layers; lm_head stays bf16
    let partialRows = 0;
    let partialCols = 0;
    for (const name of src.fp8!.quantized) {
      const w = src.checkpoint.tensors.get(name)!;
      const s = src.checkpoint.tensors.get(`${name}_scale_inv`)!;
      expect(w.dtype).toBe('F8_E4M3');
      expect(s.dtype).toBe('F32');
      const [gr, gc] = s.shape;
      expect(gr, name).toBeGreaterThanOrEqual(2);
      expect(gc, name).toBeGreaterThanOrEqual(2);
      if (w.shape[0] % FP8_BLOCK[0]) partialRows++;
      if (w.shape[1] % FP8_BLOCK[1]) partialCols++;
      const scales = new Float32Array(readBytes(s).slice().buffer);
      for (let r = 0; r < gr; r++)
        for (let c = 0; c < gc; c++) {
          if (c + 1 < gc) expect(scales[r * gc + c], `${name} [${r}, ${c}] vs right`).not.toBe(scales[r * gc + c + 1]);
          if (r + 1 < gr) expect(scales[r * gc + c], `${name} [${r}, ${c}] vs below`).not.toBe(scales[(r + 1) * gc + c]);
        }
    }
    expect(partialRows).toBeGreaterThan(0);
    expect(partialCols).toBeGreaterThan(0);
  });

  it('reads bf16 weight_scale_inv as well as fp32', () => {
    const dir = join(work, 'bf16-scales');
    writeFp8Checkpoint(checkpoint(FP8_SOURCE), dir, FP8_BLOCK, { scaleDtype: 'BF16' });
    const src = openSource(dir);
    const name = 'model.layers.1.self_attn.q_proj.weight'; // [144, 96]: grid [5, 2], partial both ways
    const codes = readBytes(src.checkpoint.tensors.get(name)!);
    const scales = new Uint16Array(readBytes(src.checkpoint.tensors.get(`${name}_scale_inv`)!).slice().buffer);
    const w = readFloat(src, name);
    for (let i = 0; i < 144; i++)
      for (let j = 0; j < 96; j++) {
        const s = bf16BitsToF32(scales[Math.floor(i / 32) * 2 + Math.floor(j / 64)]);
        expect(w[i * 96 + j]).toBe(Math.fround(e4m3ToF32(codes[i * 96 + j]) * s));
      }
  });
});

describe('engines built from it match transformers on the same checkpoint', () => {
  const got: Record<string, Outcome[]> = {};

  it(`bf16 (the default): within ${TOL} of transformers, top-5 and greedy tokens the same`, async () => {
    const r = await build({});
    const m = readManifest(r.output_dir);
    expect(m.source).toMatchObject({ name: 'tiny-b-fp8', quantized: 'fp8' });
    expect(m.quantization.qformat).toBe('full_prec');
    expect(m.model_config.quantization_config).toBeUndefined();
    expect(new Set(Object.values(m.ranks[0].linears).map((l) => l.format))).toEqual(new Set(['float']));
    expect(m.ranks[0].tensors['model.layers.0.self_attn.q_proj.weight'].dtype).toBe('BF16');
    // The engine is the FP8 model itself: nothing to compare it with, and no float copy was written.
    expect(r.accuracy).toBeUndefined();
    expect(r.reporter.events.some((e) => e.kind === 'phase' && e.text.startsWith('dequantize'))).toBe(false);
    expect(r.reporter.events.map((e) => e.text)).toContain('accuracy report skipped: the engine is the FP8 checkpoint dequantized, the float model itself; pass --reference_dir with the unquantized model to compare');
    expectCleanEngine(r.output_dir);
    got.bf16 = await outcomes(r.output_dir);
    expect(compare(got.bf16, fp8Refs().prompts)).toBeLessThan(TOL);
  });

  it('float32: the same outputs, since the runtime computes float linears with bf16 weights', async () => {
    const r = await build({ dtype: 'float32' });
    expect(readManifest(r.output_dir).ranks[0].tensors['model.layers.0.self_attn.q_proj.weight'].dtype).toBe('F32');
    expect(await outcomes(r.output_dir)).toEqual(got.bf16);
  });

  it("stays within bf16's rounding of the exact FP8 model, which the tolerance tells apart", () => {
    const exact = fp8Refs().prompts_fp32_weights;
    const diff = (a: number[], b: number[]) => Math.max(...a.map((x, j) => Math.abs(x - b[j])));
    const refsApart = Math.max(...exact.map((p, i) => diff(p.prompt_logprobs, fp8Refs().prompts[i].prompt_logprobs)));
    const engineApart = Math.max(...exact.map((p, i) => diff(p.prompt_logprobs, got.bf16[i].promptLogprobs)));
    // Rounding the dequantized weights to bf16 moves these logprobs by up to 0.07: far past the
    // tolerance, so the comparison above would see a dequantization off by a rounding.
    expect(refsApart).toBeGreaterThan(20 * TOL);
    expect(engineApart).toBeGreaterThan(20 * TOL);
    expect(engineApart).toBeLessThan(0.15);
  });
});

// Bounds measured on this fixture (254 scored tokens) with margin: int8_wo 96.1% / 3.0e-3,
// fp8 (re-quantized per tensor) 74.8% / 0.115.
const bounds = { int8_wo: { kl: 1e-2, top1: 0.92 }, fp8: { kl: 0.2, top1: 0.68 } } as const;

describe('quantized formats from it', () => {
  it.each(Object.keys(bounds) as (keyof typeof bounds)[])('%s: calibrated and scored on the checkpoint dequantized, which is gone afterwards', async (qformat) => {
    const r = await build({ qformat });
    const acc = r.accuracy!;
    expect(acc.reference).toBe('tiny-b-fp8 (dequantized to bfloat16)');
    expect(acc.mean_kl).toBeGreaterThan(0);
    expect(acc.mean_kl).toBeLessThan(bounds[qformat].kl);
    expect(acc.top1_agreement).toBeGreaterThanOrEqual(bounds[qformat].top1);
    const m = readManifest(r.output_dir);
    expect(m.source.quantized).toBe('fp8');
    expect(m.quantization.qformat).toBe(qformat);
    expect(new Set(Object.entries(m.ranks[0].linears).filter(([k]) => k !== 'lm_head').map(([, l]) => l.format))).toEqual(new Set([qformat]));
    expect(Boolean(m.quantization.calibration)).toBe(qformat === 'fp8');
    expect(r.reporter.events.some((e) => e.kind === 'phase' && e.text.startsWith('dequantize: the FP8 checkpoint as bfloat16'))).toBe(true);
    expectCleanEngine(r.output_dir);
    expect(await greedyTokens(r.output_dir, [9707, 11, 847, 829, 374], 6)).toHaveLength(6);
  });
});

describe('a full_prec engine with a quantized KV cache', () => {
  it('calibrates the cache on the checkpoint dequantized and reports the error the cache adds', async () => {
    const r = await build({ kv_cache_dtype: 'int8' });
    const m = readManifest(r.output_dir);
    expect(m.quantization.qformat).toBe('full_prec');
    expect(m.kv_cache.dtype).toBe('int8');
    expect(m.kv_cache.scales).toHaveLength(3);
    expect(r.accuracy!.reference).toBe('tiny-b-fp8 (dequantized to bfloat16)');
    expect(r.accuracy!.mean_kl).toBeGreaterThan(0);
    expect(r.accuracy!.mean_kl).toBeLessThan(1e-2); // the int8 cache alone: 1.9e-3 on 601 tokens
    expectCleanEngine(r.output_dir);
  });
});

/** A variant of the fixture with another config.json; the tensors are the fixture's, linked. */
function configVariant(name: string, qc: Record<string, unknown>): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const f of readdirSync(fixture)) if (f !== 'config.json') symlinkSync(join(fixture, f), join(dir, f));
  const config = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8'));
  config.quantization_config = { ...config.quantization_config, ...qc };
  for (const [k, v] of Object.entries(qc)) if (v === undefined) delete config.quantization_config[k];
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

async function refused(model: string, extra: string[] = []): Promise<string> {
  const out = join(work, `refused-${++n}`);
  const r = await cli.run(['build', '--model_dir', model, '--output_dir', out, ...extra]);
  expect(r.code, r.stderr).toBe(2);
  expect(readdirSync(work)).not.toContain(`refused-${n}`);
  expect(leftovers(work)).toEqual([]);
  return r.stderr;
}

describe('variants grpst cannot read are refused before anything is written (exit 2)', () => {
  const q = 'model.layers.0.self_attn.q_proj.weight';

  it('fmt other than e4m3', async () => {
    const err = await refused(configVariant('e5m2', { fmt: 'e5m2' }));
    expect(err).toMatch(/quantization_config\.fmt "e5m2" is not supported \(e4m3 only\)[\s\S]*fix: use an e4m3 FP8 checkpoint/);
  });

  it('static activation scales', async () => {
    const err = await refused(configVariant('static', { activation_scheme: 'static' }));
    expect(err).toMatch(/quantization_config\.activation_scheme "static" is not supported: .*static input scales would be dropped[\s\S]*fix: use a checkpoint with "activation_scheme": "dynamic"/);
  });

  it.each([
    ['[0, 64]', [0, 64]],
    ['[32.5, 64]', [32.5, 64]],
    ['[128]', [128]],
    ['"128"', '128'],
  ])('weight_block_size %s', async (_label, bs) => {
    const err = await refused(configVariant(`block-${++n}`, { weight_block_size: bs }));
    expect(err).toContain(`weight_block_size is ${JSON.stringify(bs)}; it must be two positive integers [rows, cols]`);
  });

  it('no weight_block_size (per-tensor FP8)', async () => {
    const err = await refused(configVariant('per-tensor', { weight_block_size: undefined }));
    expect(err).toMatch(/has no weight_block_size: per-tensor FP8 checkpoints are not supported[\s\S]*fix: use a block-scaled FP8 checkpoint/);
  });

  it('a block size the scales do not fit', async () => {
    const err = await refused(configVariant('block-mismatch', { weight_block_size: [64, 32] }));
    expect(err).toContain(`${q}_scale_inv is F32 [5,2], expected a float tensor [3,3]: one scale per [64,32] block of the [144,96] weight`);
  });

  it('a missing weight_scale_inv', async () => {
    const dir = join(work, 'no-scale');
    writeFp8Checkpoint(checkpoint(FP8_SOURCE), dir, FP8_BLOCK, { tensors: (t) => t.filter((x) => x.name !== `${q}_scale_inv`) });
    const err = await refused(dir);
    expect(err).toMatch(new RegExp(`${q} is F8_E4M3 but ${q}_scale_inv is missing[\\s\\S]*fix: the FP8 checkpoint is incomplete or damaged`));
  });

  it('a transposed weight_scale_inv', async () => {
    const dir = join(work, 'transposed-scale');
    writeFp8Checkpoint(checkpoint(FP8_SOURCE), dir, FP8_BLOCK, {
      tensors: (t) => t.map((x) => (x.name === `${q}_scale_inv` ? { ...x, shape: [x.shape[1], x.shape[0]] } : x)),
    });
    const err = await refused(dir);
    expect(err).toContain(`${q}_scale_inv is F32 [2,5], expected a float tensor [5,2]`);
  });

  it('an e4m3 NaN code, named by tensor and position', async () => {
    const dir = join(work, 'nan-code');
    writeFp8Checkpoint(checkpoint(FP8_SOURCE), dir, FP8_BLOCK, {
      tensors: (t) => t.map((x) => (x.name === q ? { ...x, data: x.data.map((b, k) => (k === 3 * 96 + 5 ? 0x7f : b)) } : x)),
    });
    const err = await refused(dir);
    expect(err).toMatch(new RegExp(`${q} holds an e4m3 NaN code at \\[3, 5\\][\\s\\S]*fix: the checkpoint is damaged`));
  });

  it('--backend trtllm', async () => {
    const err = await refused(fixture, ['--backend', 'trtllm']);
    expect(err).toMatch(/is a block-scaled FP8 checkpoint, which grpst reads with its native backend only[\s\S]*fix: drop --backend trtllm/);
  });
});

describe('the runtime does not load it unbuilt', () => {
  it('loadEngine and grpst run name the build that makes it loadable', async () => {
    // The message alone says what to do: a server's log shows it without the fix line.
    await expect(loadEngine(fixture)).rejects.toThrow(/is a quantized checkpoint \(quantization_config\.quant_method "fp8"\): only bf16, fp16 and fp32 checkpoints load directly; build an engine from it with grpst build$/);
    const r = await cli.run(['run', '--engine_dir', fixture, '--input_text', 'hi', '--max_output_len', '4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`fix: grpst build --model_dir ${fixture} --output_dir ${fixture}-engine, then load that folder`);
  });

  it('grpst serve refuses it before listening, from --model_dir or from a conf, with the build command', async () => {
    const fix = `fix: run \`grpst build --model_dir ${fixture} --output_dir ${fixture}-engine\` and serve ${fixture}-engine`;
    const direct = await cli.run(['serve', '--model_dir', fixture, '--port', '0']);
    expect(direct.code).toBe(2);
    expect(direct.stderr).toContain(`--model_dir: ${fixture} is a quantized checkpoint (quantization_config.quant_method "fp8")`);
    expect(direct.stderr).toContain(fix);
    const deploy = join(work, 'deploy-quantized');
    mkdirSync(join(deploy, 'conf'), { recursive: true });
    const conf = `models:\n  - name: m\n    version: 1.0.0\n    inferer_args:\n      llm_style: qwen3\n      tokenizer_path: ${fixture}\n      gpt_model_path: ${fixture}\n`;
    writeFileSync(join(deploy, 'conf', 'inference.yml'), conf);
    const fromConf = await cli.run(['serve', '--inference_conf', join(deploy, 'conf', 'inference.yml'), '--deploy_path', deploy, '--port', '0']);
    expect(fromConf.code).toBe(2);
    expect(fromConf.stderr).toMatch(/gpt_model_path.*is a quantized checkpoint/);
    expect(fromConf.stderr).toContain(fix);
    for (const r of [direct, fromConf]) expect(r.stdout + r.stderr).not.toMatch(/listening on/);
  });
});
