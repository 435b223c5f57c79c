// Quantized KV caches (fp8 e4m3 and int8, per-layer scales) on the CPU runtime, on engines built
// by the real `grpst build --kv_cache_dtype` from the tiny fixtures: the build's accuracy report
// runs the quantized cache; the engines load and generate close to the same engine with a bf16
// cache; the pool holds twice the tokens in the same bytes; prefix reuse, batching and the kernel
// levels keep their guarantees; and bad settings are clear errors.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildSummary } from '../../src/build/index.js';
import { readManifest } from '../../src/build/manifest.js';
import { loadEngine, probeAddon, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, SubmitRequest } from '../../src/engine/types.js';
import { ExitCode, GrpstError } from '../../src/util/errors.js';
import { makeCli } from '../helpers/grpst-cli.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { greedy, run, type RunResult } from './helpers.js';

type KvType = 'fp8' | 'int8';
const kinds: KvType[] = ['fp8', 'int8'];
const models: CheckpointName[] = ['tiny-a', 'tiny-b'];

// Prompt logprobs against the same engine with a bf16 cache (the three reference prompts, up to
// 300 tokens). These random-weight models are extreme: logits reach |20| and the held-out
// perplexity is ~6e9, so a small change of a key moves logprobs far more than in a trained model.
// Measured (max / mean): fp8 0.44 / 0.075 on tiny-a, 0.96 / 0.114 on tiny-b; int8 0.18 / 0.032 and
// 0.21 / 0.038.
const LOGPROB_BOUND = { fp8: { max: 1.5, mean: 0.2 }, int8: { max: 0.4, mean: 0.07 } } as const;
// fp8 without calibrated scales (scale 1.0: a checkpoint loaded with kvCacheDtype fp8), tiny-a.
// Measured: 0.48 / 0.080.
const UNCALIBRATED_BOUND = { max: 1.0, mean: 0.15 } as const;
// Kernel levels differ in the last bits of k and v; where that crosses a rounding boundary of the
// cache one code moves by a step (int8: amax / 127), which moves logprobs by up to this. Measured 0.0043.
const LEVEL_BOUND = 0.05;
// The build's accuracy report on 256 held-out tokens (full-precision weights: only the cache differs).
const ACCURACY_BOUND = { fp8: { kl: 2e-2, top1: 0.9 }, int8: { kl: 4e-3, top1: 0.95 } } as const;
/**
 * Greedy comparisons stop at the first step whose reference top-2 margin is under this (a
 * near-tie the cache's error can flip): about the largest logprob error of the type (measured
 * flips: fp8 at margins 0.18 and 0.05, int8 none at 0.1).
 */
const NEAR_TIE = { fp8: 0.5, int8: 0.1, level: 0.1 } as const;

let work: string;
const built = new Map<string, { dir: string; summary: BuildSummary; log: string }>();
const engines: Engine[] = [];
const key = (name: CheckpointName, kv: KvType) => `${name}/${kv}`;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpst-kv-quant-'));
  const cli = makeCli();
  for (const name of models) {
    for (const kv of kinds) {
      const dir = join(work, `${name}-${kv}`);
      const r = await cli.run(['build', '--model_dir', checkpoint(name), '--output_dir', dir, '--kv_cache_dtype', kv, '--eval_tokens', '256', '--json']);
      if (r.code !== 0) throw new Error(`grpst build failed (${r.code}): ${r.stdout}\n${r.stderr}`);
      built.set(key(name, kv), { dir, summary: JSON.parse(r.stdout) as BuildSummary, log: r.stderr });
    }
  }
}, 300_000);

afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

async function open(dir: string, opts: LoadOptions = {}): Promise<Engine> {
  const e = await loadEngine(dir, { maxSeqLen: 1024, maxTokensInPagedKvCache: 4096, threads: 2, ...opts });
  engines.push(e);
  return e;
}

const engineDir = (name: CheckpointName, kv: KvType) => built.get(key(name, kv))!.dir;

interface Outcome {
  tokens: number[];
  promptLogprobs: number[];
  margins: number[];
}

function outcome(r: RunResult): Outcome {
  const tops = r.events.flatMap((e) => e.topLogprobs ?? []);
  return {
    tokens: r.tokens,
    promptLogprobs: (r.first.promptLogprobs ?? []).slice(1).map((e) => e?.logprob ?? NaN),
    margins: tops.map((t) => (t.length > 1 ? t[0].logprob - t[1].logprob : Infinity)),
  };
}

