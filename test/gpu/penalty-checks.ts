// Penalties and top logprobs drawn on the GPU: the runner sends each device row its history
// (distinct prompt tokens, output counts, and a drafted row's earlier drafts), the sampling
// kernel penalizes from it, and the top-logprobs kernel lists a row's best entries. A request
// asking for 21 top logprobs (more than the device lists, so its rows stay on the host) is
// sampled by the host sampler from the same logits (prefix caching off, run alone: the same steps compute
// the same rows), so its tokens and top lists must equal the device's exactly, logprobs to
// float rounding; in a batch the rows round differently and agree until a near-tie of the
// penalized scores.
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SamplingParams, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, type CheckOutcome } from './parity-checks.js';

const TOKENS = 40;
/** Keeps a request's rows on the host sampler without changing its tokens (the device lists at most 20). */
export const HOST: Partial<SubmitRequest> = { logprobs: 21 };
const TOP = 20;
const greedy = { ...defaultSampling, temperature: 0 };
const settings: [string, SamplingParams][] = [
  ['presence 1.5 frequency 0.7', { ...greedy, presencePenalty: 1.5, frequencyPenalty: 0.7 }],
  ['repetition 1.3', { ...greedy, repetitionPenalty: 1.3 }],
  ['all three, presence -1', { ...greedy, repetitionPenalty: 1.2, presencePenalty: -1, frequencyPenalty: 0.3 }],
  // top_k 1 through the sampled path: the penalized logits feed the thresholds.
  ['t 0.7 top_k 1 all three', { ...defaultSampling, temperature: 0.7, topK: 1, repetitionPenalty: 1.1, presencePenalty: 1, frequencyPenalty: 0.5 }],
];

interface Steps {
  tokens: number[];
  tops: { token: number; logprob: number }[][];
}

async function steps(engine: Engine, req: SubmitRequest): Promise<Steps> {
  const tokens: number[] = [];
  const tops: Steps['tops'] = [];
  for await (const ev of engine.submit(req)) {
    tokens.push(...ev.tokens);
    tops.push(...(ev.topLogprobs ?? []));
  }
  return { tokens, tops };
}

/**
 * Margins of the presence / frequency-penalized scores (logprob - frequency x count - presence)
 * at each step, from the top entries: a token outside them scores at most the last one's
 * logprob plus what a negative presence penalty adds.
 */
function penalizedMargins(s: Steps, p: SamplingParams): number[] {
  const counts = new Map<number, number>();
  return s.tops.map((top, j) => {
    const score = (t: { token: number; logprob: number }) => {
      const c = counts.get(t.token) ?? 0;
      return t.logprob - (c > 0 ? p.frequencyPenalty * c + p.presencePenalty : 0);
    };
    const sorted = top.map(score).sort((a, b) => b - a);
    const outside = top[top.length - 1].logprob + Math.max(0, -p.presencePenalty);
    counts.set(s.tokens[j], (counts.get(s.tokens[j]) ?? 0) + 1);
    return Math.min(sorted[0] - sorted[1], sorted[0] - outside);
  });
}

