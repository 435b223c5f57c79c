// response_format and tool_choice: checked here against the request, then handed to the
// structured-output compiler when one is plugged in. Without one, a request that needs its
// output constrained gets a 400 instead of a silently unconstrained answer.
import type { AnswerThinking } from '../../structured/answer-grammar.js';
import { badRequest, type ApiError } from '../errors.js';
import type { ToolChoice, ToolInput } from './schema-chat.js';
import type { AnswerFormat } from './vllm-fields.js';

/** What a structured-output compiler receives; it returns the engine's constraint handle. */
export interface ConstraintRequest {
  /** response_format, or vLLM's guided_json / guided_choice (vllm-fields.ts). */
  responseFormat?: Exclude<AnswerFormat, { type: 'text' }>;
  /**
   * "required" or a named function: the turn must be tool calls to these tools; exactly one
   * when `parallel` is false (parallel_tool_calls: false), one or more otherwise. `orFormat`
   * ("auto" beside a JSON format): the turn is those calls or the formatted answer.
   */
  toolCalls?: { tools: ToolInput[]; only?: string; parallel?: boolean; orFormat?: boolean };
  /** How the answer begins: with a think block the model opens (true), inside one the prompt opened ('open'), or with the answer (false). */
  thinking: AnswerThinking;
  /** The request field the format came in, for errors that name it (response_format; text.format on /v1/responses). */
  formatParam?: string;
}

export interface ConstraintCompiler {
  /** The handle, or a promise of it; throws (or rejects with) ApiError 400 naming an unsupported schema feature. */
  compile(req: ConstraintRequest): unknown;
  /** tool_choice "none" with tools listed: a constraint under which no tool call can be opened. */
  forbidToolCalls?(): unknown;
  /** Ends what the compiler runs beside the server (its thread); a later compile starts it again. */
  close?(): Promise<void>;
}

export interface ToolPlan {
  /** Tools the template lists in the prompt. */
  tools?: ToolInput[];
  /** Parse `<tool_call>` blocks out of the answer (false for tool_choice "none"). */
  parseCalls: boolean;
  /** The output must follow a constraint: constrain() compiles it. */
  constrained: boolean;
  /**
   * The engine constraint handle (undefined when the output is free), for an answer that begins
   * as `thinking` says. Compiled once the prompt is rendered: a template may open the think block
   * in its generation prompt, and the grammar must then start inside it. Rejects with the 400 of
   * a schema that cannot be enforced.
   */
  constrain(thinking: AnswerThinking): Promise<unknown>;
  /** tool_choice required, or named (`only`): the answer is a call. */
  forced?: { only?: string };
  /**
   * parallel_tool_calls false: the answer ends at its first call. A forced choice's grammar
   * already allows only one; under "auto" nothing constrains the model, so a later call is cut
   * off instead of returned (as vLLM drops it).
   */
  singleToolCall?: boolean;
}

