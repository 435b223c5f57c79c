// Sampling in the runtime: seeds, truncation (top_k, top_p, min_p), penalties, masks, stop
// tokens, lengths, and logprobs taken from the raw model distribution. Truncation rules are
// checked against the raw distribution the engine itself reports (temperature 1, no penalties,
// so raw = sampled distribution).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type SamplingParams } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { greedy, run } from './helpers.js';

let engine: Engine;
const prompt = refs('tiny-b').prompts[1].prompt_ids;
const sampled = (over: Partial<SamplingParams>): SamplingParams => ({ ...defaultSampling, ...over });

beforeAll(async () => {
  engine = await loadEngine(checkpoint('tiny-b'), { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 16 });
});
afterAll(async () => {
  await engine?.close();
});

describe('seeded sampling', () => {
  it('repeats for the same seed, alone or among other requests', async () => {
    const req = { tokens: prompt, sampling: sampled({ seed: 1234 }), maxTokens: 24, logprobs: 0 };
    const a = await run(engine, req);
    const noise = Array.from({ length: 6 }, (_, i) => run(engine, { ...req, sampling: sampled({ seed: i }) }));
    const [b] = await Promise.all([run(engine, req), ...noise]);
    expect(a.tokens).toHaveLength(24);
    expect(b.tokens).toEqual(a.tokens);
    expect(b.logprobs).toEqual(a.logprobs);
  });

  it('differs between seeds', async () => {
    const outs = await Promise.all(
      [1, 2, 3, 4].map((seed) => run(engine, { tokens: prompt, sampling: sampled({ seed }), maxTokens: 24 })),
    );
    expect(new Set(outs.map((o) => o.tokens.join(','))).size).toBe(4);
  });

  it('without a seed, two runs differ', async () => {
    const a = await run(engine, { tokens: prompt, sampling: sampled({}), maxTokens: 24 });
    const b = await run(engine, { tokens: prompt, sampling: sampled({}), maxTokens: 24 });
    expect(a.tokens).not.toEqual(b.tokens);
  });
});

describe('temperature', () => {
  it('a temperature too small for float division (1e-40, 1e-6) samples greedily, as 0 does', async () => {
    const base = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 16 });
    for (const temperature of [1e-40, 1e-6]) {
      const r = await run(engine, { tokens: prompt, sampling: sampled({ temperature, seed: 3 }), maxTokens: 16 });
      expect(r.tokens, String(temperature)).toEqual(base.tokens);
    }
  });
});

describe('logprobs', () => {
  it('are the raw distribution, not the tempered one', async () => {
    // Sample hot, then teacher-force the same tokens: the reported logprobs must be the model's.
    const hot = await run(engine, { tokens: prompt, sampling: sampled({ temperature: 1.7, seed: 7 }), maxTokens: 12, logprobs: 0 });
    const forced = await run(engine, {
      tokens: [...prompt, ...hot.tokens],
      sampling: greedy,
      maxTokens: 0,
      promptLogprobs: true,
    });
    expect(forced.tokens).toEqual([]);
    expect(forced.finish).toBe('length');
    const teacher = forced.first.promptLogprobs!.slice(prompt.length).map((e) => e!.logprob);
    hot.logprobs.forEach((lp, i) => expect(lp).toBeCloseTo(teacher[i], 4));
  });

  it('list alternatives best first, the greedy token on top', async () => {
    const r = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 4, logprobs: 5 });
    for (let i = 0; i < r.tokens.length; i++) {
      const top = r.events.flatMap((e) => e.topLogprobs!)[i];
      expect(top).toHaveLength(5);
      expect(top[0].token).toBe(r.tokens[i]);
      expect(top[0].logprob).toBe(r.logprobs[i]);
      for (let j = 1; j < 5; j++) expect(top[j].logprob).toBeLessThanOrEqual(top[j - 1].logprob);
    }
  });
});

