// Compiled grammars for one tokenizer, cached by what they enforce: the same schema (or tool
// list) compiles once, and its matcher, with every token mask it has computed, is shared by all
// later requests that use it. Failed compilations are cached too, so a refused schema is
// refused at once the next time.
import { createHash } from 'node:crypto';
import type { Tokenizer } from '../chat/tokenizer.js';
import { answerGrammar, specialTokens, ToolSchemaError, type AnswerSpec, type AnswerThinking, type SpecialTokens } from './answer-grammar.js';
import { buildAutomaton, GrammarTooLarge } from './automaton.js';
import { bytes, RuleSet, special, star, alt, type Expr, type Grammar } from './grammar.js';
import { nativeVocabulary, structuredAddon, type NativeGrammar, type NativeVocabulary } from './native.js';
import { SchemaError } from './schema-errors.js';

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
    // A digest, so 64 cached schemas of up to a body's size each do not keep their text.
    const key = createHash('sha256').update(JSON.stringify([spec, thinking])).digest('base64');
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      if (hit instanceof SchemaError) throw hit;
      return { grammar: hit, nodes: hit.stats().nodes, compileMs: 0 };
    }
    const t0 = performance.now();
    let grammar: NativeGrammar;
    let rules: Grammar | undefined;
    try {
      rules = answerGrammar(spec, thinking, this.tokens);
      grammar = this.build(rules);
    } catch (err) {
      const refused = asSchemaError(err, rules, spec);
      // A deadline depends on how busy the machine is: the same schema may build next time.
      const timedOut = err instanceof GrammarTooLarge && err.timedOut;
      if (refused && !timedOut) this.remember(key, refused);
      throw refused ?? err;
    }
    this.remember(key, grammar);
    return { grammar, nodes: grammar.stats().nodes, compileMs: performance.now() - t0 };
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
    const automaton = buildAutomaton(g, { deadlineMs: this.buildDeadlineMs });
    this.vocab ??= nativeVocabulary(this.tokenizer);
    return structuredAddon().compileGrammar(this.vocab, automaton.data);
  }

  private remember(key: string, value: NativeGrammar | SchemaError): void {
    this.cache.set(key, value);
    while (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
  }
}

/** Refusals a client can fix (schema features, size, unsatisfiable schemas) as SchemaErrors. */
function asSchemaError(err: unknown, rules: Grammar | undefined, spec: AnswerSpec): SchemaError | undefined {
  if (err instanceof SchemaError) return err;
  if (err instanceof GrammarTooLarge) {
    const where = (err.rule !== undefined && rules?.where?.get(err.rule)) || '#';
    const refused = new SchemaError(`this part of the schema is too large to enforce: ${err.reason}`, where);
    // Rules of tool parameters are named t<index>:...; say which tool.
    const tool = spec.kind === 'tool_calls' ? /^t(\d+):/.exec(err.rule ?? '') : null;
    return tool && spec.kind === 'tool_calls' ? new ToolSchemaError(spec.tools[Number(tool[1])].name, refused) : refused;
  }
  if (err instanceof Error && err.message === 'no output satisfies the grammar')
    return new SchemaError('no JSON value satisfies the schema within the supported limits (e.g. recursion deeper than 6 levels is required)', '#');
  return undefined;
}
