// Request fields -> what one engine submit needs: sampling, limits, stop strings and stop ids.
// Request values win over the inference conf's defaults, which win over OpenAI's defaults.
import type { Tokenizer } from '../../chat/tokenizer.js';
import { defaultSampling, type EngineInfo, type SamplingParams, type ThinkBudget } from '../../engine/types.js';
import { badRequest, contextLengthExceeded, inputTooLong } from '../errors.js';
import type { ServerOptions } from '../options.js';
import type { CommonRequest } from './schema-common.js';

export function samplingFor(body: CommonRequest, options: ServerOptions): SamplingParams {
  const conf = options.sampling;
  const pick = <K extends keyof SamplingParams>(given: number | null | undefined, key: K): SamplingParams[K] =>
    (given ?? conf[key] ?? defaultSampling[key]) as SamplingParams[K];
  const sampling: SamplingParams = {
    temperature: pick(body.temperature, 'temperature'),
    topK: pick(body.top_k, 'topK'),
    topP: pick(body.top_p, 'topP'),
    minP: pick(body.min_p, 'minP'),
    repetitionPenalty: pick(body.repetition_penalty, 'repetitionPenalty'),
    presencePenalty: pick(body.presence_penalty, 'presencePenalty'),
    frequencyPenalty: pick(body.frequency_penalty, 'frequencyPenalty'),
  };
  // top_p 0 keeps only the most likely token: that is greedy decoding. The engine takes 32-bit
  // floats, so a top_p too small for one (1e-64) is 0 there too.
  if (Math.fround(sampling.topP) <= 0) {
    sampling.temperature = 0;
    sampling.topP = 1;
  }
  // Any top_k past the vocabulary keeps every token, which is what 0 means to the engine (a 32-bit int).
  if (sampling.topK < 0 || sampling.topK >= 2 ** 31) sampling.topK = 0;
  if (!(Math.fround(sampling.repetitionPenalty) > 0))
    throw badRequest(`repetition_penalty ${sampling.repetitionPenalty} is too small to apply; send a value of at least 1e-6 (1 means no penalty).`, 'repetition_penalty', 'invalid_value');
  const seed = body.seed ?? conf.seed;
  if (seed !== undefined && seed !== null) sampling.seed = seedToU32(seed);
  return sampling;
}

/** Choice i of a seeded request uses seed + i, so n choices differ yet each is reproducible. */
export function choiceSampling(base: SamplingParams, index: number): SamplingParams {
  if (base.seed === undefined || index === 0) return base;
  return { ...base, seed: (base.seed + index) >>> 0 };
}

/** Any integer the client sends maps onto the engine's 32-bit seed space. */
export function seedToU32(seed: number): number {
  const m = seed % 2 ** 32;
  return (m < 0 ? m + 2 ** 32 : m) >>> 0;
}

/** stream_options without stream: 400, as OpenAI and vLLM answer (its include_usage would do nothing). */
export function checkStreamOptions(body: CommonRequest): void {
  if (body.stream_options != null && body.stream !== true) {
    throw badRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled; set \"stream\": true or leave stream_options out.", 'stream_options');
  }
}

/**
 * The engine's stop tokens: the model's end tokens (and the conf's one-token stop words) plus the
 * request's stop_token_ids. ignore_eos drops only the former, as vLLM's does: a client that asks
 * for both still stops at its own ids.
 */
export function stopTokens(serverIds: readonly number[], body: Pick<CommonRequest, 'ignore_eos' | 'stop_token_ids'>): { stopTokenIds: number[]; ignoreEos: boolean } {
  const own = body.stop_token_ids ?? [];
  if (!body.ignore_eos) return { stopTokenIds: [...serverIds, ...own], ignoreEos: false };
  // The engine's ignoreEos passes every stop id, so with ids of the client's own it stays off.
  return own.length > 0 ? { stopTokenIds: [...own], ignoreEos: false } : { stopTokenIds: [...serverIds], ignoreEos: true };
}

/** Request stop strings plus the conf's stop_words. */
export function stopStrings(body: CommonRequest, options: ServerOptions): string[] {
  const given = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return [...new Set([...given, ...options.stopWords].filter((s) => s.length > 0))];
}

/**
 * The generation budget: the request's max tokens, or what is left of the context. 400 with both
 * numbers when the prompt and the budget do not fit, or the prompt is past the engine's input limit.
 */
