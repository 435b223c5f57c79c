// The whole answer as one grammar: a free-text think block (when thinking is on, or the rest of
// one the prompt opened), then a JSON value (response_format), one of a list of strings (vLLM's
// guided_choice), text that a regular expression matches whole (vLLM's guided_regex), text of a
// GBNF grammar (vLLM's guided_grammar), or one or more tool calls in Qwen3's format (or either a
// JSON value or tool calls, for tool_choice "auto" beside a JSON format):
//   <tool_call>\n{"name": "<one of the tools>", "arguments": <that tool's parameters>}\n</tool_call>
// separated by "\n", exactly as the chat template writes them back into later prompts.
import type { Tokenizer } from '../chat/tokenizer.js';
import { alt, call, freeText, lit, literalChoice, rep, RuleSet, seq, special, star, type Expr, type Grammar, type JsonOptions } from './grammar.js';
import { GbnfError, parseGbnf, ruleName as gbnfRule } from './gbnf.js';
import { anyJsonObject } from './json-grammar.js';
import { larkToGbnf, looksLikeLark } from './lark.js';
import { RegexError, wholeTextRegex } from './regex.js';
import { SchemaCompiler } from './schema-compiler.js';
import { structuralTagExpr, type StructuralTagSpec } from './structural-tag.js';
import { isObject, SchemaError } from './schema-errors.js';

export interface ToolSpec {
  name: string;
  /** JSON Schema of the arguments; undefined: the tool takes none ("{}"). */
  parameters?: unknown;
}

/**
 * What the answer must be, and (json) how its JSON is laid out. `orToolCalls`: the answer may
 * instead be calls of these tools (tool_choice "auto" beside a JSON format).
 */
export type AnswerSpec = AnswerKind & { json?: JsonOptions; orToolCalls?: { tools: ToolSpec[]; parallel?: boolean } };

type AnswerKind =
  | { kind: 'json_object' }
  | { kind: 'json_schema'; schema: unknown }
  /** Exactly one of these strings, as raw text (not a JSON string). */
  | { kind: 'choice'; choices: string[] }
  /** Raw text that the ECMAScript regular expression matches from start to end. */
  | { kind: 'regex'; pattern: string }
  /** Raw text that rule `root` of the GBNF grammar matches (gbnf.ts). */
  | { kind: 'grammar'; grammar: string }
  /** parallel false (parallel_tool_calls: false): exactly one call; otherwise one or more. */
  | { kind: 'tool_calls'; tools: ToolSpec[]; parallel?: boolean }
  /** Free text whose triggers each open one of the structures (structural-tag.ts). */
  | ({ kind: 'structural_tag' } & StructuralTagSpec);

/**
 * How the answer begins: true, with a think block the model opens itself; 'open', inside a think
 * block the prompt opened (templates whose generation prompt ends in `<think>\n`); false, with
 * the answer proper.
 */
export type AnswerThinking = boolean | 'open';

export interface SpecialTokens {
  thinkOpen?: number;
  thinkClose?: number;
  toolCallOpen?: number;
  toolCallClose?: number;
}

export function specialTokens(tokenizer: Tokenizer): SpecialTokens {
  return {
    thinkOpen: tokenizer.tokenToId('<think>'),
    thinkClose: tokenizer.tokenToId('</think>'),
    toolCallOpen: tokenizer.tokenToId('<tool_call>'),
    toolCallClose: tokenizer.tokenToId('</tool_call>'),
  };
}

/** A SchemaError from one tool's parameters, so the 400 can say which tool. */
export class ToolSchemaError extends SchemaError {
  /** The refusal inside the tool's parameters, without the tool's name. */
  readonly toolReason: string;

  constructor(
    readonly tool: string,
    cause: SchemaError,
  ) {
    super(`tool "${tool}": ${cause.reason}`, cause.path);
    this.toolReason = cause.reason;
  }
}

