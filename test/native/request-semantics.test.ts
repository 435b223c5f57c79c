// What a vLLM user relies on per request: a seed gives the same tokens however the request is
// scheduled (alone, batched with unlike requests, chunked, on a prefix-cache hit); logprobs are
// the raw model distribution (vLLM V1's default), whatever penalties, bias and temperature shape
// the draw; a cancel in the middle of a chunked prefill frees the request's blocks and leaves the
// requests running beside it untouched; stop tokens end a request even on its first token.
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type SamplingParams, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { greedy, run, waitFor, type RunResult } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
async function open(opts: Parameters<typeof loadEngine>[1] = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-b'), { maxSeqLen: 2048, maxTokensInPagedKvCache: 8192, ...opts });
  engines.push(e);
  return e;
}

const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;
const sampled = (over: Partial<SamplingParams>): SamplingParams => ({ ...defaultSampling, ...over });
const outputs = (r: RunResult) => ({ tokens: r.tokens, logprobs: r.logprobs, top: r.events.flatMap((e) => e.topLogprobs ?? []), finish: r.finish });

describe('a seeded request', () => {
  it('gives the same tokens alone, batched with unlike requests, chunked and on a prefix-cache hit', async () => {
    const engine = await open({ maxBatchSize: 16 });
    const uncached = await open({ enablePrefixCaching: false });
    const chunked = await open({ maxNumTokens: 24, maxBatchSize: 4 });
    const target: SubmitRequest = {
      tokens: long.slice(0, 100),
      sampling: sampled({ seed: 99, temperature: 0.9, topK: 50, topP: 0.95, minP: 0.02, presencePenalty: 0.5, frequencyPenalty: 0.2, repetitionPenalty: 1.2 }),
      maxTokens: 40,
      logprobs: 3,
      ignoreEos: true,
    };
    const alone = outputs(await run(uncached, target));
    expect(alone.tokens).toHaveLength(40);
    expect(outputs(await run(engine, target))).toEqual(alone);
    const hit = await run(engine, target);
    expect(hit.first.cachedPromptTokens).toBe(96);
    expect(outputs(hit)).toEqual(alone);
    // Neighbours of other lengths and settings, one of them with the same seed.
    const unlike = (i: number): SubmitRequest => ({
      tokens: long.slice(i * 13, i * 13 + 10 + i * 17),
      sampling: sampled({ seed: i === 3 ? 99 : i, temperature: 0.5 + i * 0.2, minP: i % 2 ? 0.1 : 0, frequencyPenalty: i * 0.1 }),
      maxTokens: 5 + i * 7,
      logprobs: i % 3,
      ignoreEos: true,
    });
    for (const e of [engine, chunked]) {
      const [batched] = await Promise.all([run(e, target), ...Array.from({ length: 8 }, (_, i) => run(e, unlike(i)))]);
      expect(outputs(batched)).toEqual(alone);
    }
  });
});

describe('logprobs', () => {
  it('are the raw distribution whatever penalties, bias and temperature do to the draw', async () => {
    const engine = await open();
    const prompt = long.slice(0, 40);
    const first = (await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 1 })).tokens[0];
    const r = await run(engine, {
      tokens: prompt,
      sampling: sampled({ seed: 5, temperature: 1.3, repetitionPenalty: 1.3, presencePenalty: 1, frequencyPenalty: 0.5 }),
      maxTokens: 16,
      logprobs: 20,
      logitBias: [[first, 5]],
      ignoreEos: true,
    });
    const forced = await run(engine, { tokens: [...prompt, ...r.tokens], sampling: greedy, maxTokens: 0, promptLogprobs: true, logprobs: 20 });
    const teacher = forced.first.promptLogprobs!.slice(prompt.length);
    const tops = r.events.flatMap((e) => e.topLogprobs!);
    r.tokens.forEach((token, i) => {
      expect(r.logprobs[i]).toBeCloseTo(teacher[i]!.logprob, 4);
      expect(r.logprobs[i]).toBeLessThanOrEqual(0);
      // The sampled token's entry among the alternatives is the same number.
      const entry = tops[i].find((t) => t.token === token);
      if (entry) expect(entry.logprob).toBe(r.logprobs[i]);
      expect(tops[i].reduce((sum, t) => sum + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-6);
    });
  });
});

describe('cancel in the middle of a chunked prefill', () => {
  it('frees the blocks and leaves the request beside it unchanged', async () => {
    const engine = await open({ maxNumTokens: 16, maxBatchSize: 4 });
    const beside: SubmitRequest = { tokens: long.slice(5, 40), sampling: sampled({ seed: 3 }), maxTokens: 60, ignoreEos: true, logprobs: 2 };
    const expected = outputs(await run(engine, beside));
    const before = engine.stats().kvBlocksUsed;
    const running = run(engine, beside);
    const ctl = new AbortController();
    const steps = engine.stats().steps;
    // 1200 prompt tokens in chunks of at most 16: some 75 steps of prefill.
    const cancelled = run(engine, { tokens: [...long, ...long, ...long, ...long], sampling: greedy, maxTokens: 5, signal: ctl.signal });
    await waitFor(() => engine.stats().steps >= steps + 3);
    expect(engine.stats().kvBlocksUsed).toBeGreaterThanOrEqual(before + 1200 / 16);
    ctl.abort();
    const c = await cancelled;
    expect(c.finish).toBe('cancelled');
    expect(c.tokens).toEqual([]);
    expect(outputs(await running)).toEqual(expected);
    await waitFor(() => engine.stats().running === 0);
    expect(engine.stats().kvBlocksUsed).toBe(before);
  });
});

describe('stop tokens', () => {
  it('end the request on its first token; minTokens holds them back, ignoreEos passes them', async () => {
    const engine = await open();
    const prompt = long.slice(0, 10);
    const g = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 3, logprobs: 1 });
    const stop = g.tokens[0];
    const r = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 3, stopTokenIds: [stop], logprobs: 1 });
    expect(r.tokens).toEqual([]);
    expect(r.finish).toBe('stop');
    expect(r.last.stopTokenId).toBe(stop);
    expect(r.last.stopLogprob!.logprob).toBe(g.logprobs[0]);
    const held = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 3, stopTokenIds: [stop], minTokens: 1 });
    expect(held.tokens[0]).not.toBe(stop);
    const passed = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 3, stopTokenIds: [stop], ignoreEos: true });
    expect(passed.tokens).toEqual(g.tokens);
    expect(passed.finish).toBe('length');
    const one = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 1 });
    expect(one.tokens).toEqual(g.tokens.slice(0, 1));
    expect(one.finish).toBe('length');
  });
});
