// Compiled grammars for one tokenizer, cached by what they enforce: the same schema (or tool
// list) compiles once, and its matcher, with every token mask it has computed, is shared by all
// later requests that use it. Failed compilations are cached too, so a refused schema is
// refused at once the next time. The server compiles on a thread of its own (compileOffThread),
// so a large schema does not hold up the tokens of requests already streaming.
import { createHash } from 'node:crypto';
import type { Tokenizer } from '../chat/tokenizer.js';
import { answerGrammar, specialTokens, type AnswerSpec, type AnswerThinking, type SpecialTokens } from './answer-grammar.js';
import { buildAutomaton } from './automaton.js';
import { refusalOf } from './compile-failure.js';
import { CompileThread, compileWorkerFile } from './compile-thread.js';
import { bytes, RuleSet, special, star, alt, type Expr, type Grammar } from './grammar.js';
import { nativeVocabulary, structuredAddon, type NativeGrammar, type NativeVocabulary } from './native.js';
import type { SchemaError } from './schema-errors.js';

export interface StructuredOutputsOptions {
  /** Compiled grammars kept (least recently used dropped first). */
  cacheSize?: number;
  /** Refuse a grammar whose automaton takes longer than this to build (default automaton.ts DEFAULT_BUILD_DEADLINE_MS). */
  buildDeadlineMs?: number;
}

export interface CompiledAnswer {
  grammar: NativeGrammar;
  /** Automaton nodes. */
  nodes: number;
  /** Milliseconds the compilation took (0 when it came from the cache). */
  compileMs: number;
}

export class StructuredOutputs {
  private readonly cache = new Map<string, NativeGrammar | SchemaError>();
  private readonly cacheSize: number;
  private readonly buildDeadlineMs?: number;
  private readonly tokens: SpecialTokens;
  private vocab?: NativeVocabulary;
  private noToolCalls?: NativeGrammar;
  private thread?: CompileThread | null;
  /** Compilations on the thread not yet back, by key: requests with the same new schema share one. */
  private readonly inFlight = new Map<string, Promise<CompiledAnswer>>();

  constructor(
    readonly tokenizer: Tokenizer,
    options: StructuredOutputsOptions = {},
  ) {
    this.cacheSize = options.cacheSize ?? 64;
    this.buildDeadlineMs = options.buildDeadlineMs;
    this.tokens = specialTokens(tokenizer);
  }

  /** The grammar of an answer; throws SchemaError for what it cannot enforce. */
  compile(spec: AnswerSpec, thinking: AnswerThinking): CompiledAnswer {
    const key = cacheKey(JSON.stringify([spec, thinking]));
    const hit = this.cached(key);
    if (hit) return hit;
    const t0 = performance.now();
    let grammar: NativeGrammar;
    let rules: Grammar | undefined;
    try {
      rules = answerGrammar(spec, thinking, this.tokens);
      grammar = this.build(rules);
    } catch (err) {
      const refused = refusalOf(err, rules, spec);
      if (refused?.cacheable) this.remember(key, refused.error);
      throw refused?.error ?? err;
    }
    this.remember(key, grammar);
    return { grammar, nodes: grammar.stats().nodes, compileMs: performance.now() - t0 };
  }

  /**
   * compile(), with the rules and automaton built on the compiler thread (compile-thread.ts), so
   * the calling thread's event loop stays free; on the calling thread where the thread's file is
   * missing. Rejects as compile() throws.
   */
  async compileOffThread(spec: AnswerSpec, thinking: AnswerThinking): Promise<CompiledAnswer> {
    const specJson = JSON.stringify([spec, thinking]);
    const key = cacheKey(specJson);
    const hit = this.cached(key);
    if (hit) return hit;
    this.thread ??= (() => {
      const file = compileWorkerFile();
      return file ? new CompileThread(file) : null;
    })();
    if (!this.thread) return this.compile(spec, thinking);
    const running = this.inFlight.get(key);
    if (running) return running;
    const thread = this.thread;
    const job = (async (): Promise<CompiledAnswer> => {
      const t0 = performance.now();
      const r = await thread.compile(specJson, this.tokens, this.buildDeadlineMs);
      if ('error' in r) {
        if (r.refusal?.cacheable) this.remember(key, r.refusal.error);
        throw r.error;
      }
      const grammar = this.matcherOf(r.data);
      this.remember(key, grammar);
      return { grammar, nodes: grammar.stats().nodes, compileMs: performance.now() - t0 };
    })();
    this.inFlight.set(key, job);
    try {
      return await job;
    } finally {
      this.inFlight.delete(key);
    }
  }

  /** Ends the compiler thread, if one started. */
  async close(): Promise<void> {
    await this.thread?.close();
    this.thread = undefined;
  }

  /** Free text in which the model cannot open a tool call (tool_choice "none"). */
  withoutToolCalls(): NativeGrammar {
    if (!this.noToolCalls) {
      const banned = new Set([this.tokens.toolCallOpen, this.tokens.toolCallClose]);
      const specials = this.tokenizer.addedTokens.filter((t) => !t.special && !banned.has(t.id)).map((t) => special(t.id));
      const text: Expr = star(alt(bytes([0, 255]), ...specials));
      this.noToolCalls = this.build(new RuleSet().grammar(text));
    }
    return this.noToolCalls;
  }

  /** Builds the vocabulary trie now (about 0.3 s), so the first constrained request does not wait for it. */
  warm(): void {
    this.vocab ??= nativeVocabulary(this.tokenizer);
  }

  get cachedGrammars(): number {
    return this.cache.size;
  }

  private build(g: Grammar): NativeGrammar {
    return this.matcherOf(buildAutomaton(g, { deadlineMs: this.buildDeadlineMs }).data);
  }

  private matcherOf(automaton: Int32Array): NativeGrammar {
    this.vocab ??= nativeVocabulary(this.tokenizer);
    return structuredAddon().compileGrammar(this.vocab, automaton);
  }

  /** A cached grammar (now the most recently used), or the cached refusal thrown. */
  private cached(key: string): CompiledAnswer | undefined {
    const hit = this.cache.get(key);
    if (hit === undefined) return undefined;
    this.cache.delete(key);
    this.cache.set(key, hit);
    if (hit instanceof Error) throw hit;
    return { grammar: hit, nodes: hit.stats().nodes, compileMs: 0 };
  }

  private remember(key: string, value: NativeGrammar | SchemaError): void {
    this.cache.set(key, value);
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }
}

/** A digest of JSON of [spec, thinking], so 64 cached schemas of up to a body's size each do not keep their text. */
function cacheKey(specJson: string): string {
  return createHash('sha256').update(specJson).digest('base64');
}
