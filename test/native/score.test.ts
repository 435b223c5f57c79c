// Scoring requests on the native runtime (what /v1/rerank and /v1/score stand on): the prompt is
// computed, nothing is sampled, and the one event carries the raw logprobs of the asked token ids
// at the prompt's last position. Checked against Hugging Face transformers (the logits fixtures'
// prompt logprobs and last-position top 5, fp32) and against the runtime's own prompt logprobs;
// batched with generation, in prefill chunks or from the prefix cache, the same bits.
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { collect, greedy, run } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
// A float32 KV cache: the references are fp32, and the tolerance that of the logits parity test.
async function open(opts: LoadOptions = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-a'), { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, kvCacheDtype: 'float32', ...opts });
  engines.push(e);
  return e;
}
const TOL = 1e-3;

const scoreReq = (tokens: number[], scoreIds: number[]): SubmitRequest => ({ tokens, sampling: greedy, maxTokens: 0, scoreIds });
async function score(engine: Engine, tokens: number[], ids: number[]): Promise<number[]> {
  const r = await collect(engine.submit(scoreReq(tokens, ids)));
  expect(r.finish, r.last.error).toBe('length');
  expect(r.tokens).toEqual([]);
  expect(r.events).toHaveLength(1);
  expect(r.last.scores).toHaveLength(ids.length);
  return Array.from(r.last.scores!);
}

describe('scoring requests', () => {
  it("give transformers' logprobs at the prompt's last position", async () => {
    const engine = await open();
    for (const p of refs('tiny-a').prompts) {
      // The last position's five likeliest tokens, and a few others, in any order.
      const got = await score(engine, p.prompt_ids, [...p.last_top5.ids].reverse());
      for (const [i, lp] of got.reverse().entries()) expect(Math.abs(lp - p.last_top5.logprobs[i]), `${p.name} top ${i}`).toBeLessThan(TOL);
      // Inside the prompt: the prefix up to k scores token k as transformers' prompt logprob does
      // (prompt_logprobs[k - 1] is token k's: position 0 has none).
      for (const k of [1, Math.floor(p.prompt_ids.length / 2), p.prompt_ids.length - 1].filter((k) => k >= 1)) {
        const [lp] = await score(engine, p.prompt_ids.slice(0, k), [p.prompt_ids[k]]);
        expect(Math.abs(lp - p.prompt_logprobs[k - 1]), `${p.name} position ${k}`).toBeLessThan(TOL);
      }
    }
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it("equal the runtime's own prompt logprobs, bit for bit", async () => {
    const engine = await open();
    const p = refs('tiny-a').prompts.find((x) => x.name === 'long')!.prompt_ids.slice(0, 60);
    const r = await run(engine, { tokens: p, sampling: greedy, maxTokens: 1, promptLogprobs: true, promptTopLogprobs: 0 });
    const prompt = r.events[0].promptLogprobs!;
    const [lp] = await score(engine, p.slice(0, -1), [p[p.length - 1]]);
    expect(lp).toBe(prompt[p.length - 1]!.logprob);
  });

  it('are the same alone, batched with generation, in prefill chunks, and from the prefix cache', async () => {
    const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;
    const prompts = [long.slice(0, 40), long.slice(10, 90), long.slice(0, 200)];
    const ids = [9693, 2152, 13, 0];
    const alone = await open({ enablePrefixCaching: false });
    const expected = [];
    for (const tokens of prompts) expected.push(await score(alone, tokens, ids));
    const busy = await open({ maxNumTokens: 32 });
    const generating = prompts.map((tokens) => run(busy, { tokens, sampling: greedy, maxTokens: 20, ignoreEos: true }));
    const together = await Promise.all(prompts.map((tokens) => score(busy, tokens, ids)));
    await Promise.all(generating);
    expect(together).toEqual(expected);
    const cached = await collect(busy.submit(scoreReq(prompts[2], ids)));
    expect(cached.events[0].cachedPromptTokens).toBeGreaterThan(0);
    expect(Array.from(cached.last.scores!)).toEqual(expected[2]);
    expect(busy.stats().kvBlocksUsed).toBe(0);
  });

  it('refuse token ids outside the vocabulary, and a request that both embeds and scores', async () => {
    const engine = await open();
    const vocab = engine.info.vocabSize;
    const bad = await collect(engine.submit(scoreReq([1, 2, 3], [5, vocab])));
    expect(bad.finish).toBe('error');
    expect(bad.last.error).toBe(`score token id ${vocab} is outside the vocabulary (size ${vocab})`);
    const both = await collect(engine.submit({ ...scoreReq([1, 2, 3], [5]), embed: true }));
    expect(both.finish).toBe('error');
    expect(both.last.error).toBe('a request either embeds or scores, not both');
    // The engine goes on serving.
    expect(await score(engine, [1, 2, 3], [5])).toHaveLength(1);
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });
});
