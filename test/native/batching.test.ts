// In-flight batching must not change results: every output row is computed the same way
// whatever else is in the step, so batched, chunked and preempted runs equal serial ones bit
// for bit (tokens, logprobs, alternatives, prompt logprobs).
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { greedy, run, untilPreempted, type RunResult } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close();
});
async function open(name: 'tiny-a' | 'tiny-b' | 'tiny-moe', opts: Parameters<typeof loadEngine>[1] = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint(name), { maxSeqLen: 2048, maxTokensInPagedKvCache: 8192, ...opts });
  engines.push(e);
  return e;
}

function comparable(r: RunResult) {
  return {
    tokens: r.tokens,
    logprobs: r.logprobs,
    top: r.events.flatMap((e) => e.topLogprobs ?? []),
    prompt: r.first.promptLogprobs,
    finish: r.finish,
  };
}

async function serial(engine: Engine, reqs: SubmitRequest[]): Promise<RunResult[]> {
  const out: RunResult[] = [];
  for (const r of reqs) out.push(await run(engine, r));
  return out;
}

/** 32 different prompts cut from the long reference prompt. */
function manyPrompts(count: number): number[][] {
  const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;
  return Array.from({ length: count }, (_, i) => long.slice(i * 7, i * 7 + 5 + ((i * 11) % 40)));
}

describe('batched equals unbatched', () => {
  it('the three reference prompts together, with logprobs and prompt logprobs', async () => {
    const engine = await open('tiny-b');
    const reqs: SubmitRequest[] = refs('tiny-b').prompts.map((p) => ({
      tokens: p.prompt_ids,
      sampling: greedy,
      maxTokens: 24,
      logprobs: 3,
      promptLogprobs: true,
    }));
    const alone = await serial(engine, reqs);
    const together = await Promise.all(reqs.map((r) => run(engine, r)));
    expect(together.map(comparable)).toEqual(alone.map(comparable));
  });

  it('a MoE model: tokens routed to experts together equal each sequence alone', async () => {
    // A step groups every token by its experts; a sequence's rows must not depend on whose
    // tokens share an expert with it (prefill chunks and decode rows mixed, seeded sampling).
    const engine = await open('tiny-moe', { maxBatchSize: 8 });
    const reqs: SubmitRequest[] = manyPrompts(8).map((tokens, i) => ({
      tokens,
      sampling: i % 2 ? greedy : { ...greedy, temperature: 0.8, seed: 7 + i },
      maxTokens: 12,
      logprobs: 2,
      promptLogprobs: i < 2,
    }));
    const alone = await serial(engine, reqs);
    const together = await Promise.all(reqs.map((r) => run(engine, r)));
    expect(together.map(comparable)).toEqual(alone.map(comparable));
  });

  it('32 concurrent greedy requests equal the same requests one by one', async () => {
    const engine = await open('tiny-a', { maxBatchSize: 32 });
    const reqs: SubmitRequest[] = manyPrompts(32).map((tokens) => ({ tokens, sampling: greedy, maxTokens: 16, logprobs: 1 }));
    const alone = await serial(engine, reqs);
    const before = engine.stats();
    const wallStart = performance.now();
    const together = await Promise.all(reqs.map((r) => run(engine, r)));
    const wallSeconds = (performance.now() - wallStart) / 1000;
    expect(together.map(comparable)).toEqual(alone.map(comparable));
    // They really ran together: far fewer steps than 32 requests x 16 tokens.
    const after = engine.stats();
    expect(after.steps - before.steps).toBeLessThan(64);
    // The loop's step time covers its forward passes and fits in the wall time the requests took
    // (give or take a step: a step's time is counted after its events are handed on, so a reading
    // can miss the last one or include the one before).
    const steps = after.steps - before.steps;
    const stepSeconds = after.stepSeconds - before.stepSeconds;
    const forwardSeconds = after.forwardSeconds - before.forwardSeconds;
    expect(forwardSeconds).toBeGreaterThan(0);
    expect(stepSeconds).toBeGreaterThan(forwardSeconds);
    expect(stepSeconds).toBeLessThanOrEqual(wallSeconds + (2 * stepSeconds) / steps);
  });

  it('chunked prefill (small maxNumTokens) gives the same outputs', async () => {
    const whole = await open('tiny-a');
    const chunked = await open('tiny-a', { maxNumTokens: 24, maxBatchSize: 4 });
    const reqs: SubmitRequest[] = refs('tiny-a').prompts.map((p) => ({
      tokens: p.prompt_ids,
      sampling: greedy,
      maxTokens: 12,
      logprobs: 2,
      promptLogprobs: true,
    }));
    const a = await serial(whole, reqs);
    const b = await Promise.all(reqs.map((r) => run(chunked, r)));
    expect(b.map(comparable)).toEqual(a.map(comparable));
  });

  it('preemption in a small KV pool recomputes without changing outputs', async () => {
    const roomy = await open('tiny-a');
    // 12 blocks of 16 tokens: 8 sequences growing to ~60 tokens cannot all stay resident.
    const reqs: SubmitRequest[] = manyPrompts(8).map((tokens) => ({ tokens, sampling: greedy, maxTokens: 40, ignoreEos: true }));
    const expected = await serial(roomy, reqs);
    const { engine: tight, result: got } = await untilPreempted(
      () => open('tiny-a', { maxTokensInPagedKvCache: 12 * 16, maxBatchSize: 8 }),
      (tight) => Promise.all(reqs.map((r) => run(tight, r))),
    );
    expect(got.map(comparable)).toEqual(expected.map(comparable));
    expect(tight.stats().kvBlocksUsed).toBe(0);
  });

  it('the thread count does not change a single bit', async () => {
    const reqs: SubmitRequest[] = refs('tiny-b').prompts.map((p) => ({ tokens: p.prompt_ids, sampling: greedy, maxTokens: 8, logprobs: 2, promptLogprobs: true }));
    const one = await open('tiny-b', { threads: 1 });
    const three = await open('tiny-b', { threads: 3 });
    expect(one.info.threads).toBe(1);
    const a = await serial(one, reqs);
    const b = await Promise.all(reqs.map((r) => run(three, r)));
    expect(b.map(comparable)).toEqual(a.map(comparable));
  });
});
