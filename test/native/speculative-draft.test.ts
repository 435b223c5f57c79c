// Speculative decoding with a draft model (LoadOptions.speculative method draft_model, vLLM's
// speculative_config with `model`): a second, smaller model of the same vocabulary proposes each
// decoding sequence's next tokens, and the model checks them in one step. Every emitted token is
// still the model's own draw, so a request gives exactly what it gives without drafts, whether the
// draft agrees (tiny-b drafting for itself: every proposal taken) or mostly not (tiny-a drafting
// for tiny-b); and the draft's cache must follow the model's through prefix-cache hits and
// preemptions, or its proposals would drift: tiny-b's greedy output depends on its context (tiny-a
// repeats one token whatever came before), so a self-draft whose cache missed positions is refused.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, ResolvedSpeculation, SamplingParams, SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { schemaGrammar, tokenizer } from '../unit/structured-sample.js';
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
const drafted = (draft: CheckpointName, numSpeculativeTokens = 4): LoadOptions => ({
  speculative: { method: 'draft_model', numSpeculativeTokens, model: checkpoint(draft) },
});
const prompt = (name: CheckpointName, which: string) => refs(name).prompts.find((p) => p.name === which)!.prompt_ids;

const output = clientView;

/** The distinct keys, the most frequent first (equals in the order first seen). */
function byCount<T>(keys: T[]): T[] {
  const counts = new Map<T, number>();
  for (const k of keys) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
}

/** Runs `req` on both engines; the drafted engine's steps and draft counters spent on it. */
async function both(off: Engine, on: Engine, req: SubmitRequest) {
  const before = on.stats();
  const a = await run(off, req);
  const b = await run(on, req);
  const after = on.stats();
  const spec = (k: 'drafts' | 'draftTokens' | 'acceptedTokens') => after.specDecode![k] - before.specDecode![k];
  return { off: a, on: b, stepsOn: after.steps - before.steps, draftTokens: spec('draftTokens'), accepted: spec('acceptedTokens') };
}

