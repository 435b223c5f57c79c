// The addon's structured-output functions (native/src/addon/grammar_wrap.cpp), typed. The
// vocabulary trie is built once per tokenizer and shared by every grammar compiled against it.
import type { Tokenizer } from '../chat/tokenizer.js';
import { loadAddon } from '../engine/addon.js';
import type { NativeConstraint } from '../engine/native.js';

export interface NativeVocabulary {
  readonly size: number;
  readonly trieNodes: number;
}

export interface GrammarConstraintOptions {
  /** End-of-sequence tokens allowed once the output is complete (default: none). */
  eosTokenIds?: number[];
  /** The request's max_tokens: near its end only tokens that still let the output finish are allowed. */
  maxTokens?: number;
  /** The think block is closed (only </think> allowed) once it has used this many tokens. */
  thinkMaxTokens?: number;
}

export interface NativeGrammarStats {
  nodes: number;
  states: number;
  stacks: number;
  cachedMasks: number;
  maskBytes: number;
  masksComputed: number;
  maskHits: number;
  maskSeconds: number;
  /** (state, symbol) transitions computed. */
  transitions: number;
  /** Masks handed to the sampler, and the seconds they took in all (computing included). */
  fills: number;
  fillSeconds: number;
}

/** One sequence's matcher, stepped from JS (tests, benchmarks). */
export interface NativeGrammarMatcher {
  /** Tokens allowed next, ascending (end-of-sequence included once complete). */
  allowed(): Int32Array;
  /** Fills `words` (bit t: token t allowed) as the sampler does; returns the seconds it took. */
  fillMask(words: Uint32Array): number;
  /** Advances past a token; false once a token that was not allowed came in. */
  accept(token: number): boolean;
  readonly complete: boolean;
  readonly alive: boolean;
  /** Fewest bytes or special tokens that complete the output; null once dead. */
  readonly remaining: number | null;
}

export interface NativeGrammar {
  /** The handle SubmitRequest.constraint takes. */
  constraint(options?: GrammarConstraintOptions): NativeConstraint;
  matcher(options?: GrammarConstraintOptions): NativeGrammarMatcher;
  /** Runs the grammar over raw bytes from its start. */
  match(bytes: Uint8Array): 'complete' | 'prefix' | 'rejected';
  stats(): NativeGrammarStats;
  /** Fewest bytes or special tokens of a complete output. */
  readonly shortestOutput: number;
}

export interface StructuredAddon {
  createVocabulary(data: Uint8Array, offsets: Uint32Array, addedIds: Int32Array): NativeVocabulary;
  compileGrammar(vocab: NativeVocabulary, grammar: Int32Array): NativeGrammar;
  /** Sets the logits of tokens whose bit in `words` is clear to -Infinity, in place, as the sampler applies a mask. */
  maskLogits(words: Uint32Array, logits: Float32Array): void;
}

export function structuredAddon(): StructuredAddon {
  return loadAddon() as unknown as StructuredAddon;
}

const vocabularies = new WeakMap<Tokenizer, NativeVocabulary>();

/** The tokenizer's vocabulary in native form (built on first use, then shared). */
export function nativeVocabulary(tokenizer: Tokenizer): NativeVocabulary {
  let v = vocabularies.get(tokenizer);
  if (!v) {
    const { data, offsets } = tokenizer.packedTokenBytes();
    const added = Int32Array.from(tokenizer.addedTokens.map((t) => t.id));
    v = structuredAddon().createVocabulary(data, offsets, added);
    vocabularies.set(tokenizer, v);
  }
  return v;
}
