// Speculative decoding by prompt lookup (LoadOptions.speculative, vLLM's speculative_config with
// method ngram): drafts from the sequence's own earlier tokens are checked in one step, and every
// emitted token is still the model's own draw. So each request must give exactly what it gives
// without drafts (tokens, logprobs, finish), in fewer steps where its text repeats, whether the
// drafts are taken or thrown away; and the KV rows of thrown-away drafts must never reach a later
// request through the prefix cache.
import { afterAll, describe, expect, it } from 'vitest';
import { loadAddon, loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, SamplingParams, SubmitRequest, TokenEvent } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { clientView, greedy, run, untilPreempted } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
async function open(name: CheckpointName, opts: LoadOptions = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint(name), { maxSeqLen: 1024, ...opts });
  engines.push(e);
  return e;
}
const ngram = (numSpeculativeTokens = 4): LoadOptions => ({ speculative: { method: 'ngram', numSpeculativeTokens } });
const prompt = (name: CheckpointName, which: string) => refs(name).prompts.find((p) => p.name === which)!.prompt_ids;

const output = clientView;

/** Runs `req` on both engines, one after the other; the drafted engine's steps and draft counters spent on it. */
async function both(off: Engine, on: Engine, req: SubmitRequest) {
  const before = on.stats();
  const stepsOff = off.stats().steps;
  const a = await run(off, req);
  const b = await run(on, req);
  const after = on.stats();
  const spec = (k: 'drafts' | 'draftTokens' | 'acceptedTokens') => after.specDecode![k] - before.specDecode![k];
  return {
    off: a,
    on: b,
    stepsOff: off.stats().steps - stepsOff,
    stepsOn: after.steps - before.steps,
    draftTokens: spec('draftTokens'),
    accepted: spec('acceptedTokens'),
  };
}

describe('prompt lookup index', () => {
  it('finds the drafts the scan that defines them finds, on sequences grown token by token', () => {
    // Repetitive sequences over small vocabularies, every suffix length and draft count up to 16,
    // the index kept across the growth as a sequence keeps it (lengths shorter than k included).
    const r = loadAddon().ngramDraftSelfTest(7, 300);
    expect(r.first).toBe('');
    expect(r.mismatches).toBe(0);
    expect(r.lookups).toBeGreaterThan(50_000);
    expect(r.found).toBeGreaterThan(r.lookups / 3);
  });
});

