// The runtime against Hugging Face transformers (fp32 references recorded by
// scripts/make_fixtures.py): teacher-forced prompt logprobs, last-position top-5, greedy tokens,
// on every CPU kernel level this machine has and from bf16, fp16 and fp32 source checkpoints.
// KV cache in float32 here: tolerance 1e-3 on logprobs. (With the default bf16 KV cache the
// error grows to a few 1e-2 on these random models' large logits; see kv-dtype test below.)
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, probeAddon, type Engine } from '../../src/engine/index.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { firstNearTie, greedy, run, withLevel } from './helpers.js';

const names: CheckpointName[] = ['tiny-a', 'tiny-b', 'tiny-yarn'];
const levels = probeAddon().cpuKernels;
const TOL = 1e-3;

interface PromptOutcome {
  promptLogprobs: number[];
  top5: number[];
  tokens: number[];
  logprobs: number[];
}

async function runAll(engine: Engine, name: CheckpointName): Promise<PromptOutcome[]> {
  const out: PromptOutcome[] = [];
  for (const p of refs(name).prompts) {
    const r = await run(engine, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, promptLogprobs: true, logprobs: 5 });
    expect(r.finish).toBe('length');
    const pl = r.first.promptLogprobs!;
    expect(pl).toHaveLength(p.prompt_ids.length);
    expect(pl[0]).toBeNull();
    out.push({
      promptLogprobs: pl.slice(1).map((e) => e!.logprob),
      top5: r.first.topLogprobs![0].map((t) => t.token),
      tokens: r.tokens,
      logprobs: r.logprobs,
    });
  }
  return out;
}

function checkAgainstRefs(name: CheckpointName, got: PromptOutcome[]): void {
  refs(name).prompts.forEach((p, i) => {
    const g = got[i];
    const diffs = g.promptLogprobs.map((lp, j) => Math.abs(lp - p.prompt_logprobs[j]));
    expect(Math.max(...diffs), `${name}/${p.name}: prompt logprobs`).toBeLessThan(TOL);
    expect(g.top5, `${name}/${p.name}: top-5 at the last position`).toEqual(p.last_top5.ids);
    const n = firstNearTie(p.greedy.margins);
    expect(g.tokens.slice(0, n), `${name}/${p.name}: greedy tokens`).toEqual(p.greedy.ids.slice(0, n));
    for (let j = 0; j < n; j++) expect(Math.abs(g.logprobs[j] - p.greedy.logprobs[j])).toBeLessThan(TOL);
  });
}

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close();
});

async function open(dir: string, kvCacheDtype = 'float32'): Promise<Engine> {
  const e = await loadEngine(dir, { kvCacheDtype, maxTokensInPagedKvCache: 2048, maxSeqLen: 1024 });
  engines.push(e);
  return e;
}

describe.each(names)('%s matches transformers', (name) => {
  const best: Record<string, PromptOutcome[]> = {};

  it.each(levels)('with the %s kernels', async (level) => {
    const got = await withLevel(level, async () => {
      const engine = await open(checkpoint(name));
      expect(engine.info.kernels).toBe(level);
      return runAll(engine, name);
    });
    checkAgainstRefs(name, got);
    if (level === levels[0]) best.bf16 = got;
  });

  it('from a float32 checkpoint, identically', async () => {
    // fp32 holds the fixtures' bf16 values exactly: the same weights, the same bits out.
    const got = await runAll(await open(checkpoint(name, 'float32')), name);
    const reference = best.bf16 ?? (await runAll(await open(checkpoint(name)), name));
    expect(got).toEqual(reference);
  });

  it('from a float16 checkpoint', async () => {
    // fp16 rounds the smallest weights (its subnormals), so the values differ slightly.
    checkAgainstRefs(name, await runAll(await open(checkpoint(name, 'float16')), name));
  });
});

// Qwen3-MoE: the router, top-k experts and their weighted sum (tiny-moe: top 2 of 8 renormalised,
// a dense layer between sparse ones; tiny-moe-b: top 3 of 6 not renormalised, every second layer
// sparse, two shards, untied head). The linear kernels under the experts are the dense layers'
// (checked at every level above), so the best level here.
describe.each(['tiny-moe', 'tiny-moe-b'] as CheckpointName[])('%s (experts) matches transformers', (name) => {
  it(`with the ${levels[0]} kernels`, async () => {
    const engine = await open(checkpoint(name));
    checkAgainstRefs(name, await runAll(engine, name));
  });
});

describe('bf16 KV cache (the default)', () => {
  it('stays close to transformers and keeps the greedy tokens', async () => {
    const engine = await open(checkpoint('tiny-b'), 'auto');
    expect(engine.info.kvCacheDtype).toBe('bfloat16');
    const got = await runAll(engine, 'tiny-b');
    refs('tiny-b').prompts.forEach((p, i) => {
      const diffs = got[i].promptLogprobs.map((lp, j) => Math.abs(lp - p.prompt_logprobs[j]));
      // bf16 keys/values carry 8 bits of mantissa; logits here reach |20|.
      expect(Math.max(...diffs)).toBeLessThan(0.1);
      const n = firstNearTie(p.greedy.margins, 0.1);
      expect(got[i].tokens.slice(0, n)).toEqual(p.greedy.ids.slice(0, n));
    });
  });
});