function refRequests(name: CheckpointName): SubmitRequest[] {
  return refs(name).prompts.map((p) => ({ tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, logprobs: 2, promptLogprobs: true, ignoreEos: true }));
}

async function runAll(engine: Engine, reqs: SubmitRequest[]): Promise<Outcome[]> {
  const out: Outcome[] = [];
  for (const r of reqs) out.push(outcome(await run(engine, r)));
  return out;
}

/** Max and mean |difference| of prompt logprobs over all prompts. */
function logprobGap(a: Outcome[], b: Outcome[]): { max: number; mean: number } {
  const d = a.flatMap((o, i) => o.promptLogprobs.map((lp, j) => Math.abs(lp - b[i].promptLogprobs[j])));
  return { max: Math.max(...d), mean: d.reduce((s, x) => s + x, 0) / d.length };
}

/** Greedy tokens equal until the reference's first near-tie. */
function expectSameGreedy(got: Outcome[], ref: Outcome[], nearTie: number): void {
  ref.forEach((r, i) => {
    const i0 = r.margins.findIndex((m) => m < nearTie);
    const n = i0 < 0 ? r.tokens.length : i0;
    expect(got[i].tokens.slice(0, n)).toEqual(r.tokens.slice(0, n));
  });
}

describe('grpst build --kv_cache_dtype', () => {
  it.each(models.flatMap((m) => kinds.map((k) => [m, k] as const)))('%s %s: scales in engine.json, accuracy measured with the quantized cache', (name, kv) => {
    const b = built.get(key(name, kv))!;
    const m = readManifest(b.dir);
    expect(m.kv_cache.dtype).toBe(kv);
    expect(m.kv_cache.scales).toHaveLength(Number(JSON.parse(readFileSync(join(checkpoint(name), 'config.json'), 'utf8')).num_hidden_layers));
    const acc = b.summary.accuracy!;
    expect(acc).toEqual(m.accuracy);
    // The weights are exact (full_prec): all of the divergence is the cache's.
    expect(acc.mean_kl).toBeGreaterThan(0);
    expect(acc.mean_kl).toBeLessThan(ACCURACY_BOUND[kv].kl);
    expect(acc.top1_agreement).toBeGreaterThanOrEqual(ACCURACY_BOUND[kv].top1);
    expect(b.log).toContain(`runs the engine with its ${kv} KV cache`);
    expect(b.log).not.toMatch(/unquantized/);
  });

  it('an int8 cache costs less accuracy than fp8 here: 255 even steps over the range against 3 mantissa bits', () => {
    for (const name of models) {
      expect(built.get(key(name, 'int8'))!.summary.accuracy!.mean_kl).toBeLessThan(built.get(key(name, 'fp8'))!.summary.accuracy!.mean_kl);
    }
  });
});

describe.each(models)('%s engines with a quantized KV cache', (name) => {
  const reference: Outcome[] = [];
  beforeAll(async () => {
    // The same engine folder with a bf16 cache: only the cache differs.
    const bf16 = await open(engineDir(name, 'fp8'), { kvCacheDtype: 'bfloat16' });
    expect(bf16.info.kvCacheDtype).toBe('bfloat16');
    reference.push(...(await runAll(bf16, refRequests(name))));
  });

  it.each(kinds)('%s: loads with its cache, logprobs within the bound of bf16, the same greedy tokens until a near-tie', async (kv) => {
    const engine = await open(engineDir(name, kv));
    expect(engine.info.kvCacheDtype).toBe(kv);
    expect(engine.stats().kvCacheDtype).toBe(kv);
    const got = await runAll(engine, refRequests(name));
    const gap = logprobGap(got, reference);
    expect(gap.max).toBeGreaterThan(0);  // the cache is quantized: something differs
    expect(gap.max).toBeLessThan(LOGPROB_BOUND[kv].max);
    expect(gap.mean).toBeLessThan(LOGPROB_BOUND[kv].mean);
    expectSameGreedy(got, reference, NEAR_TIE[kv]);
  });

  it('int8 asked of an fp8 engine reuses its calibration (the same amax, rescaled to 127)', async () => {
    const asked = await open(engineDir(name, 'fp8'), { kvCacheDtype: 'int8' });
    expect(asked.info.kvCacheDtype).toBe('int8');
    const own = await open(engineDir(name, 'int8'));
    const reqs = refRequests(name);
    const a = await runAll(asked, reqs);
    const b = await runAll(own, reqs);
    // The scales agree to their last bit or so (amax / 448 * 448 / 127 against amax / 127): where
    // that moves a value across a rounding boundary of the cache, one code moves by a step, as
    // between kernel levels. An engine that did not reuse its calibration would be off by
    // UNCALIBRATED_BOUND's order.
    expect(logprobGap(a, b).max).toBeLessThan(LEVEL_BOUND);
    expectSameGreedy(a, b, NEAR_TIE.level);
  });
});