export function tokenBudget(
  requested: number | null | undefined,
  promptTokens: number,
  limits: Pick<EngineInfo, 'maxSeqLen' | 'maxInputLen'>,
  param: string,
  budgetField = 'max_tokens',
  /** The answer's length when the request sets none (generation_config's max_new_tokens), at most what the context leaves. */
  defaultMax?: number,
): number {
  const { maxSeqLen, maxInputLen } = limits;
  if (promptTokens > maxInputLen && maxInputLen < maxSeqLen) throw inputTooLong(maxInputLen, promptTokens, param);
  if (requested === null || requested === undefined) {
    if (promptTokens >= maxSeqLen) throw contextLengthExceeded(maxSeqLen, promptTokens, 1, param, budgetField);
    return Math.min(maxSeqLen - promptTokens, defaultMax ?? Infinity);
  }
  if (promptTokens + requested > maxSeqLen) throw contextLengthExceeded(maxSeqLen, promptTokens, requested, param, budgetField);
  return requested;
}

/**
 * The most tokens a prompt may have: max_input_len, and one short of max_seq_len (room for one
 * answer token). The one rule behind tokenBudget's refusals, the Messages API's, prompt-only
 * inputs' and what /v1/models reports.
 */
export function promptTokenLimit(limits: Pick<EngineInfo, 'maxSeqLen' | 'maxInputLen'>): number {
  return Math.min(limits.maxInputLen, limits.maxSeqLen - 1);
}

/** Whether a prompt of promptTokens leaves room for the answer: what tokenBudget accepts. */
export function leavesRoom(promptTokens: number, requested: number | null | undefined, limits: Pick<EngineInfo, 'maxSeqLen' | 'maxInputLen'>): boolean {
  return promptTokens <= promptTokenLimit(limits) && promptTokens + (requested ?? 1) <= limits.maxSeqLen;
}

/** min_tokens (vLLM's): at most the budget, since the answer could not reach it otherwise. */
export function minTokens(requested: number | null | undefined, maxTokens: number): number | undefined {
  if (!requested) return undefined;
  if (requested > maxTokens) throw badRequest(`min_tokens ${requested} is more than the ${maxTokens} tokens this answer may have (max_tokens, or what is left of the context); lower min_tokens or raise max_tokens.`, 'min_tokens', 'invalid_value');
  return requested;
}

/** The largest budget the runtime counts to (an int32); anything larger is the same as it. */
const MAX_THINK_BUDGET = 2 ** 31 - 1;

/**
 * A thinking token budget (vLLM's thinking_token_budget, Anthropic's thinking.budget_tokens): the
 * runtime closes the think block once it holds this many tokens. A request without one takes the
 * inference conf's (thinking_token_budget). 400 when a request sets one on a model without the
 * block's two tokens, where it could bound nothing.
 */
export function thinkBudget(requested: number | null | undefined, tokenizer: Tokenizer, options: ServerOptions, param = 'thinking_token_budget'): ThinkBudget | undefined {
  const given = requested ?? options.thinkingTokenBudget;
  if (given === undefined) return undefined;
  // No answer is longer than the runtime's int32 counts: a larger budget bounds nothing more.
  const maxTokens = Math.min(given, MAX_THINK_BUDGET);
  const openToken = tokenizer.tokenToId('<think>');
  const closeToken = tokenizer.tokenToId('</think>');
  if (openToken === undefined || closeToken === undefined) {
    if (requested === null || requested === undefined) return undefined;
    throw badRequest(`${param} bounds a <think> block, and this model's tokenizer has no <think> and </think> tokens; leave ${param} out.`, param);
  }
  return { maxTokens, openToken, closeToken };
}

/** logit_bias as [token, bias] pairs, each token inside the vocabulary (400 naming it otherwise). */
export function logitBias(body: CommonRequest, vocabSize: number): [number, number][] | undefined {
  if (!body.logit_bias) return undefined;
  const pairs = Object.entries(body.logit_bias).map(([t, b]): [number, number] => [Number(t), b]);
  checkTokenIds(pairs.map(([t]) => t), vocabSize, 'logit_bias');
  return pairs.length > 0 ? pairs : undefined;
}

export function checkTokenIds(ids: readonly number[], vocabSize: number, param: string): void {
  for (const id of ids)
    if (id >= vocabSize) throw badRequest(`Token id ${id} is outside the vocabulary (0..${vocabSize - 1}).`, param, 'invalid_value');
}
