// Helpers for the structured-output tests: the real Qwen3 tokenizer, a compiler over it, and
// constrained "decoding" without a model: at every step a token is drawn at random from those
// the native matcher allows (what a random-weight model does under a constraint, thousands of
// times faster), so grammars can be checked against a real validator on many outputs.
import ajvModule from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import type { AnswerSpec, AnswerThinking } from '../../src/structured/answer-grammar.js';
import type { NativeGrammar } from '../../src/structured/native.js';
import { SchemaError } from '../../src/structured/schema-errors.js';
import { StructuredOutputs } from '../../src/structured/structured-outputs.js';
import { tokenizerDir } from '../helpers/fixtures.js';
import { mulberry32 } from '../../src/util/seeded-random.js';

export const tokenizer = Tokenizer.fromDir(tokenizerDir);
// These tests check what grammars accept, not how fast they build: the server's 500 ms build
// deadline refused the largest of them on a loaded machine (its own test uses a compiler of its own).
export const outputs = new StructuredOutputs(tokenizer, { buildDeadlineMs: 60_000 });
export const imEnd = tokenizer.tokenToId('<|im_end|>')!;

export function schemaGrammar(schema: unknown, thinking: AnswerThinking = false): NativeGrammar {
  return outputs.compile({ kind: 'json_schema', schema }, thinking).grammar;
}

/** Why the compiler refuses an answer spec (the SchemaError's reason), or "accepted". */
export function refusalOf(spec: AnswerSpec): string {
  try {
    outputs.compile(spec, false);
  } catch (err) {
    if (err instanceof SchemaError) return err.reason;
    throw err;
  }
  return 'accepted';
}

const enc = new TextEncoder();
export function match(g: NativeGrammar, text: string): string {
  return g.match(enc.encode(text));
}

/** Deterministic PRNG (mulberry32). */
export const rng = mulberry32;

export interface Sample {
  text: string;
  tokens: number[];
  /** Ended with the end-of-sequence token (not cut by max_tokens). */
  finished: boolean;
}

/**
 * Draws tokens uniformly from the allowed set until end-of-sequence or maxTokens; the matcher
 * gets maxTokens as its budget, so it must always finish in time.
 */
export function sample(g: NativeGrammar, seed: number, maxTokens = 400, opts: { thinkMaxTokens?: number } = {}): Sample {
  const m = g.matcher({ eosTokenIds: [imEnd], maxTokens, thinkMaxTokens: opts.thinkMaxTokens });
  const next = rng(seed);
  const tokens: number[] = [];
  for (let i = 0; i < maxTokens; i++) {
    const allowed = m.allowed();
    if (allowed.length === 0) throw new Error(`no token allowed after ${JSON.stringify(tokenizer.decode(tokens))}`);
    const t = allowed[Math.floor(next() * allowed.length)];
    if (t === imEnd) return { text: tokenizer.decode(tokens), tokens, finished: true };
    if (!m.accept(t)) throw new Error(`allowed token ${t} was refused`);
    tokens.push(t);
  }
  return { text: tokenizer.decode(tokens), tokens, finished: false };
}

export function validator() {
  // Both packages are CommonJS: under NodeNext their default import is module.exports.
  const ajv = new ajvModule.default({ strict: false, allErrors: true });
  addFormatsModule.default(ajv);
  return ajv;
}
