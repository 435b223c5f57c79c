// Quantized KV caches (fp8 e4m3 and int8, per-layer scales) on the GPU through the real runtime,
// on the tiny fixtures: the CUDA runner's cache writes (q/k norm + RoPE + KV write, fused into
// decode attention on the streaming path) and reads (decode and prefill attention) against the
// CPU backend running the same cache type with the same scales, and against the GPU with a bf16
// cache. The bf16 fixtures take the bf16 models' decode kernels, tiny-a (head_dim 32) also the
// streaming path with its fused attention; tiny-b's 24-byte fp8 / int8 rows always take the
// register-streaming attention kernel. Scales: what `grpst build --kv_cache_dtype`
// calibrates (test/gpu/kv-scales.json, scripts/gpu/kv-scales.ts), and fp8 without calibration
// (scale 1.0) on a checkpoint. Shared by model-parity.test.ts and scripts/gpu/parity.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAddon } from '../../src/engine/addon.js';
import { Engine } from '../../src/engine/engine.js';
import { loadEngine, nativeOptions } from '../../src/engine/load.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { checkpoint, refs, repoRoot, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, distance, equalPrefix, nearTie, run, showDistance, within, type Bound, type CheckOutcome, type Distance, type Outcome } from './parity-checks.js';

type KvType = 'fp8' | 'int8';

// Prompt logprobs of a quantized cache against the same device with a bf16 cache, and of the GPU
// against the CPU with the same quantized cache. These random-weight models are extreme (logits
// reach |20|), so one code step of a key moves logprobs far more than in a trained model. The CPU
// runtime measured these checks' prompts against its bf16 cache (max / mean, worst prompt): fp8
// 0.96 / 0.188 (tiny-b), int8 0.21 / 0.056 (tiny-b), uncalibrated fp8 0.48 / 0.148 (tiny-a). On
// the GPU (H200, first run) against its bf16 cache: fp8 0.84 / 0.201, int8 0.45 / 0.118, and
// against the CPU with the same cache fp8 0.34 / 0.133, int8 0.26 / 0.109: the two devices'
// bf16 roundings put different keys across int8 / e4m3 steps. A wrong scale or a misplaced
// cache row moves logprobs by whole units.
const BOUND = { fp8: { max: 1.5, mean: 0.3 }, int8: { max: 0.6, mean: 0.15 } } as const;
const UNCALIBRATED = { max: 1.0, mean: 0.25 } as const;
// Greedy comparisons stop at the first step either side's top-2 margin falls under this: about
// the largest logprob error the cache type brings, so a flip there is a near-tie, not a bug.
const NEAR_TIE = { fp8: 0.5, int8: 0.25 } as const;

const limits: LoadOptions = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
const greedy = { ...defaultSampling, temperature: 0 };

type Scales = Record<string, Record<KvType, [number, number][]>>;
const scales = (): Scales => JSON.parse(readFileSync(join(repoRoot, 'test', 'gpu', 'kv-scales.json'), 'utf8')) as Scales;

