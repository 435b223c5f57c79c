// A /v1/responses request -> what the chat path already takes: template messages, chat-shaped
// tools and tool_choice, and an answer format. Input items become chat turns the way OpenAI's
// own models read them: a reasoning item and the function calls after an assistant message
// belong to that assistant turn, a function_call_output is the tool turn that answers a call.
import { badRequest } from '../errors.js';
import type { TemplateMessage } from './chat-messages.js';
import type { ToolChoice, ToolInput } from './schema-chat.js';
import type { AllowedToolsChoice, ResponseInputItem, ResponsesRequest, ResponseTextFormat, ResponseTool, ResponseToolChoice } from './schema-responses.js';
import type { AnswerFormat } from './vllm-fields.js';

/** Refuses the fields whose meaning this server cannot honour, naming each and what to send. */
export function refuseUnsupportedResponseFields(body: ResponsesRequest): void {
  if (body.background) throw unsupported('background', 'Background responses are not supported by this server; leave background out (or false) and wait for the answer, or stream it.');
  if (body.conversation !== undefined && body.conversation !== null)
    throw unsupported('conversation', 'Conversation objects are not supported by this server; chain turns with previous_response_id or send the whole input.');
  if (body.prompt !== undefined && body.prompt !== null) throw unsupported('prompt', 'Stored prompt templates are not supported by this server; send the input and instructions themselves.');
  // Compaction rewrites the conversation the model reads; an empty list asks for none.
  if (body.context_management != null && !(Array.isArray(body.context_management) && body.context_management.length === 0))
    throw unsupported('context_management', 'Context management (compaction) is not supported by this server; leave context_management out, and send truncation: "auto" to drop the oldest turns that do not fit.');
  // Moderation may block the input or the answer: served without it, the answer would not be the one asked for.
  if (body.moderation != null) throw unsupported('moderation', 'Moderation is not supported by this server; leave moderation out.');
  for (const [i, entry] of (body.include ?? []).entries())
    if (!includable.has(entry))
      throw unsupported(`include[${i}]`, `include "${entry}" is not supported by this server; it can include: ${[...includable].join(', ')}.`);
}

/** include entries this server can add to a response. */
const includable = new Set(['message.output_text.logprobs', 'reasoning.encrypted_content']);

/** The request's input items as chat turns (the instructions are not among them: see promptMessages). */
export function inputMessages(input: ResponsesRequest['input']): TemplateMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  const out: TemplateMessage[] = [];
  let reasoning: string | undefined;
  // The assistant turn that function calls and reasoning attach to, while no other turn followed it.
  let assistant: TemplateMessage | undefined;
  const newAssistant = (content: string): TemplateMessage => {
    const m: TemplateMessage = { role: 'assistant', content };
    if (reasoning !== undefined) m.reasoning_content = reasoning;
    reasoning = undefined;
    out.push(m);
    return m;
  };
  input.forEach((item, i) => {
    const at = `input[${i}]`;
    const type = item.type ?? 'message';
    if (type === 'message' && 'role' in item && 'content' in item) {
      const content = partsText(item.content as MessageContent, `${at}.content`);
      if (item.role === 'assistant') {
        // Consecutive assistant messages (one answer split in parts) stay one turn.
        if (assistant && !assistant.tool_calls) assistant.content += content;
        else assistant = newAssistant(content);
        return;
      }
      assistant = undefined;
      out.push({ role: item.role === 'developer' ? 'system' : (item.role as string), content });
      return;
    }
    if (type === 'function_call' && 'call_id' in item && 'arguments' in item && 'name' in item) {
      const call = { id: item.call_id as string, type: 'function' as const, function: { name: item.name as string, arguments: item.arguments as string } };
      if (!assistant) assistant = newAssistant('');
      (assistant.tool_calls ??= []).push(call);
      return;
    }
    if (type === 'function_call_output' && 'output' in item && 'call_id' in item) {
      assistant = undefined;
      out.push({ role: 'tool', content: partsText(item.output as MessageContent, `${at}.output`), tool_call_id: item.call_id as string });
      return;
    }
    if (type === 'reasoning') {
      const r = item as Extract<ResponseInputItem, { type: 'reasoning' }>;
      const text = (r.content ?? r.summary ?? []).map((p) => p.text).join('\n');
      // Reasoning comes before the answer it led to; given after one, it opens the next turn.
      assistant = undefined;
      reasoning = reasoning === undefined ? text : `${reasoning}\n${text}`;
      return;
    }
    const shape = itemShapes[type];
    if (shape) throw badRequest(`Invalid ${at}: a ${type} item is ${shape}.`, at, 'invalid_value');
    throw unsupported(`${at}.type`, `Input items of type "${type}" are not supported by this server; send messages, function_call, function_call_output and reasoning items.`);
  });
  // A reasoning item last of all has no answer after it: the template has nowhere to put it.
  return out;
}

/** What each item type this server reads must hold, for an item of that type that does not. */
const itemShapes: Record<string, string> = {
  message: '{"role": "user" | "system" | "developer" | "assistant", "content": a string or text parts}',
  function_call: '{"type": "function_call", "call_id", "name", "arguments" (a JSON string)}',
  function_call_output: '{"type": "function_call_output", "call_id", "output" (a string)}',
  reasoning: '{"type": "reasoning", "summary": [{"type": "summary_text", "text"}]}',
};

