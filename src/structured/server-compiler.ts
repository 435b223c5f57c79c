// The server's structured-output compiler (src/server/openai/constraints.ts ConstraintCompiler):
// response_format and forced tool_choice become an engine constraint, or a 400 that names
// the schema feature that cannot be enforced and where it is.
import type { Tokenizer } from '../chat/tokenizer.js';
import { badRequest } from '../server/errors.js';
import type { ConstraintCompiler, ConstraintRequest } from '../server/openai/constraints.js';
import { ToolSchemaError, type AnswerSpec } from './answer-grammar.js';
import { SchemaError } from './schema-errors.js';
import { StructuredOutputs, type StructuredOutputsOptions } from './structured-outputs.js';

/** What a constraint request asks the answer to be. */
export function answerSpec(req: ConstraintRequest): AnswerSpec | undefined {
  const spec = answerKind(req);
  // Set only where an option is on (vllm-fields.ts), so the default layout keeps one cache entry per schema.
  const json = req.responseFormat?.json;
  if (spec && json) spec.json = json;
  const calls = req.toolCalls;
  if (spec && calls?.orFormat) spec.orToolCalls = { tools: toolSpecs(calls.tools), ...(calls.parallel === false && { parallel: false }) };
  return spec;
}

const toolSpecs = (tools: NonNullable<ConstraintRequest['toolCalls']>['tools']) => tools.map((t) => ({ name: t.function.name, parameters: t.function.parameters }));

function answerKind(req: ConstraintRequest): AnswerSpec | undefined {
  const rf = req.responseFormat;
  if (rf?.type === 'json_object') return { kind: 'json_object' };
  if (rf?.type === 'json_schema') return { kind: 'json_schema', schema: rf.json_schema.schema ?? true };
  if (rf?.type === 'choice') return { kind: 'choice', choices: rf.choices };
  if (rf?.type === 'regex') return { kind: 'regex', pattern: rf.pattern };
  if (rf?.type === 'grammar') return { kind: 'grammar', grammar: rf.grammar };
  if (rf?.type === 'structural_tag') return { kind: 'structural_tag', structures: rf.structures, triggers: rf.triggers };
  if (req.toolCalls) {
    const tools = req.toolCalls.tools.filter((t) => req.toolCalls!.only === undefined || t.function.name === req.toolCalls!.only);
    return { kind: 'tool_calls', tools: toolSpecs(tools), parallel: req.toolCalls.parallel ?? true };
  }
  return undefined;
}

/**
 * The JSON mode to fall back on when a schema cannot be enforced, as the API the schema came in
 * spells it: Ollama's is format "json", Anthropic's Messages API has none, OpenAI's and vLLM's
 * is response_format json_object. Advice the client's API cannot take only leads to another 400.
 */
function jsonModeFallback(param: string): string | undefined {
  if (param === 'format') return 'send "format": "json"';
  if (param === 'output_config.format' || param === 'output_format') return undefined;
  return 'use {"type": "json_object"}';
}

export class ServerConstraintCompiler implements ConstraintCompiler {
  readonly outputs: StructuredOutputs;

  constructor(tokenizer: Tokenizer, options: StructuredOutputsOptions = {}) {
    this.outputs = new StructuredOutputs(tokenizer, options);
  }

  /** On the compiler thread (StructuredOutputs.compileOffThread): the event loop streams on meanwhile. */
  async compile(req: ConstraintRequest): Promise<unknown> {
    const spec = answerSpec(req);
    if (!spec) return undefined;
    // Under "auto" the calls' arguments were never enforced: a tool schema the compiler cannot
    // take leaves the turn to the format alone rather than refusing the request (and a format it
    // cannot take is refused below, as without tools).
    if (spec.orToolCalls) {
      try {
        return (await this.outputs.compileOffThread(spec, req.thinking)).grammar.constraint();
      } catch (err) {
        if (!(err instanceof SchemaError)) throw err;
        delete spec.orToolCalls;
      }
    }
    try {
      // The engine fills in the request's max_tokens and stop tokens when the sequence starts.
      return (await this.outputs.compileOffThread(spec, req.thinking)).grammar.constraint();
    } catch (err) {
      if (!(err instanceof SchemaError)) throw err;
      if (err instanceof ToolSchemaError) {
        throw badRequest(`The parameters of tool '${err.tool}' cannot be enforced: ${err.message.replace(/^tool "[^"]*": /, '')}. Simplify that schema or use tool_choice "auto".`, 'tools', 'unsupported_schema');
      }
      const param = req.formatParam ?? 'response_format';
      if (spec.kind === 'regex')
        throw badRequest(`${param} cannot be enforced: ${err.reason}. Write it with the constructs docs/structured-outputs.md lists (no lookaround, backreferences or word boundaries).`, param, 'unsupported_schema');
      if (spec.kind === 'grammar')
        throw badRequest(`${param} cannot be enforced: ${err.reason}. Send a GBNF grammar as docs/structured-outputs.md describes it.`, param, 'unsupported_schema');
      const fallback = jsonModeFallback(param);
      throw badRequest(`${param} cannot be enforced: ${err.message}. Simplify the schema${fallback ? ` or ${fallback}` : ''}.`, param, 'unsupported_schema');
    }
  }

  /** Builds what every constrained request needs (the vocabulary trie) ahead of the first one. */
  warm(): void {
    this.outputs.warm();
  }

  /** Ends the compiler thread (the server's close). */
  close(): Promise<void> {
    return this.outputs.close();
  }

  /** tool_choice "none": the answer may be any text but never a tool call. */
  forbidToolCalls(): unknown {
    return this.outputs.withoutToolCalls().constraint();
  }
}