describe('speculative decoding (draft model)', () => {
  it('reports the method and the draft cache it took', async () => {
    const on = await open('tiny-b', drafted('tiny-a', 3));
    expect(on.info.speculative).toMatchObject({ method: 'draft_model', numSpeculativeTokens: 3 });
    const spec = on.nativeInfo.speculative as Extract<ResolvedSpeculation, { method: 'draft_model' }>;
    // On the model's device; the CPU runner's proposals are read from host logits.
    expect(spec).toMatchObject({ draftDevice: 'cpu', draftSamplesOnDevice: false });
    // tiny-a's cache: 2 layers x 2 KV heads x 32 dims x (k, v) x bf16 = 512 bytes a token, for at
    // least the model's pool of tokens (plus scratch blocks for the proposals).
    expect(spec.draftKvBytesPerToken).toBe(512);
    expect(spec.draftKvBytes).toBeGreaterThanOrEqual(on.nativeInfo.kvBlocks * on.nativeInfo.kvBlockSize * 512);
    expect(spec.draftWeightBytesPerStep).toBeGreaterThan(0);
    expect(on.stats().specDecode).toEqual({ drafts: 0, draftTokens: 0, acceptedTokens: 0 });
  });

  it('a draft that is the model itself: every proposal is taken, the output is the same, in a fifth of the steps', async () => {
    const off = await open('tiny-b');
    const on = await open('tiny-b', drafted('tiny-b', 4));
    for (const which of ['chat', 'english', 'long']) {
      const req: SubmitRequest = { tokens: prompt('tiny-b', which), sampling: greedy, maxTokens: 61, ignoreEos: true, logprobs: 2 };
      const r = await both(off, on, req);
      expect(output(r.on)).toEqual(output(r.off));
      expect(new Set(r.on.tokens).size).toBeGreaterThan(30);
      // One prefill step, then 12 steps of 1 + 4 tokens each.
      expect(r.accepted).toBe(r.draftTokens);
      expect(r.draftTokens).toBe(48);
      expect(r.stepsOn).toBe(13);
    }
  });

  it('a draft of another model: most proposals are refused, and the output is still the model\'s own', async () => {
    const off = await open('tiny-b');
    const on = await open('tiny-b', drafted('tiny-a', 3));
    const chat = prompt('tiny-b', 'chat');
    const sampled: SamplingParams = { ...greedy, temperature: 0.8, topK: 40, seed: 5 };
    const cases: SubmitRequest[] = [
      { tokens: chat, sampling: greedy, maxTokens: 40, ignoreEos: true, logprobs: 2 },
      { tokens: prompt('tiny-b', 'long'), sampling: sampled, maxTokens: 40, ignoreEos: true, logprobs: 1 },
      { tokens: chat, sampling: { ...greedy, repetitionPenalty: 1.3 }, maxTokens: 30, ignoreEos: true },
      ...[1, 2, 5].map((maxTokens): SubmitRequest => ({ tokens: chat, sampling: greedy, maxTokens, ignoreEos: true })),
    ];
    let proposed = 0;
    let accepted = 0;
    for (const req of cases) {
      const r = await both(off, on, req);
      expect(output(r.on)).toEqual(output(r.off));
      proposed += r.draftTokens;
      accepted += r.accepted;
    }
    expect(proposed).toBeGreaterThan(50);
    expect(accepted).toBeLessThan(proposed / 2);
  });

  it('concurrent requests, a constraint, prefix-cache hits and preemption leave the draft in step with the model', async () => {
    // Six blocks of 16 tokens: two sequences growing to 60 tokens cannot both stay, so one is
    // preempted and recomputed; a prompt repeated later is read back from the prefix cache. The
    // draft is the model itself, so a draft cache that missed any of those positions would show
    // as refused proposals.
    const tight: LoadOptions = { maxBatchSize: 2, maxTokensInPagedKvCache: 6 * 16 };
    const off = await open('tiny-b', tight);
    const long = prompt('tiny-b', 'long');
    const reqs: SubmitRequest[] = [0, 30].map((at) => ({ tokens: long.slice(at, at + 10), sampling: greedy, maxTokens: 50, ignoreEos: true }));
    const plain = await Promise.all(reqs.map((r) => run(off, r)));
    const { engine: on, result: together } = await untilPreempted(
      () => open('tiny-b', { ...tight, ...drafted('tiny-b', 4) }),
      (on) => Promise.all(reqs.map((r) => run(on, r))),
    );
    expect(together.map(output)).toEqual(plain.map(output));
    const s = on.stats().specDecode!;
    expect(s.acceptedTokens).toBe(s.draftTokens);
    // With room to keep it, a finished sequence's blocks serve a later prompt that extends it:
    // the draft must find its own cache there too.
    const roomy = await open('tiny-b', drafted('tiny-b', 4));
    await run(roomy, reqs[0]);
    const again: SubmitRequest = { tokens: [...reqs[0].tokens, ...plain[0].tokens.slice(0, 30)], sampling: greedy, maxTokens: 12, ignoreEos: true };
    const before = roomy.stats().specDecode!;
    const cached = await run(roomy, again);
    expect(cached.first.cachedPromptTokens).toBeGreaterThanOrEqual(32);
    expect(output(cached)).toEqual(output(await run(off, again)));
    const after = roomy.stats().specDecode!;
    expect(after.draftTokens - before.draftTokens).toBeGreaterThan(0);
    expect(after.acceptedTokens - before.acceptedTokens).toBe(after.draftTokens - before.draftTokens);
    const allowed = [...new Set(long.slice(0, 40))].slice(0, 5);
    const constrained = (e: Engine): SubmitRequest => ({ tokens: long.slice(0, 12), sampling: greedy, maxTokens: 20, ignoreEos: true, constraint: e.allowedTokensConstraint(allowed) });
    expect(output(await run(roomy, constrained(roomy)))).toEqual(output(await run(off, constrained(off))));
  });

  it('on the device-sampling path (the GPU sampler\'s CPU twin) the drafted rows are drawn there, with the same outputs', async () => {
    const host = await open('tiny-b', drafted('tiny-b', 3));
    const twin = await open('tiny-b', { ...drafted('tiny-b', 3), deviceSamplerTwin: true });
    const sampled: SamplingParams = { ...greedy, temperature: 0.7, topK: 30, seed: 9 };
    const reqs: SubmitRequest[] = ['chat', 'long'].flatMap((which) => [
      { tokens: prompt('tiny-b', which), sampling: greedy, maxTokens: 30, ignoreEos: true, logprobs: 1 },
      { tokens: prompt('tiny-b', which), sampling: sampled, maxTokens: 30, ignoreEos: true },
    ]);
    const a = await Promise.all(reqs.map((r) => run(host, r)));
    const b = await Promise.all(reqs.map((r) => run(twin, r)));
    // Greedy rows are the model's argmax either way (the twin's logprobs reduce in the GPU's order:
    // the last bit may differ); seeded rows follow each sampler's own stream.
    for (let i = 0; i < reqs.length; i += 2) {
      expect(b[i].tokens).toEqual(a[i].tokens);
      b[i].logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(a[i].logprobs[j], 5));
    }
    expect(twin.runtimeStats().deviceDrawnTokens).toBeGreaterThan(0);
    const s = twin.stats().specDecode!;
    expect(s.draftTokens).toBeGreaterThan(0);
    expect(s.acceptedTokens).toBeGreaterThan(0);
    // The draft's own greedy proposals are drawn as a GPU draws them (no logits to the host): a
    // self-draft's are then all taken, as from host logits.
    expect(twin.nativeInfo.speculative).toMatchObject({ draftSamplesOnDevice: true });
    expect(host.nativeInfo.speculative).toMatchObject({ draftSamplesOnDevice: false });
    const before = twin.stats().specDecode!;
    const alone = await run(twin, reqs[0]);
    expect(alone.tokens).toEqual(a[0].tokens);
    const after = twin.stats().specDecode!;
    expect(after.draftTokens - before.draftTokens).toBeGreaterThanOrEqual(20);
    expect(after.acceptedTokens - before.acceptedTokens).toBe(after.draftTokens - before.draftTokens);
  });

  it("the draft's proposals follow the request's penalties, so a self-draft's are still all taken", async () => {
    // Under a presence penalty of -100 the model repeats what it said; under +1.5 / frequency
    // 0.5 / repetition 1.3 it avoids it. A draft proposing without them is turned down wherever
    // they change the model's choice; following them (over the output so far and its own earlier
    // proposals), a self-draft agrees every time: on the host's logits and drawn as a GPU draws
    // (the GPU sampler's CPU twin).
    const off = await open('tiny-b');
    const host = await open('tiny-b', drafted('tiny-b', 4));
    const twin = await open('tiny-b', { ...drafted('tiny-b', 4), deviceSamplerTwin: true });
    const penalties: Partial<SamplingParams>[] = [{ presencePenalty: -100 }, { presencePenalty: 1.5, frequencyPenalty: 0.5, repetitionPenalty: 1.3 }];
    for (const penalty of penalties) {
      const req: SubmitRequest = { tokens: prompt('tiny-b', 'chat'), sampling: { ...greedy, ...penalty }, maxTokens: 41, ignoreEos: true };
      const plain = await run(off, req);
      for (const on of [host, twin]) {
        const r = await both(off, on, req);
        expect(output(r.on)).toEqual(output(plain));
        expect(r.draftTokens, JSON.stringify(penalty)).toBeGreaterThanOrEqual(20);
        expect(r.accepted, JSON.stringify(penalty)).toBe(r.draftTokens);
      }
    }
  });

  it("the draft's proposals follow the request's logit bias and bad tokens, so a self-draft's are still all taken", async () => {
    // The tokens the model says most to this prompt banned (-100 and bad_words) and another pushed
    // up: the model's draws go elsewhere, and a draft that ignored the edits would propose them.
    const off = await open('tiny-b');
    const host = await open('tiny-b', drafted('tiny-b', 4));
    const twin = await open('tiny-b', { ...drafted('tiny-b', 4), deviceSamplerTwin: true });
    const base: SubmitRequest = { tokens: prompt('tiny-b', 'chat'), sampling: greedy, maxTokens: 41, ignoreEos: true };
    const said = (await run(off, base)).tokens;
    const [first, second, third] = byCount(said);
    const req: SubmitRequest = { ...base, logitBias: [[first, -100], [third, 3]], badTokenIds: [second] };
    const plain = await run(off, req);
    expect(plain.tokens).not.toContain(first);
    expect(plain.tokens).not.toContain(second);
    for (const on of [host, twin]) {
      const r = await both(off, on, req);
      expect(output(r.on)).toEqual(output(plain));
      expect(r.draftTokens).toBeGreaterThanOrEqual(20);
      expect(r.accepted).toBe(r.draftTokens);
    }
  });

  it("the draft's proposals follow min_tokens' held-back stops, bad sequences, the thinking budget and a grammar, so a self-draft's are still all taken", async () => {
    // Each rule moves with the output: a stop token banned until min_tokens are out, a bad
    // sequence's end banned right after the rest of it (in the output or the proposals before),
    // the think block closed once its budget is spent, a JSON schema's grammar (the draft walks a
    // copy of the sequence's state through its proposals). Each changes the model's greedy path
    // here, so a draft that ignored it would propose the model's unruled choice and be turned down.
    const OPEN = 151667;
    const CLOSE = 151668;
    const off = await open('tiny-b');
    const host = await open('tiny-b', drafted('tiny-b', 4));
    const twin = await open('tiny-b', { ...drafted('tiny-b', 4), deviceSamplerTwin: true });
    const base: SubmitRequest = { tokens: prompt('tiny-b', 'chat'), sampling: greedy, maxTokens: 41, ignoreEos: true };
    const said = (await run(off, base)).tokens;
    const stop = byCount(said)[0];
    const pair = byCount(said.slice(1).map((t, i) => `${said[i]},${t}`))[0].split(',').map(Number);
    const triple = said.slice(20, 23);
    const inThink = { ...base, tokens: [...base.tokens, OPEN] };
    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 8 }, count: { type: 'integer' } }, required: ['name', 'count'] };
    const cases: [string, SubmitRequest, (tokens: number[]) => void][] = [
      ['min_tokens', { ...base, ignoreEos: false, stopTokenIds: [stop], minTokens: 41 }, (t) => expect(t).not.toContain(stop)],
      ['bad sequences', { ...base, badSequences: [pair, triple] }, (t) => expect(t.join()).not.toContain(pair.join())],
      ['thinking budget', { ...inThink, thinkBudget: { maxTokens: 9, openToken: OPEN, closeToken: CLOSE } }, (t) => expect(t[9]).toBe(CLOSE)],
      ['grammar', { ...base, constraint: schemaGrammar(schema).constraint() }, (t) => expect(JSON.parse(tokenizer.decode(t).replace(/<\|im_end\|>/g, ''))).toHaveProperty('count')],
    ];
    for (const [rule, req, holds] of cases) {
      const plain = await run(off, req);
      holds(plain.tokens);
      // The rule changed the model's path: without it the output would differ.
      const { badSequences: _b, minTokens: _m, thinkBudget: _t, constraint: _c, ...unruled } = req;
      expect(plain.tokens, rule).not.toEqual((await run(off, { ...unruled, ignoreEos: true })).tokens);
      for (const on of [host, twin]) {
        const r = await both(off, on, req);
        expect(output(r.on), rule).toEqual(output(plain));
        // One prefill step, then steps of 1 + 4 tokens; where the answer ends before max_tokens
        // (the grammar's, once complete), the last step's proposals past its end go unused.
        const unused = plain.tokens.length < 41 ? 4 : 0;
        expect(r.draftTokens, rule).toBeGreaterThanOrEqual(unused ? 20 : 32);
        expect(r.accepted, rule).toBeGreaterThanOrEqual(r.draftTokens - unused);
      }
    }
  });

  it("the draft's proposals count as forward time, not host work between forward passes", async () => {
    // A self-draft's four one-row proposal passes a step are about two thirds of the step's wall
    // time (measured 0.67 of it when they counted as host work); the engine loop's host share
    // (grpst_engine_*_seconds_total, `grpst bench`'s "engine loop" line) must not include them.
    const on = await open('tiny-b', drafted('tiny-b', 4));
    const before = on.stats();
    await run(on, { tokens: prompt('tiny-b', 'chat'), sampling: greedy, maxTokens: 200, ignoreEos: true });
    const after = on.stats();
    const step = after.stepSeconds - before.stepSeconds;
    const forward = after.forwardSeconds - before.forwardSeconds;
    expect(after.specDecode!.acceptedTokens - before.specDecode!.acceptedTokens).toBeGreaterThan(100);
    expect(forward).toBeLessThanOrEqual(step);
    expect((step - forward) / step).toBeLessThan(0.4);
  });

  it('refuses a draft it cannot use, naming it and the fix', async () => {
    await expect(open('tiny-a', { speculative: { method: 'draft_model', numSpeculativeTokens: 2, model: '/nonexistent/draft' } })).rejects.toThrow(
      /the draft model \/nonexistent\/draft does not exist/,
    );
    // A draft that handles fewer positions than the engine runs (its config says 512).
    const short = mkdtempSync(join(tmpdir(), 'grpst-draft-'));
    cpSync(checkpoint('tiny-a'), short, { recursive: true });
    const config = JSON.parse(readFileSync(join(short, 'config.json'), 'utf8'));
    writeFileSync(join(short, 'config.json'), JSON.stringify({ ...config, max_position_embeddings: 512 }));
    try {
      await expect(open('tiny-b', { speculative: { method: 'draft_model', numSpeculativeTokens: 2, model: short } })).rejects.toThrow(
        /the draft model handles 512 positions but the engine runs up to 1024 \(max_seq_len\); lower max_seq_len or use a draft with a longer context/,
      );
    } finally {
      rmSync(short, { recursive: true, force: true });
    }
  });
});
