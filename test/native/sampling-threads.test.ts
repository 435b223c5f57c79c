// The host samplers' threads (LoadOptions.samplingThreads): a step's host rows (draws with top
// logprobs, penalties, bad words, logit bias, an allowed-token constraint, seeded sampling;
// prompt logprobs) are read on several threads at once, one sequence per task. Every request in a
// concurrent batch must get exactly what it gets on one thread, whatever the interleaving.
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { greedy, run, type RunResult } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
async function open(opts: LoadOptions = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-a'), { device: 'cpu', maxSeqLen: 512, maxBatchSize: 16, ...opts });
  engines.push(e);
  return e;
}

function output(r: RunResult) {
  return {
    tokens: r.tokens,
    logprobs: r.logprobs,
    finish: r.finish,
    error: r.last.error,
    tops: r.events.flatMap((e) => e.topLogprobs ?? []),
    prompt: r.events[0]?.promptLogprobs,
  };
}

describe('host sampling threads', () => {
  it('defaults to the CPU backend threads and reports what it runs', async () => {
    const auto = await open({ threads: 2 });
    expect(auto.info.samplingThreads).toBe(auto.info.threads);
    expect((await open({ threads: 1, samplingThreads: 3 })).info.samplingThreads).toBe(3);
    await expect(open({ samplingThreads: -1 })).rejects.toThrow(/samplingThreads must be between 1 and 256/);
  });

  it('gives every request of a concurrent batch what one thread gives it', async () => {
    const one = await open({ samplingThreads: 1 });
    const many = await open({ samplingThreads: 4 });
    const prompts = refs('tiny-a').prompts.map((p) => p.prompt_ids);
    const sampled = { ...defaultSampling, temperature: 0.9, topK: 40, topP: 0.9, seed: 5 };
    const kinds: Omit<SubmitRequest, 'tokens'>[] = [
      { sampling: greedy, maxTokens: 24, logprobs: 3 },
      { sampling: { ...sampled, presencePenalty: 0.8, repetitionPenalty: 1.2 }, maxTokens: 24, logprobs: 0 },
      { sampling: sampled, maxTokens: 24, promptLogprobs: true, logprobs: 2 },
      { sampling: greedy, maxTokens: 24, badTokenIds: [11, 12, 13], logitBias: [[42, 5], [43, -5]] },
      { sampling: { ...sampled, seed: 9, frequencyPenalty: 0.5 }, maxTokens: 24, minTokens: 8 },
    ];
    const batch = (e: Engine): SubmitRequest[] => {
      const allowed = e.allowedTokensConstraint!(Array.from({ length: 200 }, (_, i) => 100 + 3 * i));
      return [
        ...prompts.flatMap((tokens) => kinds.map((k) => ({ ...k, tokens, ignoreEos: true }))),
        ...prompts.map((tokens) => ({ tokens, sampling: sampled, maxTokens: 16, constraint: allowed, logprobs: 1 })),
      ];
    };
    const a = await Promise.all(batch(one).map((r) => run(one, r)));
    const b = await Promise.all(batch(many).map((r) => run(many, r)));
    expect(b.map(output)).toEqual(a.map(output));
    // The batch read prompt logprobs, top logprobs and constrained draws on the host.
    expect(a.some((r) => (r.events[0]?.promptLogprobs?.length ?? 0) > 1)).toBe(true);
    expect(a.every((r) => r.tokens.length > 0 && !r.last.error)).toBe(true);
  });
});
