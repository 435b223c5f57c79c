// vLLM's own answer fields on chat and completions choices: stop_reason (always, as vLLM writes
// it) and, with return_token_ids, the token ids of the prompt and of each choice.
import type { ChoiceUpdate } from '../generate.js';

/**
 * What ended a choice, as vLLM's stop_reason says it: the stop string, or the stop token's id
 * when it is not the model's own end token (that one, a length cut and tool calls give null).
 */
export function stopReason(u: Pick<ChoiceUpdate, 'stopString' | 'stopTokenId'>, eosTokenId: number | undefined): string | number | null {
  if (u.stopString !== undefined) return u.stopString;
  if (u.stopTokenId !== undefined && u.stopTokenId !== eosTokenId) return u.stopTokenId;
  return null;
}