export function planTools(
  tools: ToolInput[] | null | undefined,
  choice: ToolChoice | null | undefined,
  responseFormat: AnswerFormat | null | undefined,
  compiler: ConstraintCompiler | undefined,
  parallelToolCalls?: boolean | null,
  /** The field the answer format came in: errors name it (each API spells it its own way). */
  formatParam = 'response_format',
): ToolPlan {
  const list = tools && tools.length > 0 ? tools : undefined;
  const names = new Set(list?.map((t) => t.function.name) ?? []);
  if (list && names.size !== list.length) throw badRequest('Two tools have the same function name; give each tool a unique name.', 'tools');
  const mode = choice ?? (list ? 'auto' : 'none');
  // "required" or a named function without tools cannot be honoured (OpenAI refuses it too);
  // "auto" and "none" ask for nothing, and many clients send "auto" on every request.
  if (!list && (mode === 'required' || typeof mode === 'object')) throw toolChoiceWithoutTools(mode);
  let only: string | undefined;
  if (typeof mode === 'object') {
    only = mode.function.name;
    if (!names.has(only)) throw badRequest(`tool_choice names the function '${only}', which is not in tools. Add it to tools or name one of: ${[...names].join(', ')}.`, 'tool_choice');
  }
  const request: Omit<ConstraintRequest, 'thinking'> = { formatParam };
  if (responseFormat && responseFormat.type !== 'text') request.responseFormat = responseFormat;
  if (list && (mode === 'required' || only !== undefined)) {
    request.toolCalls = { tools: list, only };
    // A named function is called once (as vLLM and OpenAI do) unless parallel calls are asked for.
    if (parallelToolCalls === false || (only !== undefined && parallelToolCalls !== true)) request.toolCalls.parallel = false;
  }
  // A forced tool_choice decides the turn: the answer is a call, with no message text for the
  // format to shape. OpenAI's APIs and vLLM (whose tool schema replaces the format's) accept
  // both, and clients send both wherever tools meet a typed final answer: the OpenAI Agents SDK
  // with an output_type and tool_choice "required" sends the format on every turn.
  if (request.toolCalls) delete request.responseFormat;
  // Under "auto" a JSON format shapes the answer, not the turn: OpenAI's models may still call
  // tools and give the formatted answer after their results (the Agents SDK's tools with an
  // output_type), so the grammar lets the turn be either. vLLM's guided choice, regex and
  // grammar hold the whole output, as in vLLM.
  else if (list && mode === 'auto' && (request.responseFormat?.type === 'json_schema' || request.responseFormat?.type === 'json_object'))
    request.toolCalls = { tools: list, orFormat: true, ...(parallelToolCalls === false ? { parallel: false } : {}) };
  let constrain: ToolPlan['constrain'] = async () => undefined;
  let constrained = false;
  if (request.responseFormat || request.toolCalls) {
    if (compiler) {
      constrain = (thinking) => compileOrRefuse(compiler, { ...request, thinking });
      constrained = true;
    } else if (request.responseFormat)
      throw badRequest(
        `${formatParam} ${request.responseFormat.type} is not supported by this server yet; send {"type": "text"} or leave it out.`,
        formatParam,
        'unsupported_response_format',
      );
    // A forced tool_choice without a compiler is accepted: the prompt lists the tools and the
    // answer's calls are parsed, but the model is not held to them.
  } else if (list && mode === 'none' && compiler?.forbidToolCalls) {
    constrain = async () => compiler.forbidToolCalls!();
    constrained = true;
  }
  const forced = list && (mode === 'required' || only !== undefined) ? { only } : undefined;
  const parseCalls = list !== undefined && mode !== 'none';
  return {
    tools: list,
    parseCalls,
    constrained,
    constrain,
    ...(forced ? { forced } : {}),
    ...(parseCalls && parallelToolCalls === false ? { singleToolCall: true } : {}),
  };
}

function toolChoiceWithoutTools(mode: 'required' | { function: { name: string } }): ApiError {
  const asked = mode === 'required' ? 'a tool call ("required")' : `a call of '${mode.function.name}'`;
  const fix = mode === 'required' ? 'Send the functions the model may call in tools' : `Send the function '${mode.function.name}' in tools`;
  return badRequest(
    `Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified; it asks for ${asked}, and tools is missing or empty. ${fix}, or leave tool_choice out.`,
    'tool_choice',
  );
}

// A schema nested deeper than the compiler's recursion can go is the client's to flatten, not
// a server fault: a 400 naming the field instead of a 500.
async function compileOrRefuse(compiler: ConstraintCompiler, request: ConstraintRequest): Promise<unknown> {
  try {
    return await compiler.compile(request);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const param = request.responseFormat ? (request.formatParam ?? 'response_format') : 'tools';
    throw badRequest(`The ${param === 'tools' ? 'tool parameters are' : 'schema is'} nested too deeply to compile (${err.message}); flatten ${param === 'tools' ? 'them' : 'it'}.`, param, 'invalid_value');
  }
}
