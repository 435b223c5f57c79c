// Beam search over any GenerationEngine, as vLLM serves it (its entrypoints' beam_search): each
// step asks the engine for one greedy token of every live beam with the 2 x width likeliest
// alternatives, extends each beam by each alternative, and keeps the `width` best by cumulative
// logprob; a beam whose new token is a stop token is set aside as complete. At the end the
// complete beams and the live ones are ranked together by
//   score = cumulative logprob / (prompt + output tokens, less a final stop token) ^ length_penalty
// (vLLM's get_beam_search_score, after transformers'). Every request of a step re-sends its
// beam's whole text: the prefix cache serves all but its last partial block, so a step costs
// about a decode step per beam. Logprobs are the model's raw log-softmax (no temperature or
// penalties: a search ranks by the model's own probabilities).
import { defaultSampling, type GenerationEngine, type TokenEvent, type TopLogprob } from './types.js';

export interface BeamSearchOptions {
  prompt: readonly number[];
  /** Beams kept after each step, and beams returned (at most). */
  width: number;
  /** Tokens a beam may grow by. */
  maxTokens: number;
  /** Tokens that complete a beam (empty: none do, as with ignore_eos). */
  stopTokenIds: readonly number[];
  /** Tokens never chosen (single-token bans). */
  bannedTokenIds?: readonly number[];
  /** Beams may not complete (choose a stop token) before this many output tokens (min_tokens). */
  minTokens?: number;
  /** The exponent of the length normalisation (default 1: per-token average; 0: raw sum). */
  lengthPenalty?: number;
  /** Alternatives each returned token keeps (its top logprobs), at most 100 with the search's own. */
  alternatives?: number;
  cacheSalt?: string;
  priority?: number;
  signal?: AbortSignal;
}

export interface Beam {
  /** Output tokens, without the stop token that completed it. */
  tokens: number[];
  /** The logprob of each of those tokens, and the alternatives at its step (best first). */
  logprobs: number[];
  tops: TopLogprob[][];
  /** The stop token that completed it, with its logprob and alternatives. */
  stop?: { token: number; logprob: number; top: TopLogprob[] };
  cumulativeLogprob: number;
  score: number;
}

/** The engine's limit on alternatives per token (SubmitRequest.logprobs). */
const MAX_ALTERNATIVES = 100;

/** The best beams, best first (at most `width`). Throws the engine's error, or when the request is cancelled. */
export async function beamSearch(engine: GenerationEngine, o: BeamSearchOptions): Promise<Beam[]> {
  const penalty = o.lengthPenalty ?? 1;
  const stops = new Set(o.stopTokenIds);
  const banned = new Set(o.bannedTokenIds ?? []);
  const early = o.minTokens ?? 0;
  const wanted = Math.min(MAX_ALTERNATIVES, Math.max(2 * o.width, o.alternatives ?? 0) + banned.size + (early > 0 ? stops.size : 0));
  const keep = o.alternatives ?? 0;
  const score = (b: Omit<Beam, 'score'>) => b.cumulativeLogprob / (o.prompt.length + b.tokens.length) ** penalty;
  let live: Beam[] = [{ tokens: [], logprobs: [], tops: [], cumulativeLogprob: 0, score: 0 }];
  const complete: Beam[] = [];
  for (let step = 0; step < o.maxTokens && live.length > 0; step++) {
    const alternatives = await Promise.all(live.map((beam) => nextAlternatives(engine, [...o.prompt, ...beam.tokens], wanted, o)));
    // Candidates as (parent, token): only the `width` kept become beams of their own.
    const grown: { parent: number; token: number; logprob: number; cumulativeLogprob: number }[] = [];
    live.forEach((beam, i) => {
      const top = alternatives[i].slice(0, keep);
      for (const alt of alternatives[i]) {
        if (banned.has(alt.token) || (beam.tokens.length < early && stops.has(alt.token))) continue;
        const cumulativeLogprob = beam.cumulativeLogprob + alt.logprob;
        if (stops.has(alt.token)) {
          const done = { ...beam, stop: { token: alt.token, logprob: alt.logprob, top }, cumulativeLogprob };
          complete.push({ ...done, score: score(done) });
        } else {
          grown.push({ parent: i, token: alt.token, logprob: alt.logprob, cumulativeLogprob });
        }
      }
    });
    // Live beams compete by cumulative logprob, as vLLM's do (their lengths are equal).
    live = grown
      .sort((a, b) => b.cumulativeLogprob - a.cumulativeLogprob)
      .slice(0, o.width)
      .map((c) => {
        const beam = live[c.parent];
        const next = {
          tokens: [...beam.tokens, c.token],
          logprobs: [...beam.logprobs, c.logprob],
          tops: [...beam.tops, alternatives[c.parent].slice(0, keep)],
          cumulativeLogprob: c.cumulativeLogprob,
        };
        return { ...next, score: score(next) };
      });
  }
  return [...complete, ...live].sort((a, b) => b.score - a.score).slice(0, o.width);
}

/** The engine's `wanted` likeliest next tokens after `tokens`, best first. */
async function nextAlternatives(engine: GenerationEngine, tokens: number[], wanted: number, o: BeamSearchOptions): Promise<TopLogprob[]> {
  const events: TokenEvent[] = [];
  const stream = engine.submit({
    tokens,
    sampling: { ...defaultSampling, temperature: 0 },
    maxTokens: 1,
    ignoreEos: true,
    logprobs: wanted,
    cacheSalt: o.cacheSalt,
    priority: o.priority,
    signal: o.signal,
  });
  for await (const ev of stream) events.push(ev);
  const last = events.at(-1);
  if (last?.finishReason === 'error') throw new BeamSearchError(last.error ?? 'the engine failed', 'error');
  if (last?.finishReason === 'cancelled') throw new BeamSearchError('the request was cancelled', 'cancelled');
  const top = events.find((e) => e.topLogprobs?.length)?.topLogprobs?.[0];
  if (!top) throw new BeamSearchError('the engine returned no alternatives', 'error');
  return top;
}

export class BeamSearchError extends Error {
  constructor(
    message: string,
    readonly kind: 'error' | 'cancelled',
  ) {
    super(message);
    this.name = 'BeamSearchError';
  }
}