export function answerGrammar(spec: AnswerSpec, thinking: AnswerThinking, tokens: SpecialTokens): Grammar {
  const rules = new RuleSet(spec.json);
  // One budget of sub-schemas for the whole answer, every tool's parameters together.
  const budget = { parts: 0 };
  let answer: Expr;
  if (spec.kind === 'json_object') answer = anyJsonObject(rules);
  else if (spec.kind === 'json_schema') answer = new SchemaCompiler(rules, 'r:', spec.schema, budget).compileRoot();
  else if (spec.kind === 'choice') answer = choiceExpr(rules, spec.choices);
  else if (spec.kind === 'regex') answer = regexExpr(rules, spec.pattern);
  else if (spec.kind === 'grammar') answer = gbnfExpr(rules, spec.grammar);
  else if (spec.kind === 'structural_tag') answer = structuralTagExpr(rules, spec, budget);
  else answer = toolCalls(rules, spec.tools, tokens, spec.parallel ?? true, budget);
  // As OpenAI's models do with tools and a format: call tools, or give the formatted answer.
  if (spec.orToolCalls) answer = alt(answer, toolCalls(rules, spec.orToolCalls.tools, tokens, spec.orToolCalls.parallel ?? true, budget));
  if (thinking !== false && tokens.thinkOpen !== undefined && tokens.thinkClose !== undefined) {
    // With thinking on, Qwen3 answers "<think>\n...\n</think>\n\n" and then the answer proper;
    // after a prompt that opened the block it writes only the rest, from the body on. The block
    // may be empty, and the matcher bounds its length (think_budget).
    const rest = seq(freeText, special(tokens.thinkClose), rep(lit('\n'), 0, 2));
    answer = seq(thinking === 'open' ? rest : seq(special(tokens.thinkOpen), rest), answer);
  }
  return rules.grammar(answer);
}

/** A choice list's bytes bound: past it the trie is more grammar than a request may ask for. */
export const MAX_CHOICE_BYTES = 1_000_000;

function choiceExpr(rules: RuleSet, choices: readonly string[]): Expr {
  const encoder = new TextEncoder();
  const encoded = choices.map((c) => encoder.encode(c));
  const total = encoded.reduce((sum, b) => sum + b.length, 0);
  if (total > MAX_CHOICE_BYTES) throw new SchemaError(`the choices hold ${total} bytes, more than the ${MAX_CHOICE_BYTES} that can be enforced`, '#');
  // A trie as a rule of its own becomes automaton states directly (grammar.ts literalChoice).
  return rules.define('choice', () => literalChoice(encoded));
}

function regexExpr(rules: RuleSet, pattern: string): Expr {
  try {
    return rules.define('regex', () => wholeTextRegex(pattern));
  } catch (err) {
    if (err instanceof RegexError) throw new SchemaError(`the pattern ${JSON.stringify(pattern)}: ${err.message}`, '#');
    throw err;
  }
}

function gbnfExpr(rules: RuleSet, text: string): Expr {
  let parsed: Map<string, Expr>;
  try {
    parsed = parseGbnf(looksLikeLark(text) ? larkToGbnf(text) : text);
  } catch (err) {
    if (err instanceof GbnfError) throw new SchemaError(`the grammar: ${err.message}`, '#');
    throw err;
  }
  for (const [name, e] of parsed) rules.define(gbnfRule(name), () => e);
  return call(gbnfRule('root'));
}

function toolCalls(rules: RuleSet, tools: ToolSpec[], tokens: SpecialTokens, parallel: boolean, budget: { parts: number }): Expr {
  if (tokens.toolCallOpen === undefined || tokens.toolCallClose === undefined)
    throw new SchemaError('the tokenizer has no <tool_call> tokens, so tool calls cannot be enforced', '#');
  if (tools.length === 0) throw new SchemaError('no tools to call', '#');
  const bodies = tools.map((tool, i) => {
    let args: Expr;
    try {
      args = argumentsExpr(rules, tool, i, budget);
    } catch (err) {
      throw err instanceof SchemaError ? new ToolSchemaError(tool.name, err) : err;
    }
    return seq(lit(`{"name": ${JSON.stringify(tool.name)}, "arguments": `), args, lit('}'));
  });
  const call = rules.define('tool-call', () =>
    seq(special(tokens.toolCallOpen!), lit('\n'), alt(...bodies), lit('\n'), special(tokens.toolCallClose!)),
  );
  return parallel ? seq(call, star(seq(lit('\n'), call))) : call;
}

function argumentsExpr(rules: RuleSet, tool: ToolSpec, index: number, budget: { parts: number }): Expr {
  const p = tool.parameters;
  if (p === undefined) return lit('{}');
  if (!isObject(p)) throw new SchemaError('"parameters" must be a JSON Schema object', '#');
  const keys = Object.keys(p).filter((k) => !['title', 'description', '$schema'].includes(k));
  if (keys.length === 0) return anyJsonObject(rules);
  if (p.type !== undefined && p.type !== 'object') throw new SchemaError('"parameters" must describe an object ("type": "object")', '#');
  return new SchemaCompiler(rules, `t${index}:`, { type: 'object', ...p }, budget).compileRoot();
}
