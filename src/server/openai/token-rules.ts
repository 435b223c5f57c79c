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

/** What bad words ban: single tokens, and token sequences whose last token is banned right after the rest. */
export interface WordBans {
  badTokenIds?: number[];
  badSequences?: number[][];
}

/**
 * The token forms of one bad word, as vLLM reads it: leading spaces dropped, then the word alone
 * and the word after a space (the form it takes inside text). vLLM keeps the second form only
 * when it is as many tokens as the first and begins with another token; here it is kept whenever
 * it differs, so the after-a-space form is banned even where the bare word is more tokens.
 * Empty for a word of spaces only.
 */
export function badWordForms(tokenizer: Pick<Tokenizer, 'encode'>, word: string): number[][] {
  const bare = word.trimStart();
  if (bare === '') return [];
  const forms: number[][] = [];
  for (const text of [bare, ` ${bare}`]) {
    const ids = tokenizer.encode(text, { allowSpecial: false });
    if (ids.length > 0 && !forms.some((f) => sameIds(f, ids))) forms.push(ids);
  }
  return forms;
}

/**
 * Bad words as bans: a form of one token is banned everywhere, a longer form as a sequence (its
 * last token never follows the rest of it in the answer), as vLLM and TensorRT-LLM ban them.
 */
export function wordBans(words: readonly string[], tokenizer: Pick<Tokenizer, 'encode'>, onEmpty: (index: number) => void): WordBans {
  const ids = new Set<number>();
  const sequences: number[][] = [];
  words.forEach((word, i) => {
    const forms = badWordForms(tokenizer, word);
    if (forms.length === 0) onEmpty(i);
    for (const form of forms) {
      if (form.length === 1) ids.add(form[0]);
      else if (!sequences.some((q) => sameIds(q, form))) sequences.push(form);
    }
  });
  return { badTokenIds: ids.size > 0 ? [...ids] : undefined, badSequences: sequences.length > 0 ? sequences : undefined };
}

/**
 * The request's bad_words as bans, merged with the conf's. A word of spaces only bans nothing and
 * is a 400 naming it.
 */
export function requestBans(words: readonly string[] | null | undefined, tokenizer: Pick<Tokenizer, 'encode'>, conf: WordBans): WordBans {
  // The common request sends none: the conf's bans as they are, without tokenizing.
  if (!words || words.length === 0) return conf;
  const own = wordBans(words, tokenizer, (i) => {
    throw badRequest(`bad_words[${i}] ${JSON.stringify(words[i])} is only spaces, which ban nothing; send the word itself.`, `bad_words[${i}]`);
  });
  const ids = [...new Set([...(conf.badTokenIds ?? []), ...(own.badTokenIds ?? [])])];
  const sequences = [...(conf.badSequences ?? [])];
  for (const q of own.badSequences ?? []) if (!sequences.some((known) => sameIds(known, q))) sequences.push(q);
  return { badTokenIds: ids.length > 0 ? ids : undefined, badSequences: sequences.length > 0 ? sequences : undefined };
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
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
  const n = truncationLength(keep, limits);
  return n !== undefined && ids.length > n ? ids.slice(ids.length - n) : ids;
}

/** truncate_prompt_tokens as a token count (-1 resolved to max_input_len); undefined when absent; past max_input_len a 400. */
export function truncationLength(keep: number | null | undefined, limits: Pick<ContextLimits, 'maxInputLen'>): number | undefined {
  if (keep == null) return undefined;
  const most = limits.maxInputLen;
  if (keep > most)
    throw badRequest(
      `truncate_prompt_tokens ${keep} is more than the ${most} tokens a prompt may have (max_input_len); send at most ${most}, or -1 to keep that many.`,
      'truncate_prompt_tokens',
    );
  return keep === -1 ? most : keep;
}
