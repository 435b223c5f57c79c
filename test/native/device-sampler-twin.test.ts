// The device sampler's path through the scheduler, on the CPU: an engine loaded with
// deviceSamplerTwin draws every row a GPU would draw on its device with that sampler's CPU twin
// (the rules the CUDA kernel is held to). Bad words, bad sequences, min_tokens' held-back stop
// tokens, logit bias and grammar masks now travel with the row instead of keeping it on the
// host, so greedy outputs must equal the host sampler's exactly, drafted rows included, and a row
// with nothing left to draw must fail its request with the host's message.
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { deviceRuleChecks } from '../gpu/device-rule-checks.js';
import { greedy, run, type RunResult } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
async function open(opts: LoadOptions = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-a'), { device: 'cpu', threads: 2, maxSeqLen: 512, maxBatchSize: 16, ...opts });
  engines.push(e);
  return e;
}

const prompts = refs('tiny-a').prompts.map((p) => p.prompt_ids);
const output = (r: RunResult) => ({ tokens: r.tokens, finish: r.finish, error: r.last.error });
// Tokens drawn for these results: the emitted ones and each stop token (drawn, not emitted).
const drawn = (rs: RunResult[]) => rs.reduce((n, r) => n + r.tokens.length + (r.finish === 'stop' ? 1 : 0), 0);

