// Token logprobs in OpenAI's two shapes: chat's `logprobs.content[]` entries with bytes, and the
// legacy completions object of parallel arrays (what lm-evaluation-harness reads).
import type { TopLogprob } from '../../engine/types.js';
import type { PromptLogprobs, TokenLogprob } from '../generate.js';

/** What logprobs need of the tokenizer: the raw bytes of one token. */
export interface TokenBytes {
  tokenBytes(id: number): Uint8Array;
}

/** How logprobs name a token: its text, or (vLLM's return_tokens_as_token_ids) "token_id:<id>". */
export type TokenNaming = 'text' | 'ids';

const lossy = new TextDecoder('utf-8');

/** Token text as OpenAI shows it: its bytes decoded, a partial UTF-8 sequence as U+FFFD. */
export function tokenText(tok: TokenBytes, id: number): string {
  return lossy.decode(tok.tokenBytes(id));
}

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export function chatLogprobs(tok: TokenBytes, entries: readonly TokenLogprob[], topN: number, naming: TokenNaming = 'text'): ChatTokenLogprob[] {
  return entries.map((e) => ({
    ...chatEntry(tok, e.id, e.logprob, naming),
    top_logprobs: e.top.slice(0, topN).map((t) => chatEntry(tok, t.token, t.logprob, naming)),
  }));
}

function chatEntry(tok: TokenBytes, id: number, logprob: number, naming: TokenNaming) {
  return { token: tokenName(tok, id, naming), logprob: finiteLogprob(logprob), bytes: Array.from(tok.tokenBytes(id)) };
}

function tokenName(tok: TokenBytes, id: number, naming: TokenNaming): string {
  return naming === 'ids' ? `token_id:${id}` : tokenText(tok, id);
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

/** Accumulates the completions shape; text offsets count from `startOffset` (the echoed prompt's length, or 0). */
export class CompletionLogprobsBuilder {
  readonly value: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  private offset: number;

  constructor(
    private readonly tok: TokenBytes,
    private readonly topN: number,
    startOffset = 0,
    private readonly naming: TokenNaming = 'text',
  ) {
    this.offset = startOffset;
  }

  /** Prompt tokens for echo: position 0 has no logprob (nothing predicts it). */
  addPrompt(ids: readonly number[], prompt: PromptLogprobs | undefined): void {
    ids.forEach((id, i) => {
      const p = prompt?.[i] ?? null;
      this.add(id, p ? p.logprob : null, p ? p.top : null);
    });
  }

  addGenerated(entries: readonly TokenLogprob[]): void {
    for (const e of entries) this.add(e.id, e.logprob, e.top);
  }

  /** Takes the entries added since the last call (one stream chunk's worth). */
  take(): CompletionLogprobs {
    const v = { ...this.value };
    this.value.tokens = [];
    this.value.token_logprobs = [];
    this.value.top_logprobs = [];
    this.value.text_offset = [];
    return v;
  }

  private add(id: number, logprob: number | null, top: TopLogprob[] | null): void {
    const text = tokenText(this.tok, id);
    const name = tokenName(this.tok, id, this.naming);
    this.value.tokens.push(name);
    this.value.token_logprobs.push(logprob === null ? null : finiteLogprob(logprob));
    if (top === null || logprob === null) this.value.top_logprobs.push(null);
    else {
      // The chosen token is always in the dict (as vLLM does), so "was it the top choice" can be read off.
      const dict: Record<string, number> = {};
      for (const t of top.slice(0, this.topN)) dict[tokenName(this.tok, t.token, this.naming)] ??= finiteLogprob(t.logprob);
      dict[name] ??= finiteLogprob(logprob);
      this.value.top_logprobs.push(dict);
    }
    this.value.text_offset.push(this.offset);
    // Characters (code points) of the text, as Python counts them: clients index the text with
    // these, whatever the tokens are named.
    this.offset += codePoints(text);
  }
}

/** JSON has no -Infinity: a token with probability 0 reports the most negative finite number. */
export function finiteLogprob(x: number): number {
  return Number.isFinite(x) ? x : -9999.0;
}

function codePoints(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
