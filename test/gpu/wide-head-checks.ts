// The GPU's attention kernels at the head sizes of real Qwen3 models (head_dim 128, and 64), which
// the fixtures (head_dim 24 and 32) never reach: the tensor-core decode attention takes groups of
// up to 8 query heads per KV head at head_dim 64 / 128, and long prompts take several splits.
// Through the real runtime, the CUDA engine against the CPU backend (itself within 3e-5 of
// transformers on the fixtures) on random checkpoints of those shapes: prompt logprobs (prefill
// attention), per-step logprobs and greedy tokens (decode attention) until a near-tie, a batch of
// prompts of different lengths against the same prompts one by one, and the tensor-core decode
// attention against the previous kernel (GRPST_CUDA_MMA_DECODE=0). Shared by
// model-parity.test.ts and scripts/gpu/parity.ts.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type SubmitRequest, type TokenEvent } from '../../src/engine/types.js';
import { writeTinyCheckpoint, type TinySpec } from '../../src/model/tiny-checkpoint.js';
import { cacheDir, specFile, tokenizerDir } from '../helpers/fixtures.js';
import { checkRecorder, distance as diff, equalPrefix, nearTie, showDistance, within as withinBound, withEnv, type CheckOutcome, type Distance } from './parity-checks.js';

// Bounds for these wider random models (hidden 256; the fixtures' 0.25 / 0.06 hold at hidden 64):
// their logits are larger, so the GPU's bf16 rounding points (activations, P for the tensor
// cores) move logprobs further from the CPU backend, which keeps activations in fp32. Measured on
// an H200 (worst case over both shapes and all prompts): prompt logprobs max 0.44 / mean 0.099 with
// the FA2 prefill and 0.47 / 0.085 with the previous prefill kernel (the same error: it is not the
// kernel); the runner-up's logprob at decode steps 0.28 / 0.10 against the CPU, and 0.29 / 0.093
// between the tensor-core decode attention and the previous kernel. A misplaced head, split or
// position moves logprobs by whole units.
export const TOL_MAX_LOGPROB = 0.6;
export const TOL_MEAN_LOGPROB = 0.15;

const base: Omit<TinySpec, 'seed' | 'num_attention_heads' | 'num_key_value_heads' | 'head_dim'> = {
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  tie_word_embeddings: true,
  rope_theta: 1_000_000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 40960,
  shards: 1,
};
const shapes: { name: string; spec: TinySpec }[] = [
  // Qwen3-8B's attention: 128-wide heads, 4 query heads per KV head.
  { name: 'head 128 x 8 / 2 KV', spec: { ...base, seed: 4004, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 128 } },
  // 64-wide heads and the largest group the kernel takes (8 query heads on one KV head).
  { name: 'head 64 x 8 / 1 KV', spec: { ...base, seed: 5005, num_attention_heads: 8, num_key_value_heads: 1, head_dim: 64 } },
];
// Several decode splits at the longest; a lone token; lengths off the 16-token tile grid.
const PROMPT_LENGTHS = [2900, 1500, 701, 37, 1];
const NEW_TOKENS = 24;
const limits = { maxSeqLen: 4096, maxTokensInPagedKvCache: 32768, maxBatchSize: 8 };
const greedy = { ...defaultSampling, temperature: 0 };

export interface Steps {
  tokens: number[];
  promptLogprobs: number[];
  second: number[];  // logprob of the runner-up at each generated step (the top-1 is ~0 on these peaked models)
  margins: number[];
}

/** One request's generated tokens, prompt logprobs and per-step top-2 figures (asks for logprobs: 2). */
export async function steps(engine: Engine, req: SubmitRequest): Promise<Steps> {
  const events: TokenEvent[] = [];
  for await (const ev of engine.submit(req)) events.push(ev);
  const tops = events.flatMap((e) => e.topLogprobs ?? []);
  return {
    tokens: events.flatMap((e) => e.tokens),
    promptLogprobs: (events[0]?.promptLogprobs ?? []).slice(1).map((e) => e?.logprob ?? NaN),
    second: tops.map((t) => t[1]?.logprob ?? NaN),
    margins: tops.map((t) => (t.length > 1 ? t[0].logprob - t[1].logprob : Infinity)),
  };
}

