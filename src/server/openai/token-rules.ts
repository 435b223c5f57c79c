// vLLM's per-request token rules on /v1/chat/completions and /v1/completions: allowed_token_ids
// (only these may be sampled), bad_words (never generated) and truncate_prompt_tokens (keep the
// prompt's last N tokens). Each either reaches the engine as asked or is refused with a 400 that
// names it; none is dropped.
import type { Tokenizer } from '../../chat/tokenizer.js';
import type { GenerationEngine } from '../../engine/types.js';
import { badRequest } from '../errors.js';
import type { ContextLimits } from '../context.js';
import { checkTokenIds } from './sampling.js';
import { unsupported } from './vllm-fields.js';

/**
 * The ids a bad word bans: the word and the word after a space, each where it is one token, as
 * grps_trtllm's bad_words are taken (TensorRT-LLM bans single tokens). Empty when neither form is
 * one token.
 */
export function singleTokenForms(tokenizer: Pick<Tokenizer, 'encode'>, word: string): number[] {
  const ids: number[] = [];
  for (const form of [word, ` ${word}`]) {
    const enc = tokenizer.encode(form, { allowSpecial: false });
    if (enc.length === 1 && !ids.includes(enc[0])) ids.push(enc[0]);
  }
  return ids;
}

/**
 * The request's bad_words as banned ids, merged with the conf's. As vLLM reads a word: leading
 * spaces dropped, then the word alone and after a space; each of those forms that is one token
 * is banned. vLLM also bans a form of several tokens, as a sequence, which the engine does not
 * do: a word with no one-token form is refused rather than left to appear, and docs say which
 * forms a word's ban covers (structured-outputs.md).
 */
export function bannedTokenIds(words: readonly string[] | null | undefined, tokenizer: Pick<Tokenizer, 'encode'>, confIds: readonly number[] | undefined): number[] | undefined {
  // The common request sends none: the conf's list, without tokenizing or building a set.
  if (!words || words.length === 0) return confIds && confIds.length > 0 ? [...confIds] : undefined;
  const ids = new Set(confIds ?? []);
  words.forEach((given, i) => {
    const word = given.trimStart();
    const forms = singleTokenForms(tokenizer, word);
    if (forms.length === 0) {
      const count = tokenizer.encode(word, { allowSpecial: false }).length;
      throw unsupported(
        `bad_words[${i}]`,
        `bad_words[${i}] ${JSON.stringify(given)} is ${count} tokens; this server bans only words that are one token (alone or after a space), as the inference conf's bad_words. ` +
          'Send single-token words, or use stop to end the answer where the word begins.',
      );
    }
    for (const id of forms) ids.add(id);
  });
  return ids.size > 0 ? [...ids] : undefined;
}

/**
 * allowed_token_ids as an engine constraint. The engine takes one constraint per sequence, so a
 * request that also asks for a grammar (response_format, guided_json, a forced or forbidden tool
 * call: `grammarField` names it) is refused by name rather than losing one of the two.
 */
export function allowedTokensConstraint(
  ids: readonly number[] | null | undefined,
  engine: GenerationEngine,
  vocabSize: number,
  grammarField: string | undefined,
  banned: readonly number[] | undefined,
): unknown {
  if (ids == null) return undefined;
  checkTokenIds(ids, vocabSize, 'allowed_token_ids');
  if (grammarField !== undefined)
    throw unsupported(
      'allowed_token_ids',
      `allowed_token_ids cannot be combined with ${grammarField}: each constrains the answer on its own and the engine applies one constraint per answer. Send one of them.`,
    );
  if (!engine.allowedTokensConstraint)
    throw unsupported('allowed_token_ids', 'allowed_token_ids is not supported by this engine; use logit_bias to favour tokens, or leave it out.');
  const unique = [...new Set(ids)];
  const bannedSet = new Set(banned ?? []);
  if (unique.every((id) => bannedSet.has(id)))
    throw badRequest('Every token in allowed_token_ids is banned by bad_words (the request\'s or the inference conf\'s), so no token could be sampled; allow other tokens.', 'allowed_token_ids');
  return engine.allowedTokensConstraint(unique);
}

/**
 * truncate_prompt_tokens: the prompt's last `keep` tokens (-1: as many as a prompt may have), as
 * vLLM cuts it (from the left, after the chat template). More than a prompt may hold is a 400,
 * as there.
 */
export function truncatePrompt(ids: number[], keep: number | null | undefined, limits: ContextLimits): number[] {
  if (keep == null) return ids;
  const most = limits.maxInputLen;
  if (keep > most)
    throw badRequest(
      `truncate_prompt_tokens ${keep} is more than the ${most} tokens a prompt may have (max_input_len); send at most ${most}, or -1 to keep that many.`,
      'truncate_prompt_tokens',
    );
  const n = keep === -1 ? most : keep;
  return ids.length > n ? ids.slice(ids.length - n) : ids;
}
