// The thinking token budget (SubmitRequest.thinkBudget, vLLM's thinking_token_budget): once the
// open think block holds maxTokens tokens, the next token is the closing one, and the rest of the
// answer is what the model says after it. Checked against the model itself: the tokens up to the
// budget are the unbounded run's, the forced token's logprob is the model's own at that step, and
// what follows equals a fresh request whose prompt ends with the forced close.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { SubmitRequest, ThinkBudget } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { greedy, run } from './helpers.js';

// Any two ids of the vocabulary serve as the block's tokens: the runtime only counts them.
const OPEN = 151667;
const CLOSE = 151668;
const budget = (maxTokens: number): ThinkBudget => ({ maxTokens, openToken: OPEN, closeToken: CLOSE });

let engine: Engine;
beforeAll(async () => {
  engine = await loadEngine(checkpoint('tiny-b'), { maxSeqLen: 1024, maxTokensInPagedKvCache: 4096 });
});
afterAll(async () => {
  await engine?.close();
});

const prompt = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids.slice(0, 40);
const inThink = [...prompt, OPEN];
const request = (tokens: number[], over: Partial<SubmitRequest> = {}): SubmitRequest => ({
  tokens,
  sampling: greedy,
  maxTokens: 12,
  ignoreEos: true,
  ...over,
});

describe('a think block opened in the prompt', () => {
  it('closes after exactly maxTokens tokens, and the answer goes on from the close', async () => {
    const free = await run(engine, request(inThink));
    expect(free.tokens).not.toContain(CLOSE); // the random model would not close it by itself
    const bounded = await run(engine, request(inThink, { thinkBudget: budget(4), logprobs: 2 }));
    expect(bounded.tokens.slice(0, 4)).toEqual(free.tokens.slice(0, 4));
    expect(bounded.tokens[4]).toBe(CLOSE);
    expect(bounded.tokens).toHaveLength(12);
    // After the close the model continues as it would from a prompt that ends with it.
    const resumed = await run(engine, request([...inThink, ...bounded.tokens.slice(0, 5)], { maxTokens: 7, promptLogprobs: true, logprobs: 2 }));
    expect(bounded.tokens.slice(5)).toEqual(resumed.tokens);
    // The forced token's logprob is the model's raw one at that step, not a made-up 0.
    const closeLogprob = resumed.first.promptLogprobs![inThink.length + 4]!.logprob;
    expect(bounded.logprobs[4]).toBeCloseTo(closeLogprob, 4);
    expect(bounded.logprobs[4]).toBeLessThan(-1);
  });

  it('closes at once with a budget of 0', async () => {
    const r = await run(engine, request(inThink, { thinkBudget: budget(0), maxTokens: 3 }));
    expect(r.tokens[0]).toBe(CLOSE);
  });

  it('counts only the first block: later opens in the answer are left alone', async () => {
    // logit_bias keeps the open token on top at every step: the first block holds opens and
    // closes at the budget; past it, opens are ordinary answer tokens.
    const r = await run(engine, request(prompt, { thinkBudget: budget(2), logitBias: [[OPEN, 100]], maxTokens: 8 }));
    expect(r.tokens).toEqual([OPEN, OPEN, OPEN, CLOSE, OPEN, OPEN, OPEN, OPEN]);
  });
});

describe('no open block', () => {
  it('leaves a prompt whose block is already closed, or that never opens one, as it was', async () => {
    for (const tokens of [[...prompt, OPEN, 10, CLOSE], prompt]) {
      const free = await run(engine, request(tokens));
      const bounded = await run(engine, request(tokens, { thinkBudget: budget(0) }));
      expect(bounded.tokens).toEqual(free.tokens);
    }
  });
});

describe('bad budgets', () => {
  it('are refused: a negative budget, the same token twice, ids outside the vocabulary', async () => {
    expect(() => engine.submit(request(inThink, { thinkBudget: budget(-1) }))).toThrow(/thinkBudget.maxTokens must be >= 0/);
    expect(() => engine.submit(request(inThink, { thinkBudget: { maxTokens: 1, openToken: OPEN, closeToken: OPEN } }))).toThrow(/two different token ids/);
    const r = await run(engine, request(inThink, { thinkBudget: { maxTokens: 1, openToken: OPEN, closeToken: 10_000_000 } }));
    expect(r.finish).toBe('error');
    expect(r.last.error).toMatch(/outside the vocabulary/);
  });
});