/** The checkpoint folder, written once into .cache/fixtures (its digest stamped beside it). */
function wideCheckpoint(spec: TinySpec, tag: string): string {
  const dir = join(cacheDir, `wide-${tag}`);
  const stamp = join(dir, 'weights.sha256');
  if (existsSync(stamp) && existsSync(join(dir, 'config.json'))) return dir;
  const f = specFile();
  writeFileSync(stamp, writeTinyCheckpoint(dir, spec, f.vocab_size, f.init, { tokenizerDir }), { flag: 'w' });
  return dir;
}

/** Deterministic prompt ids (an LCG over the BPE vocabulary). */
function prompt(length: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % 151_643;
  });
}

const BOUND = { max: TOL_MAX_LOGPROB, mean: TOL_MEAN_LOGPROB };
const fmt = (d: Distance) => showDistance(d, BOUND);
const within = (d: Distance) => withinBound(d, BOUND);


export async function wideHeadChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const [si, shape] of shapes.entries()) {
    const opened: Engine[] = [];
    try {
      const dir = wideCheckpoint(shape.spec, `s${shape.spec.seed}`);
      const reqs: SubmitRequest[] = PROMPT_LENGTHS.map((n, i) => ({
        tokens: prompt(n, 7919 * (si + 1) + i),
        sampling: greedy,
        maxTokens: NEW_TOKENS,
        ignoreEos: true,
        logprobs: 2,
        promptLogprobs: true,
      }));
      const gpu = await withEnv('GRPST_CUDA_MMA_DECODE', undefined, () => loadEngine(dir, { ...limits, device: 'cuda' }));
      opened.push(gpu);
      const previous = await withEnv('GRPST_CUDA_MMA_DECODE', '0', () => loadEngine(dir, { ...limits, device: 'cuda' }));
      opened.push(previous);
      const cpu = await loadEngine(dir, { ...limits, device: 'cpu' });
      opened.push(cpu);
      const alone: Steps[] = [];
      for (const [i, r] of reqs.entries()) {
        const tag = `${shape.name}, prompt of ${PROMPT_LENGTHS[i]}`;
        const g = await steps(gpu, r);
        const c = await steps(cpu, r);
        const p = await steps(previous, r);
        alone.push(g);
        if (g.promptLogprobs.length > 0) add(`${tag}: prompt logprobs vs the CPU backend`, within(diff(g.promptLogprobs, c.promptLogprobs)), fmt(diff(g.promptLogprobs, c.promptLogprobs)));
        const n = Math.min(nearTie(g.margins), nearTie(c.margins));
        add(`${tag}: greedy tokens vs the CPU backend`, g.tokens.length === NEW_TOKENS && equalPrefix(g.tokens, c.tokens, n), `${n} of ${NEW_TOKENS} tokens before a near-tie`);
        const dc = diff(g.second, c.second, n);
        add(`${tag}: decode-step logprobs vs the CPU backend`, within(dc), fmt(dc));
        const np = Math.min(nearTie(g.margins), nearTie(p.margins));
        const dp = diff(g.second, p.second, np);
        add(`${tag}: tensor-core decode attention vs the previous kernel`, equalPrefix(g.tokens, p.tokens, np) && within(dp), `${np} tokens equal; ${fmt(dp)}`);
      }
      const together = await Promise.all(reqs.map((r) => steps(gpu, r)));
      const same = together.every((t, i) => equalPrefix(t.tokens, alone[i].tokens, nearTie(alone[i].margins)));
      add(`${shape.name}: a batch of ${reqs.length} prompts of different lengths = one by one (greedy)`, same, `${reqs.length} concurrent requests`);
    } catch (err) {
      add(`${shape.name} ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      for (const e of opened) await e.close();
    }
  }
  return out;
}