/** The checkpoint with a quantized cache and these scales, as an engine built with --kv_cache_dtype runs it. */
function loadWithScales(dir: string, device: 'cuda' | 'cpu', kvCacheDtype: KvType, kvCacheScales: [number, number][]): Promise<Engine> {
  const ck = openCheckpoint(dir);
  const tensors = [...ck.tensors.values()].map((t) => ({ name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
  return Engine.create(loadAddon(), ck.model, tensors, nativeOptions({ ...limits, device }, 'none', { kvCacheDtype, kvCacheScales }), dir);
}

const logprobDiff = (a: Outcome, b: Outcome): Distance => distance(a.promptLogprobs, b.promptLogprobs, a.promptLogprobs.length);
const inBound = (d: Distance, b: Bound) => d.n > 0 && within(d, b);

export async function kvCacheChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const all = scales();
  // streaming: the bf16 fixture on the streaming decode path (the weight-streaming GEMV, and the
  // fused decode attention, which writes and reads the quantized cache itself), through
  // GRPST_CUDA_STREAM_BF16 and GRPST_CUDA_FUSED_DECODE_MAX_ROWS at load.
  const cases: { name: CheckpointName; kv: KvType; calibrated: boolean; streaming?: boolean }[] = [
    { name: 'tiny-a', kv: 'fp8', calibrated: true },
    { name: 'tiny-a', kv: 'int8', calibrated: true },
    { name: 'tiny-a', kv: 'fp8', calibrated: false },
    { name: 'tiny-a', kv: 'fp8', calibrated: true, streaming: true },
    { name: 'tiny-a', kv: 'int8', calibrated: true, streaming: true },
    { name: 'tiny-b', kv: 'fp8', calibrated: true },
    { name: 'tiny-b', kv: 'int8', calibrated: true },
  ];
  const baselines = new Map<CheckpointName, Outcome[]>();
  for (const c of cases) {
    const dir = checkpoint(c.name);
    const tag = `${c.name} ${c.kv} KV${c.calibrated ? '' : ' (uncalibrated, scale 1.0)'}${c.streaming ? ' (streaming path)' : ''}`;
    const opened: Engine[] = [];
    const open = async (p: Promise<Engine>) => {
      const e = await p;
      opened.push(e);
      return e;
    };
    try {
      const reqs: SubmitRequest[] = refs(c.name).prompts.map((p) => ({ tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, logprobs: 2, promptLogprobs: true }));
      if (!baselines.has(c.name)) {
        const bf16 = await open(loadEngine(dir, { ...limits, device: 'cuda' }));
        const runs: Outcome[] = [];
        for (const r of reqs) runs.push(await run(bf16, r));
        baselines.set(c.name, runs);
      }
      const streamingEnv: Record<string, string> = { GRPST_CUDA_STREAM_BF16: '1', GRPST_CUDA_FUSED_DECODE_MAX_ROWS: '64' };
      const prev = Object.fromEntries(Object.keys(streamingEnv).map((k) => [k, process.env[k]]));
      if (c.streaming) Object.assign(process.env, streamingEnv);
      let gpu: Engine;
      try {
        gpu = await open(c.calibrated ? loadWithScales(dir, 'cuda', c.kv, all[c.name][c.kv]) : loadEngine(dir, { ...limits, device: 'cuda', kvCacheDtype: c.kv }));
      } finally {
        for (const [k, v] of Object.entries(prev)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
      const cpu = await open(c.calibrated ? loadWithScales(dir, 'cpu', c.kv, all[c.name][c.kv]) : loadEngine(dir, { ...limits, device: 'cpu', kvCacheDtype: c.kv }));
      add(`${tag}: the GPU engine runs it`, gpu.info.device === 'cuda' && gpu.info.kvCacheDtype === c.kv && cpu.info.kvCacheDtype === c.kv,
        `${gpu.info.device}, cache ${gpu.info.kvCacheDtype} (CPU: ${cpu.info.kvCacheDtype})`);
      const bound = c.calibrated ? BOUND[c.kv] : UNCALIBRATED;
      const onGpu: Outcome[] = [];
      for (const [i, p] of refs(c.name).prompts.entries()) {
        const g = await run(gpu, reqs[i]);
        const h = await run(cpu, reqs[i]);
        onGpu.push(g);
        const ptag = `${tag} ${p.name}`;
        const vsBf16 = logprobDiff(g, baselines.get(c.name)![i]);
        add(`${ptag} prompt logprobs vs a bf16 cache (GPU)`, inBound(vsBf16, bound), showDistance(vsBf16, bound));
        const vsCpu = logprobDiff(g, h);
        add(`${ptag} prompt logprobs vs the CPU backend, same cache`, inBound(vsCpu, bound), showDistance(vsCpu, bound));
        const n = Math.min(nearTie(g.margins, NEAR_TIE[c.kv]), nearTie(h.margins, NEAR_TIE[c.kv]));
        add(`${ptag} greedy tokens vs the CPU backend, same cache`, equalPrefix(g.tokens, h.tokens, n), `${n} tokens before a near-tie`);
      }
      // One batch (mixed prefill and decode rows, CUDA graphs) against the serial runs.
      const together = await Promise.all(reqs.map((r) => run(gpu, r)));
      const same = together.every((t, i) => equalPrefix(t.tokens, onGpu[i].tokens, nearTie(onGpu[i].margins, NEAR_TIE[c.kv])));
      add(`${tag} batched = one by one (greedy)`, same, `${reqs.length} concurrent requests`);
    } catch (err) {
      add(`${tag} ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      for (const e of opened) await e.close();
    }
  }
  return out;
}