describe('the pool', () => {
  it('holds twice the tokens of a bf16 cache in the same bytes, and uses them', async () => {
    const dir = engineDir('tiny-a', 'fp8');
    const probe = await open(dir, { kvCacheDtype: 'bfloat16' });
    const bf16Bytes = probe.nativeInfo.kvBytesPerToken;
    // 16 blocks of 16 tokens in bf16: 256 tokens.
    const bytes = bf16Bytes * 16 * 16;
    const bf16 = await open(dir, { kvCacheDtype: 'bfloat16', maxTokensInPagedKvCache: undefined, kvCacheBytes: bytes });
    const fp8 = await open(dir, { maxTokensInPagedKvCache: undefined, kvCacheBytes: bytes });
    const int8 = await open(engineDir('tiny-a', 'int8'), { maxTokensInPagedKvCache: undefined, kvCacheBytes: bytes });
    expect(fp8.nativeInfo.kvBytesPerToken * 2).toBe(bf16Bytes);
    expect(int8.nativeInfo.kvBytesPerToken * 2).toBe(bf16Bytes);
    expect(bf16.stats().kvBlocksTotal).toBe(16);
    expect(fp8.stats().kvBlocksTotal).toBe(32);
    expect(int8.stats().kvBlocksTotal).toBe(32);
    // A 300-token prompt needs 19 blocks: more than the bf16 pool holds, well within the fp8 one.
    const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;
    const req: SubmitRequest = { tokens: long, sampling: greedy, maxTokens: 8 };
    const tooBig = await run(bf16, req);
    expect(tooBig.finish).toBe('error');
    expect(tooBig.last.error).toMatch(/whole cache holds 16 blocks/);
    for (const e of [fp8, int8]) {
      const ok = await run(e, req);
      expect(ok.finish).toBe('length');
      expect(ok.tokens).toHaveLength(8);
      expect(e.stats().kvBlocksUsed).toBe(0);
    }
  });
});

describe.each(kinds)('%s cache: the runtime guarantees hold', (kv) => {
  const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;

  it('prefix reuse hits and gives the same outputs as without the prefix cache', async () => {
    const cached = await open(engineDir('tiny-a', kv));
    const uncached = await open(engineDir('tiny-a', kv), { enablePrefixCaching: false });
    const first: SubmitRequest = { tokens: long.slice(0, 200), sampling: greedy, maxTokens: 8, logprobs: 2 };
    const second: SubmitRequest = { tokens: [...long.slice(0, 150), ...long.slice(250, 290)], sampling: greedy, maxTokens: 8, logprobs: 2 };
    await run(cached, first);
    const b = await run(cached, second);
    expect(b.first.cachedPromptTokens).toBe(144);
    const ref = await run(uncached, second);
    expect(ref.first.cachedPromptTokens).toBe(0);
    expect(b.tokens).toEqual(ref.tokens);
    expect(b.logprobs).toEqual(ref.logprobs);
  });

  it('concurrent requests give what the same requests give one by one, bit for bit', async () => {
    const engine = await open(engineDir('tiny-b', kv), { maxBatchSize: 16, maxNumTokens: 96 });
    const reqs: SubmitRequest[] = [
      ...refRequests('tiny-b'),
      ...Array.from({ length: 12 }, (_, i) => ({ tokens: long.slice(i * 9, i * 9 + 7 + ((i * 13) % 50)), sampling: greedy, maxTokens: 12, logprobs: 1 })),
    ];
    const alone: RunResult[] = [];
    for (const r of reqs) alone.push(await run(engine, r));
    const together = await Promise.all(reqs.map((r) => run(engine, r)));
    const view = (r: RunResult) => ({ tokens: r.tokens, logprobs: r.logprobs, prompt: r.first.promptLogprobs });
    expect(together.map(view)).toEqual(alone.map(view));
  });

  it('every CPU kernel level agrees with the best one', async () => {
    // One short prompt: the scalar level's lm_head over the 151,936-token vocabulary is slow.
    const reqs = refRequests('tiny-b').slice(0, 1).map((r) => ({ ...r, maxTokens: 8 }));
    const best = await runAll(await open(engineDir('tiny-b', kv)), reqs);
    for (const level of probeAddon().cpuKernels.slice(1)) {
      process.env.GRPST_CPU_KERNELS = level;
      try {
        const engine = await open(engineDir('tiny-b', kv));
        expect(engine.info.kernels).toBe(level);
        const got = await runAll(engine, reqs);
        expect(logprobGap(got, best).max).toBeLessThan(LEVEL_BOUND);
        expectSameGreedy(got, best, NEAR_TIE.level);
      } finally {
        delete process.env.GRPST_CPU_KERNELS;
      }
    }
  });
});