describe('speculative decoding (ngram)', () => {
  it('reports what it resolved, and is off unless asked', async () => {
    expect((await open('tiny-a')).info.speculative).toBeUndefined();
    expect((await open('tiny-a')).stats().specDecode).toBeUndefined();
    const on = await open('tiny-a', ngram(3));
    expect(on.info.speculative).toEqual({ method: 'ngram', numSpeculativeTokens: 3, promptLookupMin: 2, promptLookupMax: 4 });
    expect(on.stats().specDecode).toEqual({ drafts: 0, draftTokens: 0, acceptedTokens: 0 });
    const one = await open('tiny-a', { speculative: { method: 'ngram', numSpeculativeTokens: 2, promptLookupMax: 1 } });
    expect(one.info.speculative).toMatchObject({ promptLookupMin: 1, promptLookupMax: 1 });
  });

  it('refuses settings it cannot run, naming them', async () => {
    await expect(open('tiny-a', ngram(17))).rejects.toThrow(/speculativeTokens must be between 0 and 16/);
    await expect(open('tiny-a', { speculative: { method: 'ngram', numSpeculativeTokens: 2, promptLookupMin: 5, promptLookupMax: 3 } })).rejects.toThrow(
      /promptLookupMin \/ promptLookupMax must satisfy 1 <= min <= max <= 16/,
    );
    await expect(open('tiny-a', { speculative: { method: 'eagle', numSpeculativeTokens: 2 } as unknown as LoadOptions['speculative'] })).rejects.toThrow(
      /speculative method "eagle" is not served/,
    );
  });

  it('greedy: the same tokens and logprobs as one token a step, in far fewer steps where the output repeats', async () => {
    const off = await open('tiny-a');
    const on = await open('tiny-a', ngram(4));
    for (const which of ['chat', 'english', 'long']) {
      const req: SubmitRequest = { tokens: prompt('tiny-a', which), sampling: greedy, maxTokens: 64, ignoreEos: true, logprobs: 2 };
      const r = await both(off, on, req);
      expect(output(r.on)).toEqual(output(r.off));
      expect(r.on.tokens).toHaveLength(64);
      // This model's greedy output repeats itself: four drafts a step are taken.
      expect(r.accepted).toBeGreaterThan(0);
      expect(r.stepsOff).toBe(64);
      expect(r.stepsOn).toBeLessThan(r.stepsOff / 3);
    }
  });

  it('drafts the model disagrees with are thrown away, and their cache rows never reach a later request', async () => {
    const off = await open('tiny-a', { enablePrefixCaching: false });
    const on = await open('tiny-a', ngram(4));
    // tiny-a repeats one token X; a prompt holding "X X X" followed by other tokens makes drafts
    // of those others until the output's own run of X is long enough to be looked up instead.
    const chat = prompt('tiny-a', 'chat');
    const x = (await run(off, { tokens: chat, sampling: greedy, maxTokens: 1 })).tokens[0];
    const echo = [...chat, x, x, x, 5, 6, 7, 8, ...chat];
    const r = await both(off, on, { tokens: echo, sampling: greedy, maxTokens: 48, ignoreEos: true, logprobs: 1 });
    expect(output(r.on)).toEqual(output(r.off));
    expect(r.accepted).toBeGreaterThan(0);
    expect(r.draftTokens).toBeGreaterThan(r.accepted);
    // The drafted sequence's decode blocks went into the prefix cache: a request that extends it
    // reads them back, and must continue exactly as a fresh computation does.
    const longer: SubmitRequest = { tokens: [...echo, ...r.on.tokens.slice(0, 40)], sampling: greedy, maxTokens: 16, ignoreEos: true, logprobs: 1 };
    const cached = await run(on, longer);
    expect(cached.first.cachedPromptTokens).toBeGreaterThan(echo.length);
    expect(output(cached)).toEqual(output(await run(off, longer)));
  });

  it('drafts the request\'s rules refuse are cut before the check: a bad token, a held-back stop, a bad sequence, a constraint, a thinking budget', async () => {
    // The echo prompt of the test above drafts 5, 6, 7, 8 after the output's first X's, which the
    // model turns down. Where a rule forbids 5 there, prompt lookup's draft is cut before it (the
    // check would refuse that row and compute the rows after it for nothing): every draft left is
    // one of the output's own X's, and taken.
    const off = await open('tiny-a', { enablePrefixCaching: false });
    const on = await open('tiny-a', { ...ngram(4), enablePrefixCaching: false });
    const chat = prompt('tiny-a', 'chat');
    const x = (await run(off, { tokens: chat, sampling: greedy, maxTokens: 1 })).tokens[0];
    const echo: SubmitRequest = { tokens: [...chat, x, x, x, 5, 6, 7, 8, ...chat], sampling: greedy, maxTokens: 48, ignoreEos: true };
    const unruled = await both(off, on, echo);
    expect(unruled.draftTokens).toBeGreaterThan(unruled.accepted);
    const rules: [string, SubmitRequest][] = [
      ['a bad token', { ...echo, badTokenIds: [5] }],
      ['a stop held back by min_tokens', { ...echo, ignoreEos: false, stopTokenIds: [5], minTokens: 48 }],
      ['a bad sequence', { ...echo, badSequences: [[x, 5]] }],
      ['a constraint', { ...echo, constraint: on.allowedTokensConstraint([x, 6, 7, 8]) }],
      // The output's own repeats drafted over the row where the spent budget forces the close
      // (after 18 tokens: inside a step's drafts, not on the row after them).
      ['a thinking budget', { ...echo, tokens: [...echo.tokens, 151667], thinkBudget: { maxTokens: 18, openToken: 151667, closeToken: 151668 } }],
    ];
    for (const [rule, req] of rules) {
      const r = await both(off, on, req);
      expect(output(r.on), rule).toEqual(output(r.off));
      expect(r.accepted, rule).toBeGreaterThan(0);
      expect(r.accepted, rule).toBe(r.draftTokens);
    }
  });

  it('seeded sampling, penalties, min_tokens, stop tokens and max_tokens end exactly as without drafts', async () => {
    const off = await open('tiny-a');
    const on = await open('tiny-a', ngram(4));
    const chat = prompt('tiny-a', 'chat');
    const sampled: SamplingParams = { ...greedy, temperature: 0.7, topK: 20, topP: 0.95, seed: 11 };
    const plain = await run(off, { tokens: chat, sampling: sampled, maxTokens: 40, ignoreEos: true });
    // The first token the sampled output changes to, as a stop token: it ends a run of drafted tokens.
    const change = plain.tokens.find((t) => t !== plain.tokens[0])!;
    const loop = plain.tokens[0];
    const cases: SubmitRequest[] = [
      { tokens: chat, sampling: sampled, maxTokens: 40, ignoreEos: true, logprobs: 3 },
      { tokens: chat, sampling: { ...greedy, repetitionPenalty: 1.3, frequencyPenalty: 0.2 }, maxTokens: 40, ignoreEos: true },
      { tokens: chat, sampling: sampled, maxTokens: 40, stopTokenIds: [change], logprobs: 1 },
      // The loop's token as a stop token held back for five tokens.
      { tokens: chat, sampling: greedy, maxTokens: 40, stopTokenIds: [loop], minTokens: 5 },
      ...[1, 2, 3, 5, 6, 9].map((maxTokens): SubmitRequest => ({ tokens: chat, sampling: greedy, maxTokens, ignoreEos: true })),
    ];
    let drafted = 0;
    for (const req of cases) {
      const r = await both(off, on, req);
      expect(output(r.on)).toEqual(output(r.off));
      drafted += r.draftTokens;
    }
    expect(drafted).toBeGreaterThan(0);
    const stopped = await run(on, cases[2]);
    expect(stopped.finish).toBe('stop');
    expect(stopped.last.stopTokenId).toBe(change);
    // It came in a step that also emitted drafted tokens before it.
    expect(stopped.last.tokens.length).toBeGreaterThan(1);
  });

  it('a constraint and concurrent requests see the same tokens', async () => {
    const off = await open('tiny-a');
    const on = await open('tiny-a', ngram(4));
    const reqs: SubmitRequest[] = ['chat', 'english', 'long'].map((which) => ({ tokens: prompt('tiny-a', which), sampling: greedy, maxTokens: 30, ignoreEos: true }));
    const allowed = [...new Set(reqs[0].tokens)].slice(0, 6);
    const constrained = (e: Engine): SubmitRequest => ({ ...reqs[0], constraint: e.allowedTokensConstraint(allowed) });
    const alone = [];
    for (const req of [...reqs, constrained(off)]) alone.push(output(await run(off, req)));
    const together = await Promise.all([...reqs, constrained(on)].map((req) => run(on, req)));
    expect(together.map(output)).toEqual(alone);
    expect(together[3].tokens.every((t) => allowed.includes(t))).toBe(true);
    expect(on.stats().specDecode!.acceptedTokens).toBeGreaterThan(0);
  });

  it('drafts take only the room certain work leaves: a tight step budget still decodes and admits everyone', async () => {
    // Two tokens a step for two sequences: without room to spare, no drafts, and the second
    // request is admitted and decodes beside the first instead of waiting for it to finish.
    const tight = await open('tiny-a', { maxBatchSize: 2, maxNumTokens: 2, speculative: { method: 'ngram', numSpeculativeTokens: 4, promptLookupMin: 1 } });
    const chat = prompt('tiny-a', 'chat');
    const x = (await run(tight, { tokens: chat, sampling: greedy, maxTokens: 1 })).tokens[0];
    // 300 tokens take the first about 150 steps (~0.1 s here), room for the second to arrive
    // while it runs even when this thread is slow to see the first's first event.
    const long: SubmitRequest = { tokens: [x, x, x], sampling: greedy, maxTokens: 300, ignoreEos: true };
    // The first request decodes alone, a draft token beside its decode row in every step, before
    // the second arrives; the second's prompt must then take the room the drafts had, and its 5
    // tokens end long before the first's 300. Held back by the drafts, it would wait for the first
    // to end. (The order the two end in, not step counts read from JS, which lag the engine by as
    // many steps as the event channel coalesced.)
    const ended: string[] = [];
    const firstEvents = tight.submit(long)[Symbol.asyncIterator]();
    const firstTokens = ((await firstEvents.next()).value as TokenEvent).tokens;
    const second = run(tight, { ...long, maxTokens: 5 }).then((r) => (ended.push('second'), r));
    for (let ev = await firstEvents.next(); !ev.done; ev = await firstEvents.next()) firstTokens.push(...ev.value.tokens);
    ended.push('first');
    expect([firstTokens.length, (await second).tokens.length]).toEqual([300, 5]);
    expect(ended).toEqual(['second', 'first']);
  });

  it('a drafting sequence preempted when KV blocks run out is recomputed and ends as without drafts', async () => {
    // Six blocks of 16 tokens: two sequences growing to 60 tokens cannot both stay.
    const tight = (opts: LoadOptions) => open('tiny-a', { maxBatchSize: 2, maxTokensInPagedKvCache: 6 * 16, ...opts });
    const off = await tight({});
    const long = prompt('tiny-a', 'long');
    const reqs: SubmitRequest[] = [0, 30].map((at) => ({ tokens: long.slice(at, at + 10), sampling: greedy, maxTokens: 50, ignoreEos: true }));
    const plain = await Promise.all(reqs.map((r) => run(off, r)));
    const { engine: on, result: drafted } = await untilPreempted(() => tight(ngram(4)), (on) => Promise.all(reqs.map((r) => run(on, r))));
    expect(drafted.map(output)).toEqual(plain.map(output));
    expect(on.stats().specDecode!.acceptedTokens).toBeGreaterThan(0);
  });
});

