// vLLM's prompt_logprobs on /v1/chat/completions and /v1/completions: for each prompt token after
// the first, its logprob and rank and the N likeliest tokens at that position, keyed by token id
// as vLLM writes them (the prompt token first, then the alternatives best first):
//   "prompt_logprobs": [null, {"9707": {"logprob": -3.1, "rank": 12, "decoded_token": "Hello"}, ...}, ...]
// Chat puts the list at the top of the answer (one prompt for every choice), completions in each
// choice. As in vLLM it is not streamed: a streamed request asking for alternatives is a 400.
import { objectInOrder } from '../../util/key-order.js';
import { badRequest } from '../errors.js';
import type { PromptLogprobs } from '../generate.js';
import { finiteLogprob, tokenText, type TokenBytes } from './logprobs.js';

/** The most alternatives a position may list (vLLM's default max_logprobs). */
export const MAX_PROMPT_LOGPROBS = 20;

export interface PromptTokenLogprob {
  logprob: number;
  rank: number;
  decoded_token: string;
}

export type VllmPromptLogprobs = (Record<string, PromptTokenLogprob> | null)[];

/**
 * The alternatives asked per prompt position, undefined when none were asked. Past the limit, or
 * -1 (vLLM's whole vocabulary, which it refuses too by default), is a 400; so are alternatives on
 * a streamed request, which vLLM does not stream.
 */
export function promptLogprobsAsked(value: number | null | undefined, stream: boolean | null | undefined): number | undefined {
  if (value == null) return undefined;
  if (value < 0 || value > MAX_PROMPT_LOGPROBS)
    throw badRequest(`prompt_logprobs ${value} is outside 0 to ${MAX_PROMPT_LOGPROBS}: each prompt position lists at most ${MAX_PROMPT_LOGPROBS} alternatives; send fewer.`, 'prompt_logprobs');
  if (stream && value > 0) throw badRequest('prompt_logprobs are not available when "stream": true (as in vLLM); ask without streaming.', 'prompt_logprobs');
  return value;
}

/** The engine's prompt logprobs in vLLM's shape: `top` alternatives per position after the prompt token itself. */
export function vllmPromptLogprobs(ids: readonly number[], entries: PromptLogprobs | undefined, top: number, tok: TokenBytes): VllmPromptLogprobs {
  return ids.map((id, i) => {
    const e = entries?.[i];
    if (i === 0 || !e) return null;
    const listed: [string, PromptTokenLogprob][] = [[String(id), { logprob: finiteLogprob(e.logprob), rank: e.rank, decoded_token: tokenText(tok, id) }]];
    e.top.slice(0, top).forEach((t, k) => {
      // The prompt token keeps its place (first) when it is among the likeliest too.
      if (t.token !== id) listed.push([String(t.token), { logprob: finiteLogprob(t.logprob), rank: k + 1, decoded_token: tokenText(tok, t.token) }]);
    });
    return objectInOrder(listed) as Record<string, PromptTokenLogprob>;
  });
}