describe('truncation', () => {
  async function steps(s: SamplingParams, n = 16) {
    const r = await run(engine, { tokens: prompt, sampling: s, maxTokens: n, logprobs: 20, ignoreEos: true });
    const tops = r.events.flatMap((e) => e.topLogprobs!);
    return r.tokens.map((t, i) => ({ token: t, logprob: r.logprobs[i], top: tops[i] }));
  }

  it('top_k keeps only the k best tokens', async () => {
    for (const seed of [1, 2, 3]) {
      for (const st of await steps(sampled({ topK: 2, seed }))) expect(st.top.slice(0, 2).map((t) => t.token)).toContain(st.token);
    }
  });

  it('top_k draws its k best in proportion to their tempered probabilities', async () => {
    // 1,200 first tokens of one prompt, one seed each, top_k 3 at temperature 0.5: each of the 3
    // best must come up as often as exp(logprob / 0.5) renormalised over the 3 says (4 sigma),
    // and nothing else ever (the candidates and their probabilities, as the sampler finds them
    // without an exp per vocabulary entry).
    const T = 0.5;
    const top = (await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 1, logprobs: 3 })).events[0].topLogprobs![0];
    const weights = top.map((t) => Math.exp(t.logprob / T));
    const total = weights.reduce((a, b) => a + b, 0);
    const N = 1200;
    const counts = new Map<number, number>();
    for (let at = 0; at < N; at += 100) {
      const firsts = await Promise.all(
        Array.from({ length: 100 }, (_, i) => run(engine, { tokens: prompt, sampling: sampled({ temperature: T, topK: 3, seed: 1000 + at + i }), maxTokens: 1 })),
      );
      for (const r of firsts) counts.set(r.tokens[0], (counts.get(r.tokens[0]) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(top.map((t) => t.token).sort());
    top.forEach((t, i) => {
      const p = weights[i] / total;
      expect(Math.abs(counts.get(t.token)! / N - p), `token ${t.token}`).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / N));
    });
  });

  it('top_p keeps the smallest set reaching p', async () => {
    for (const seed of [1, 2, 3]) {
      for (const st of await steps(sampled({ topP: 0.5, seed }))) {
        const rank = st.top.findIndex((t) => t.token === st.token);
        expect(rank).toBeGreaterThanOrEqual(0);
        const before = st.top.slice(0, rank).reduce((a, t) => a + Math.exp(t.logprob), 0);
        expect(before).toBeLessThan(0.5);
      }
    }
  });

  it('min_p drops tokens below min_p times the best probability', async () => {
    for (const seed of [1, 2, 3]) {
      for (const st of await steps(sampled({ minP: 0.5, seed }))) {
        expect(st.logprob).toBeGreaterThanOrEqual(st.top[0].logprob + Math.log(0.5) - 1e-5);
      }
    }
  });

  it('top_k 1 and a tiny top_p are greedy', async () => {
    const g = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 12 });
    const k1 = await run(engine, { tokens: prompt, sampling: sampled({ topK: 1, seed: 5 }), maxTokens: 12 });
    const p0 = await run(engine, { tokens: prompt, sampling: sampled({ topP: 1e-6, seed: 5 }), maxTokens: 12 });
    expect(k1.tokens).toEqual(g.tokens);
    expect(p0.tokens).toEqual(g.tokens);
  });
});

