// vLLM's use_beam_search on /v1/completions and /v1/chat/completions: `n` is the beam width and
// the n best beams are the choices, ranked by score (length_penalty, default 1). The search runs
// first (src/engine/beam-search.ts); each choice then replays its beam through the usual choice
// pipeline (runChoice: detokenizing, stop strings, reasoning and tool-call parsing, logprobs,
// streaming), so a beam answer is shaped exactly as a sampled one. As in vLLM, sampling settings
// (temperature, top_p, penalties, seed) do not apply: a search ranks by the model's own
// log-probabilities. What would need state the search does not carry is refused with a 400
// naming it: a grammar or schema, allowed_token_ids, logit_bias, a thinking budget,
// multi-token bad words, prompt logprobs.
import { beamSearch, BeamSearchError, type Beam } from '../../engine/beam-search.js';
import type { EngineInfo, EngineStats, GenerationEngine, SubmitRequest, TokenEvent } from '../../engine/types.js';
import { ApiError, badRequest } from '../errors.js';
import type { ChoiceJob } from '../generate.js';
import { unsupported } from './vllm-fields.js';

/** The widest beam a request may ask for: 2 x width alternatives a step stay within the engine's 100. */
export const MAX_BEAM_WIDTH = 50;

export interface BeamPlan {
  width: number;
  lengthPenalty: number;
}

interface BeamFields {
  use_beam_search?: boolean | null;
  length_penalty?: number | null;
}

/** The request's beam search (undefined when it samples), after checking its width. */
export function beamSearchAsked(body: BeamFields, n: number): BeamPlan | undefined {
  // Without a search length_penalty ranks nothing, and is accepted as vLLM accepts it.
  if (!body.use_beam_search) return undefined;
  if (n > MAX_BEAM_WIDTH) throw badRequest(`n is the beam width with use_beam_search, at most ${MAX_BEAM_WIDTH}; ask for fewer beams.`, 'n');
  return { width: n, lengthPenalty: body.length_penalty ?? 1 };
}

/**
 * The jobs' settings a search cannot honour, each refused naming its field. `job`: the first
 * job (every job of a request shares them); `promptScored`: prompt logprobs were asked.
 */
export function checkBeamJob(job: ChoiceJob, promptScored: boolean, fields: { budgetField: string }): void {
  const s = job.submit;
  const refuse = (param: string, what: string) => {
    throw unsupported(param, `${what} does not combine with use_beam_search (the search ranks whole beams by the model's log-probabilities); leave one of them out.`);
  };
  if (s.constraint !== undefined) refuse('use_beam_search', 'A grammar, a JSON schema, a forced tool call or allowed_token_ids');
  if (s.logitBias && s.logitBias.length > 0) refuse('logit_bias', 'logit_bias');
  if (s.thinkBudget !== undefined) refuse(fields.budgetField, 'A thinking token budget (thinking_token_budget, or the inference conf\'s)');
  if (s.badSequences && s.badSequences.length > 0) refuse('bad_words', 'A bad word of several tokens');
  if (promptScored) refuse('prompt_logprobs', 'Prompt logprobs (prompt_logprobs, or echo with logprobs)');
}

/**
 * Runs one search per prompt of `jobs` (`width` consecutive jobs share a prompt) and returns, per
 * job, an engine that replays its beam: the i-th best for the i-th job of its prompt.
 */
export async function runBeamSearches(engine: GenerationEngine, jobs: ChoiceJob[], plan: BeamPlan, signal: AbortSignal): Promise<GenerationEngine[]> {
  const prompts = jobs.filter((_, i) => i % plan.width === 0);
  let results: Beam[][];
  try {
    results = await Promise.all(
      prompts.map((job) => {
        const s = job.submit;
        return beamSearch(engine, {
          prompt: [...s.tokens],
          width: plan.width,
          maxTokens: s.maxTokens,
          stopTokenIds: s.ignoreEos ? [] : (s.stopTokenIds ?? []),
          bannedTokenIds: s.badTokenIds,
          minTokens: s.minTokens,
          lengthPenalty: plan.lengthPenalty,
          alternatives: s.logprobs,
          cacheSalt: s.cacheSalt,
          priority: s.priority,
          signal,
        });
      }),
    );
  } catch (e) {
    if (!(e instanceof BeamSearchError)) throw e;
    if (e.kind === 'cancelled') throw new ApiError(503, `The request was cancelled: ${e.message}.`, { type: 'server_error', code: 'cancelled' });
    throw new ApiError(500, `Generation failed: ${e.message}`, { code: 'engine_error' });
  }
  return jobs.map((job, i) => {
    const beams = results[Math.floor(i / plan.width)];
    return replayEngine(engine, beams[i % plan.width]);
  });
}

/** An engine whose every request gets `beam` as its answer (one event), or an empty answer where the search found fewer beams. */
function replayEngine(engine: GenerationEngine, beam: Beam | undefined): GenerationEngine {
  return {
    get info(): EngineInfo {
      return engine.info;
    },
    stats: (): EngineStats => engine.stats(),
    close: () => Promise.resolve(),
    submit(req: SubmitRequest): AsyncIterable<TokenEvent> {
      const ev: TokenEvent = { tokens: beam?.tokens ?? [], finishReason: beam?.stop ? 'stop' : 'length', cachedPromptTokens: 0 };
      const wanted = req.logprobs;
      if (wanted !== undefined && beam) {
        ev.logprobs = beam.logprobs;
        ev.topLogprobs = beam.tops.map((t) => t.slice(0, wanted));
      }
      if (beam?.stop) {
        ev.stopTokenId = beam.stop.token;
        if (wanted !== undefined) ev.stopLogprob = { logprob: beam.stop.logprob, top: beam.stop.top.slice(0, wanted) };
      }
      return (async function* () {
        yield ev;
      })();
    },
  };
}