type MessageContent = string | { type: string; text?: string; refusal?: string }[];

function partsText(content: MessageContent, at: string): string {
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      const key = part.type === 'refusal' ? 'refusal' : part.type === 'input_text' || part.type === 'output_text' || part.type === 'text' ? 'text' : undefined;
      if (key !== undefined) {
        const value = part[key];
        if (typeof value === 'string') return value;
        // A text part without its text is a malformed part, not an unsupported one.
        throw badRequest(`${at}[${j}] is an ${part.type} part without its "${key}" string.`, `${at}[${j}].${key}`, value === undefined ? 'missing_required_parameter' : 'invalid_type');
      }
      throw badRequest(
        `Content part type '${part.type}' is not supported: this model reads text only. Send {"type": "input_text", "text": ...} parts or a string.`,
        `${at}[${j}].type`,
        'unsupported_content',
      );
    })
    .join('\n');
}

/** Function tools in the chat shape the template and the tool-call grammar read. */
export function chatTools(tools: readonly ResponseTool[] | null | undefined): ToolInput[] | undefined {
  if (!tools || tools.length === 0) return undefined;
  return tools.map((t, i) => {
    if (t.type !== 'function' || !('name' in t))
      throw unsupported(`tools[${i}].type`, `Tools of type "${t.type}" are not supported by this server (it runs no hosted tools); send {"type": "function", "name", "parameters"} tools and run them yourself.`);
    const f = t as Extract<ResponseTool, { name: string }>;
    const fn: ToolInput['function'] = { name: f.name };
    if (f.description != null) fn.description = f.description;
    if (f.parameters != null) fn.parameters = f.parameters;
    if (f.strict != null) fn.strict = f.strict;
    return { type: 'function', function: fn };
  });
}

/**
 * Tools and tool_choice in the chat shape. An allowed_tools choice narrows the tools to the ones
 * it lists, with its mode as the choice: the model sees and may call only those.
 */
export function chatToolsAndChoice(tools: readonly ResponseTool[] | null | undefined, choice: ResponseToolChoice | null | undefined): { tools?: ToolInput[]; choice?: ToolChoice } {
  const all = chatTools(tools);
  if (choice == null) return { tools: all };
  if (typeof choice === 'string') return { tools: all, choice };
  // The schema checked both shapes.
  if (choice.type === 'function') return { tools: all, choice: { type: 'function', function: { name: choice.name as string } } };
  if (choice.type === 'allowed_tools') return { tools: allowedTools(all ?? [], choice as AllowedToolsChoice), choice: (choice as AllowedToolsChoice).mode };
  throw unsupported('tool_choice', `tool_choice of type "${choice.type}" is not supported by this server; send "none", "auto", "required", {"type": "function", "name": ...} or {"type": "allowed_tools", "mode", "tools": [{"type": "function", "name": ...}]}.`);
}

function allowedTools(tools: ToolInput[], choice: AllowedToolsChoice): ToolInput[] {
  const byName = new Map(tools.map((t) => [t.function.name, t]));
  const out = choice.tools.map((t, i) => {
    const at = `tool_choice.tools[${i}]`;
    if (t.type !== 'function') throw unsupported(`${at}.type`, `allowed_tools entries of type "${t.type}" are not supported by this server (it runs no hosted tools); list function tools as {"type": "function", "name": ...}.`);
    const tool = t.name !== undefined ? byName.get(t.name) : undefined;
    if (!tool) throw badRequest(`${at} names the function '${t.name ?? ''}', which is not in tools. Add it to tools or name one of: ${[...byName.keys()].join(', ')}.`, `${at}.name`);
    return tool;
  });
  if (out.length === 0) throw badRequest('tool_choice.tools is empty: list the functions the model may call.', 'tool_choice.tools', 'empty_array');
  return out;
}

/** text.format -> the answer format response_format would give. */
export function textAnswerFormat(format: ResponseTextFormat | null | undefined): AnswerFormat | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  const jsonSchema: { name: string; schema: Record<string, unknown>; description?: string; strict?: boolean | null } = { name: format.name, schema: format.schema };
  if (format.description != null) jsonSchema.description = format.description;
  if (format.strict != null) jsonSchema.strict = format.strict;
  return { type: 'json_schema', json_schema: jsonSchema };
}

/**
 * Thinking for this response: reasoning.effort "none" or "minimal" turns Qwen3's thinking off,
 * any other effort turns it on; vLLM's chat_template_kwargs.enable_thinking and grps_trtllm's
 * enable_thinking are read too; otherwise the server's default.
 */
export function responseThinking(body: ResponsesRequest, kwarg: boolean | undefined, serverDefault: boolean): boolean {
  const effort = body.reasoning?.effort;
  if (effort != null) return effort !== 'none' && effort !== 'minimal';
  return body.enable_thinking ?? kwarg ?? serverDefault;
}

function unsupported(param: string, message: string) {
  return badRequest(message, param, 'unsupported_parameter');
}