describe('penalties and masks', () => {
  it('presence and frequency penalties lower the logits of emitted tokens', async () => {
    // tiny-a's greedy output repeats one token; the penalised run must pick, at each step, the
    // best of (raw logprob - penalty) among the alternatives.
    const p = refs('tiny-a').prompts[0];
    const a = await loadEngine(checkpoint('tiny-a'), { maxSeqLen: 512, maxTokensInPagedKvCache: 1024 });
    try {
      for (const s of [{ presencePenalty: 12 }, { frequencyPenalty: 6 }]) {
        const r = await run(a, { tokens: p.prompt_ids, sampling: { ...greedy, ...s }, maxTokens: 8, logprobs: 20 });
        const tops = r.events.flatMap((e) => e.topLogprobs!);
        const counts = new Map<number, number>();
        r.tokens.forEach((tok, i) => {
          const adjusted = tops[i].map((t) => {
            const c = counts.get(t.token) ?? 0;
            const pen = c * (s.frequencyPenalty ?? 0) + (c > 0 ? (s.presencePenalty ?? 0) : 0);
            return { token: t.token, score: t.logprob - pen };
          });
          adjusted.sort((x, y) => y.score - x.score);
          expect(tok).toBe(adjusted[0].token);
          counts.set(tok, (counts.get(tok) ?? 0) + 1);
        });
        expect(new Set(r.tokens).size).toBeGreaterThan(1);
      }
      const plain = await run(a, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 8 });
      expect(new Set(plain.tokens).size).toBe(1);
    } finally {
      await a.close();
    }
  });

  it('a huge repetition penalty never repeats a prompt or output token', async () => {
    const r = await run(engine, { tokens: prompt, sampling: { ...greedy, repetitionPenalty: 1e6 }, maxTokens: 16 });
    const seen = new Set(prompt);
    for (const t of r.tokens) {
      expect(seen.has(t)).toBe(false);
      seen.add(t);
    }
  });

  it('bad token ids are never sampled', async () => {
    const g = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 6 });
    const banned = [...new Set(g.tokens)];
    const r = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 6, badTokenIds: banned });
    for (const t of r.tokens) expect(banned).not.toContain(t);
  });

  it('a bad sequence bans its last token only right after the rest of it, among the generated tokens', async () => {
    const g = (await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 8 })).tokens;
    const pair = [g[0], g[1]];
    const r = (await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 8, badSequences: [pair] })).tokens;
    expect(r[0]).toBe(g[0]); // nothing before it yet: the first token is free
    expect(r[1]).not.toBe(g[1]);
    for (let i = 1; i < r.length; i++) expect([r[i - 1], r[i]], `at ${i}`).not.toEqual(pair);
    // Three tokens: the first two come as before, the third is steered away.
    const three = (await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 8, badSequences: [g.slice(0, 3)] })).tokens;
    expect(three.slice(0, 2)).toEqual(g.slice(0, 2));
    expect(three[2]).not.toBe(g[2]);
    // The prompt does not count: a sequence that begins with its last token bans nothing.
    const seam = (await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 8, badSequences: [[prompt[prompt.length - 1], g[0]]] })).tokens;
    expect(seam).toEqual(g);
    // Sampled rows obey it too.
    const hot = (await run(engine, { tokens: prompt, sampling: sampled({ temperature: 0.7, seed: 5 }), maxTokens: 24, badSequences: [pair] })).tokens;
    for (let i = 1; i < hot.length; i++) expect([hot[i - 1], hot[i]], `at ${i}`).not.toEqual(pair);
  });

  it('refuses bad sequences that are not arrays of token ids', () => {
    const bad = (badSequences: unknown) => () => engine.submit({ tokens: prompt, sampling: greedy, maxTokens: 1, badSequences: badSequences as number[][] });
    expect(bad([[]])).toThrow(/at least one token/);
    expect(bad('12')).toThrow(/badSequences must be an array/);
    expect(bad([[1.5]])).toThrow(/must hold integers/);
  });

  it('a constraint restricts every sampled token to what it allows', async () => {
    const allowed = [11, 220, 1000, 151645, 42];
    const r = await run(engine, {
      tokens: prompt,
      sampling: sampled({ seed: 3 }),
      maxTokens: 10,
      constraint: engine.allowedTokensConstraint(allowed),
    });
    expect(r.tokens).toHaveLength(10);
    for (const t of r.tokens) expect(allowed).toContain(t);
  });

  it('rejects a constraint that is not a runtime handle', () => {
    expect(() => engine.submit({ tokens: prompt, sampling: greedy, maxTokens: 1, constraint: { grammar: 'x' } })).toThrow(/constraint/);
  });
});

describe('ending', () => {
  it('a stop token ends with "stop" and is not emitted; ignoreEos keeps going', async () => {
    const g = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 10 });
    const stopAt = 3;
    const stop = g.tokens[stopAt];
    const firstIdx = g.tokens.indexOf(stop);
    const r = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 10, stopTokenIds: [stop] });
    expect(r.finish).toBe('stop');
    expect(r.last.stopTokenId).toBe(stop);
    expect(r.tokens).toEqual(g.tokens.slice(0, firstIdx));
    const ign = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 10, stopTokenIds: [stop], ignoreEos: true });
    expect(ign.tokens).toEqual(g.tokens);
    expect(ign.finish).toBe('length');
  });

  it('with logprobs, the stop token carries its own logprob and alternatives (the ones it has when not a stop token)', async () => {
    const g = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 10, logprobs: 2 });
    const stop = g.tokens[3];
    const at = g.tokens.indexOf(stop);
    const r = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 10, stopTokenIds: [stop], logprobs: 2 });
    expect(r.last.stopTokenId).toBe(stop);
    expect(r.logprobs).toEqual(g.logprobs.slice(0, at));
    expect(r.last.stopLogprob!.logprob).toBe(g.logprobs[at]);
    const alternatives = g.events.flatMap((e) => e.topLogprobs ?? []);
    expect(r.last.stopLogprob!.top).toEqual(alternatives[at]);
    expect(r.last.stopLogprob!.top).toHaveLength(2);
    // Without logprobs there is none to report.
    expect((await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 10, stopTokenIds: [stop] })).last.stopLogprob).toBeUndefined();
  });

  it('maxTokens ends with "length"; maxTokens 0 returns only prompt logprobs', async () => {
    const r = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 5 });
    expect(r.tokens).toHaveLength(5);
    expect(r.finish).toBe('length');
    const z = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 0, promptLogprobs: true, logprobs: 2 });
    expect(z.tokens).toEqual([]);
    expect(z.first.promptLogprobs).toHaveLength(prompt.length);
    expect(z.first.promptLogprobs![1]!.top).toHaveLength(2);
  });
});