export async function penaltyChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const opts: LoadOptions = { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 16, enablePrefixCaching: false };
    let gpu: Engine | undefined;
    let drafted: Engine | undefined;
    try {
      gpu = await loadEngine(checkpoint(name), opts);
      const prompts = refs(name).prompts.map((p) => p.prompt_ids);
      const req = (tokens: number[], sampling: SamplingParams, logprobs?: number, over: Partial<SubmitRequest> = {}): SubmitRequest => ({
        tokens, sampling: { ...sampling, seed: 11 }, maxTokens: TOKENS, ignoreEos: true, logprobs, ...over,
      });
      let changed = 0;
      for (const [label, sampling] of settings) {
        let same = 0;
        for (const tokens of prompts) {
          const device = await run(gpu, req(tokens, sampling));
          const host = await run(gpu, req(tokens, sampling, undefined, HOST));
          const plain = await run(gpu, req(tokens, greedy));
          if (equalPrefix(device.tokens, host.tokens, TOKENS) && device.tokens.length === TOKENS) same++;
          if (!equalPrefix(device.tokens, plain.tokens, TOKENS)) changed++;
        }
        add(`${name} ${label}: device draws = host sampler`, same === prompts.length, `${same} / ${prompts.length} prompts, ${TOKENS} tokens each`);
      }
      // Without this the check above could pass with penalties ignored on both sides.
      add(`${name} penalties change greedy outputs`, changed > 0, `${changed} of ${settings.length * prompts.length} runs differ from plain greedy`);

      // A batch mixing settings (and unpenalized rows) agrees with each request alone until a
      // near-tie of the penalized scores (presence / frequency only: logprobs cannot show what the
      // repetition penalty, which scales logits, makes of them).
      const encourage = { ...greedy, presencePenalty: -1, frequencyPenalty: 0.3 };
      const mixed = prompts.flatMap((tokens) => [settings[0][1], encourage, greedy].map((s) => ({ tokens, s })));
      const together = await Promise.all(mixed.map(({ tokens, s }) => run(gpu!, req(tokens, s))));
      let agreeing = 0;
      const compared: number[] = [];
      for (const [i, { tokens, s }] of mixed.entries()) {
        const alone = await steps(gpu, req(tokens, s, TOP));
        const n = nearTie(penalizedMargins(alone, s));
        compared.push(n);
        if (equalPrefix(together[i].tokens, alone.tokens, n)) agreeing++;
      }
      add(`${name} penalized rows in a batch = alone`, agreeing === mixed.length, `${agreeing} / ${mixed.length}, tokens compared ${compared.join(',')}`);

      // Top logprobs (5, and the most, 20, beside a penalty) drawn on the GPU: the host sampler's lists
      // (greedy: the device and the host draw seeded tokens from different streams).
      for (const [n, sampling] of [[5, greedy], [20, { ...greedy, presencePenalty: 0.5 }]] as [number, SamplingParams][]) {
        let sameLists = 0;
        let worst = 0;
        for (const tokens of prompts) {
          const device = await steps(gpu, req(tokens, sampling, n));
          const host = await steps(gpu, req(tokens, sampling, n, HOST));
          // The host's lists hold 21 entries, best first: their first n are the device's.
          const listed = (x: Steps) => x.tops.map((t) => t.slice(0, n).map((e) => e.token).join(',')).join(';');
          if (equalPrefix(device.tokens, host.tokens, TOKENS) && listed(device) === listed(host) && device.tops.every((t) => t.length === n)) sameLists++;
          for (const [j, t] of device.tops.entries())
            for (const [k, e] of t.entries()) worst = Math.max(worst, Math.abs(e.logprob - (host.tops[j]?.[k]?.logprob ?? Infinity)));
        }
        add(`${name} top ${n} logprobs on the GPU = host sampler`, sameLists === prompts.length && worst < 1e-3,
          `${sameLists} / ${prompts.length} prompts with the same tokens and lists; worst logprob gap ${worst.toExponential(2)} (tol 1e-3)`);
      }

      // Drafted steps: each drafted row is penalized with the drafts before it counted.
      drafted = await loadEngine(checkpoint(name), { ...opts, speculative: { method: 'ngram', numSpeculativeTokens: 4 } });
      const loop = { ...greedy, presencePenalty: -5, frequencyPenalty: 0.1, repetitionPenalty: 1.05 };
      let sameDrafted = 0;
      for (const tokens of prompts) {
        const device = await run(drafted, req(tokens, loop));
        const host = await run(drafted, req(tokens, loop, undefined, HOST));
        if (equalPrefix(device.tokens, host.tokens, TOKENS)) sameDrafted++;
      }
      const spec = drafted.stats().specDecode!;
      add(`${name} drafted penalized rows: device draws = host sampler`, sameDrafted === prompts.length && spec.acceptedTokens > 0,
        `${sameDrafted} / ${prompts.length}; drafts ${spec.acceptedTokens} / ${spec.draftTokens} taken`);
    } catch (err) {
      add(`${name} penalties on the GPU ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await gpu?.close();
      await drafted?.close();
    }
  }
  return out;
}