describe('device sampler twin (CPU)', () => {
  it('draws what the host sampler draws under every rule that used to keep a row on the host', async () => {
    const host = await open();
    const twin = await open({ deviceSamplerTwin: true });
    // Each rule is aimed at what plain greedy decoding emits, so that it changes the output.
    const plain = await Promise.all(prompts.map((tokens) => run(host, { tokens, sampling: greedy, maxTokens: 20, ignoreEos: true })));
    const kinds = (i: number, allowed?: unknown): Omit<SubmitRequest, 'tokens' | 'maxTokens'>[] => {
      const out = plain[i]!.tokens;
      return [
        { sampling: greedy, badTokenIds: [out[0]!, out[3]!] },
        { sampling: greedy, logitBias: [[out[1]!, -100], [7, 6.5], [9, -2]] },
        { sampling: greedy, badSequences: [out.slice(0, 2), [out[4]!, out[5]!, out[6]!]] },
        { sampling: greedy, stopTokenIds: [out[2]!], minTokens: 6, ignoreEos: false },
        { sampling: greedy, constraint: allowed, logprobs: 3 },
        { sampling: { ...greedy, repetitionPenalty: 1.3, presencePenalty: 0.5 }, logitBias: [[out[2]!, 2]] },
      ];
    };
    const batch = (e: Engine): SubmitRequest[] => {
      const allowed = e.allowedTokensConstraint!(Array.from({ length: 300 }, (_, k) => 50 + 7 * k));
      return prompts.flatMap((tokens, i) => kinds(i, allowed).map((k) => ({ ignoreEos: true, ...k, maxTokens: 20, tokens })));
    };
    const a = await Promise.all(batch(host).map((r) => run(host, r)));
    const before = twin.runtimeStats().deviceDrawnTokens;
    const b = await Promise.all(batch(twin).map((r) => run(twin, r)));
    expect(b.map(output)).toEqual(a.map(output));
    for (let i = 0; i < a.length; i++) {
      expect(b[i]!.logprobs.length).toBe(a[i]!.logprobs.length);
      b[i]!.logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(a[i]!.logprobs[j]!, 4));
    }
    // Every token was drawn by the twin; none by the host engine's device path.
    expect(twin.runtimeStats().deviceDrawnTokens - before).toBe(drawn(b));
    expect(host.runtimeStats().deviceDrawnTokens).toBe(0);
    // The rules did change the outputs (each row differs from plain greedy somewhere).
    const per = kinds(0).length;
    for (let i = 0; i < prompts.length; i++)
      for (let k = 0; k < 4; k++) expect(a[i * per + k]!.tokens).not.toEqual(plain[i]!.tokens);
    for (let i = 0; i < prompts.length; i++) {
      const out = plain[i]!.tokens;
      expect(b[i * per]!.tokens).not.toContain(out[0]);
      expect(b[i * per + 3]!.tokens.slice(0, 6)).not.toContain(out[2]);
      for (const t of b[i * per + 4]!.tokens) expect((t - 50) % 7 === 0 && t >= 50 && t < 50 + 7 * 300).toBe(true);
    }
  });

  it('draws drafted rows with their own bans (speculative decoding)', async () => {
    const spec: LoadOptions = { speculative: { method: 'ngram', numSpeculativeTokens: 3 } };
    const host = await open(spec);
    const twin = await open({ ...spec, deviceSamplerTwin: true });
    // The tiny model repeats one token t; a drafted step's rows differ in what they ban: past
    // min_tokens t (biased up) is allowed again and stops the request there, and after a drafted t
    // the sequence [t, t] bans t (so the output alternates).
    const reqs = await Promise.all(
      prompts.map(async (tokens) => {
        const t = (await run(host, { tokens, sampling: greedy, maxTokens: 4, ignoreEos: true })).tokens[0]!;
        return [
          { tokens, sampling: greedy, maxTokens: 40, stopTokenIds: [t], minTokens: 11, logitBias: [[t, 30]] },
          { tokens, sampling: greedy, maxTokens: 40, ignoreEos: true, badSequences: [[t, t]], logitBias: [[t, 30]] },
        ] as SubmitRequest[];
      }),
    );
    const before = { drafts: twin.runtimeStats().specDrafts, drawn: twin.runtimeStats().deviceDrawnTokens };
    const a = await Promise.all(reqs.flat().map((r) => run(host, r)));
    const b = await Promise.all(reqs.flat().map((r) => run(twin, r)));
    expect(b.map(output)).toEqual(a.map(output));
    for (let i = 0; i < prompts.length; i++) {
      expect(b[2 * i]!.tokens).toHaveLength(11);
      expect(b[2 * i]!.finish).toBe('stop');
      const t = reqs[i]![1]!.badSequences![0]![0]!;
      const alt = b[2 * i + 1]!.tokens;
      expect(alt.filter((x) => x === t).length).toBeGreaterThan(5);
      for (let k = 1; k < alt.length; k++) expect(alt[k - 1] === t && alt[k] === t).toBe(false);
    }
    expect(twin.runtimeStats().specDrafts - before.drafts).toBeGreaterThan(10);
    expect(twin.runtimeStats().deviceDrawnTokens - before.drawn).toBe(drawn(b));
  });

  it('fails a request with nothing left to draw as the host does, and leaves the batch running', async () => {
    const host = await open();
    const twin = await open({ deviceSamplerTwin: true });
    const stuck = (e: Engine): SubmitRequest => ({
      tokens: prompts[0]!,
      sampling: greedy,
      maxTokens: 10,
      stopTokenIds: [5],
      minTokens: 4,
      constraint: e.allowedTokensConstraint!([5]),
    });
    for (const e of [host, twin]) {
      const [bad, good] = await Promise.all([run(e, stuck(e)), run(e, { tokens: prompts[1]!, sampling: greedy, maxTokens: 8, ignoreEos: true })]);
      expect(bad.finish).toBe('error');
      expect(bad.last.error).toMatch(/no token may follow: the constraint allows only a stop token, which min_tokens holds back for 4 more tokens/);
      expect(good.tokens).toHaveLength(8);
    }
  });

  it('repeats a seeded sampled draw exactly, and keeps it inside the mask', async () => {
    const twin = await open({ deviceSamplerTwin: true });
    const allowed = twin.allowedTokensConstraint!(Array.from({ length: 400 }, (_, k) => 3 * k));
    const req = (seed: number): SubmitRequest => ({
      tokens: prompts[0]!,
      sampling: { ...defaultSampling, temperature: 1.1, topK: 30, topP: 0.95, seed },
      maxTokens: 24,
      ignoreEos: true,
      constraint: allowed,
      logitBias: [[6, 3]],
    });
    const [x, y, z] = await Promise.all([run(twin, req(3)), run(twin, req(3)), run(twin, req(4))]);
    expect(y.tokens).toEqual(x.tokens);
    expect(z.tokens).not.toEqual(x.tokens);
    for (const t of [...x.tokens, ...z.tokens]) expect(t % 3 === 0 && t < 1200).toBe(true);
  });

  it("passes the GPU machine's rule checks (test/gpu/device-rule-checks.ts) on the twin", async () => {
    const failed = (await deviceRuleChecks(() => {}, { device: 'cpu', threads: 2, deviceSamplerTwin: true })).filter((c) => !c.pass);
    expect(failed).toEqual([]);
  });

  it('reads prompt logprob rows on the device: logprobs, ranks and top entries as the host gives them', async () => {
    const host = await open({ maxSeqLen: 1024 });
    const twin = await open({ deviceSamplerTwin: true, maxSeqLen: 1024, maxNumTokens: 64 });
    // Long prompts in chunks (maxNumTokens 64), top entries 0, 4 and 20 (the device's most), and
    // 21 (more than it lists: those rows come back to the host).
    const reqs = prompts.flatMap((tokens) =>
      [0, 4, 20, 21].map((n): SubmitRequest => ({ tokens: [...tokens, ...tokens], sampling: greedy, maxTokens: 2, promptLogprobs: true, promptTopLogprobs: n, logprobs: 1, ignoreEos: true })),
    );
    const a = await Promise.all(reqs.map((r) => run(host, r)));
    const before = twin.runtimeStats().devicePromptRows;
    const b = await Promise.all(reqs.map((r) => run(twin, r)));
    for (let i = 0; i < a.length; i++) {
      const pa = a[i]!.events[0]!.promptLogprobs!, pb = b[i]!.events[0]!.promptLogprobs!;
      expect(pb.length).toBe(pa.length);
      for (let j = 1; j < pa.length; j++) {
        expect(pb[j]!.rank).toBe(pa[j]!.rank);
        expect(pb[j]!.logprob).toBeCloseTo(pa[j]!.logprob, 5);
        expect(pb[j]!.top.map((e) => e.token)).toEqual(pa[j]!.top.map((e) => e.token));
        pb[j]!.top.forEach((e, k) => expect(e.logprob).toBeCloseTo(pa[j]!.top[k]!.logprob, 5));
      }
      expect(b[i]!.tokens).toEqual(a[i]!.tokens);
    }
    // Every prompt row of the requests with at most 20 top entries was read by the twin, none of the others.
    const rows = reqs.filter((r) => r.promptTopLogprobs! <= 20).reduce((n, r) => n + r.tokens.length - 1, 0);
    expect(twin.runtimeStats().devicePromptRows - before).toBe(rows);
  });
});