describe('without calibrated scales', () => {
  it('fp8 asked for a checkpoint runs with scale 1.0, within its (looser) bound of bf16', async () => {
    const plain = await open(checkpoint('tiny-a'));
    expect(plain.info.kvCacheDtype).toBe('bfloat16');
    const fp8 = await open(checkpoint('tiny-a'), { kvCacheDtype: 'fp8' });
    expect(fp8.info.kvCacheDtype).toBe('fp8');
    const reqs = refRequests('tiny-a');
    const ref = await runAll(plain, reqs);
    const got = await runAll(fp8, reqs);
    const gap = logprobGap(got, ref);
    expect(gap.max).toBeGreaterThan(0);
    expect(gap.max).toBeLessThan(UNCALIBRATED_BOUND.max);
    expect(gap.mean).toBeLessThan(UNCALIBRATED_BOUND.mean);
    expectSameGreedy(got, ref, NEAR_TIE.fp8);
  });
});

describe('bad settings are clear errors', () => {
  async function loadError(dir: string, opts: LoadOptions): Promise<GrpstError> {
    try {
      await open(dir, opts);
    } catch (e) {
      expect(e).toBeInstanceOf(GrpstError);
      return e as GrpstError;
    }
    throw new Error('loadEngine did not fail');
  }

  it('an unknown cache type names the choices', async () => {
    const err = await loadError(engineDir('tiny-a', 'fp8'), { kvCacheDtype: 'fp4' });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/KV cache dtype "fp4" is unknown/);
    expect(err.hint).toMatch(/auto, bfloat16, float32, fp8 or int8/);
  });

  it('int8 without calibrated scales is refused, naming the build that makes them', async () => {
    const err = await loadError(checkpoint('tiny-a'), { kvCacheDtype: 'int8' });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/int8 KV cache needs per-layer scales/);
    expect(err.message).toContain(checkpoint('tiny-a'));
    expect(err.hint).toMatch(/grpst build .*--kv_cache_dtype int8/);
    // An engine built with the default cache has none either; fp8 still runs on it, uncalibrated.
    const plain = join(work, 'default-kv');
    cpSync(engineDir('tiny-a', 'fp8'), plain, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(plain, 'engine.json'), 'utf8'));
    manifest.kv_cache = { dtype: 'bfloat16' };
    writeFileSync(join(plain, 'engine.json'), JSON.stringify(manifest));
    const fromEngine = await loadError(plain, { kvCacheDtype: 'int8' });
    expect(fromEngine.exitCode).toBe(ExitCode.badInput);
    expect(fromEngine.message).toContain(plain);
    expect(fromEngine.hint).toMatch(/--kv_cache_dtype int8/);
    expect((await open(plain, { kvCacheDtype: 'fp8' })).info.kvCacheDtype).toBe('fp8');
    expect((await open(plain)).info.kvCacheDtype).toBe('bfloat16');
  });

  it('damaged scales in engine.json are refused, naming the layer or the count', async () => {
    const copy = join(work, 'damaged');
    cpSync(engineDir('tiny-a', 'int8'), copy, { recursive: true });
    const file = join(copy, 'engine.json');
    const manifest = JSON.parse(readFileSync(file, 'utf8'));
    const scales = manifest.kv_cache.scales;
    manifest.kv_cache.scales = [scales[0]];
    writeFileSync(file, JSON.stringify(manifest));
    expect((await loadError(copy, {})).message).toMatch(/1 \[k, v\] pairs for a model of 2 layers/);
    manifest.kv_cache.scales = [scales[0], [scales[1][0], -1]];
    writeFileSync(file, JSON.stringify(manifest));
    expect((await loadError(copy, {})).message).toMatch(/scale -1.* of layer 1 must be finite and positive/);
  });
});
