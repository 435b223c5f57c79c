// A /v1/messages request -> what the chat path already takes: template messages, chat-shaped
// tools and tool_choice, thinking on or off. Anthropic puts tool results inside the user turn
// (tool_result blocks) and calls inside the assistant turn (tool_use blocks with an input
// object); Qwen3's template wants them as tool turns and tool_calls with JSON arguments.
import { badRequest } from '../errors.js';
import type { TemplateMessage } from '../openai/chat-messages.js';
import type { ToolChoice, ToolInput } from '../openai/schema-chat.js';
import type { AnswerFormat } from '../openai/vllm-fields.js';
import type { AnthropicContent, AnthropicTool, AnthropicToolChoice, MessagesRequest } from './schema-messages.js';

type Block = Exclude<AnthropicContent, string>[number];
/** A block and its path in the request, for errors that name it. */
interface Placed {
  b: Block;
  at: string;
}

/** The system prompt and messages as template turns. */
export function templateMessages(body: Pick<MessagesRequest, 'system' | 'messages'>): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  const system = systemText(body.system);
  if (system !== undefined) out.push({ role: 'system', content: system });
  for (const turn of combinedTurns(body.messages)) {
    if (typeof turn.content === 'string') out.push({ role: turn.role, content: turn.content });
    else if (turn.role === 'assistant') out.push(assistantTurn(turn.content));
    else if (turn.role === 'system') out.push({ role: 'system', content: turn.content.map(({ b, at }) => textOf(b, at, 'a system message takes text blocks only')).join('\n') });
    else out.push(...userTurns(turn.content));
  }
  return out;
}

/**
 * Consecutive messages of one role, as one turn: Anthropic combines them ("consecutive user or
 * assistant turns in your request will be combined into a single turn"), so a client that sends
 * its text and its tool results as two user messages gets the prompt one message would give.
 */
function combinedTurns(messages: MessagesRequest['messages']): { role: MessagesRequest['messages'][number]['role']; content: string | Placed[] }[] {
  const out: { role: MessagesRequest['messages'][number]['role']; content: string | Placed[] }[] = [];
  messages.forEach((m, i) => {
    const at = `messages[${i}].content`;
    // Anthropic's rule: a user turn with no blocks leaves nothing to answer.
    if (m.role !== 'assistant' && Array.isArray(m.content) && m.content.length === 0)
      throw badRequest(`${at} is empty: all messages must have non-empty content except for the optional final assistant message.`, at);
    const blocks = (): Placed[] => (typeof m.content === 'string' ? [{ b: { type: 'text', text: m.content }, at }] : m.content.map((b, j) => ({ b, at: `${at}[${j}]` })));
    const prev = out[out.length - 1];
    if (prev?.role !== m.role) {
      out.push({ role: m.role, content: typeof m.content === 'string' ? m.content : blocks() });
      return;
    }
    const before: Placed[] = typeof prev.content === 'string' ? [{ b: { type: 'text', text: prev.content }, at: `messages[${i - 1}].content` }] : prev.content;
    prev.content = [...before, ...blocks()];
  });
  return out;
}

function systemText(system: MessagesRequest['system']): string | undefined {
  if (system == null) return undefined;
  if (typeof system === 'string') return system;
  return system.map((b, j) => textOf(b, `system[${j}]`, 'the system prompt takes text blocks only')).join('\n');
}

function textOf(b: { type: string; text?: unknown }, at: string, rule: string): string {
  if (b.type !== 'text') throw badRequest(`${at} is a ${b.type} block; ${rule}.`, `${at}.type`);
  if (typeof b.text !== 'string') throw badRequest(`${at} is a text block without its "text" string.`, `${at}.text`, b.text === undefined ? 'missing_required_parameter' : 'invalid_type');
  return b.text;
}

/** Tool results become tool turns in order; the text between them, user turns. */
function userTurns(blocks: Placed[]): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  let text: string[] | undefined;
  for (const { b, at } of blocks) {
    if (b.type === 'text') {
      const t = field(b, 'text', at);
      if (text) text.push(t);
      else {
        text = [t];
        out.push({ role: 'user', content: '' });
      }
      out[out.length - 1].content = text.join('\n');
      continue;
    }
    if (b.type === 'tool_result') {
      text = undefined;
      const id = field(b, 'tool_use_id', at);
      out.push({ role: 'tool', content: resultText(b.content, `${at}.content`), tool_call_id: id });
      continue;
    }
    throw unsupportedBlock(b.type, `${at}.type`, 'text and tool_result');
  }
  return out;
}

function assistantTurn(blocks: Placed[]): TemplateMessage {
  const turn: TemplateMessage = { role: 'assistant', content: '' };
  for (const { b, at: where } of blocks) {
    if (b.type === 'text') turn.content += field(b, 'text', where);
    else if (b.type === 'thinking') turn.reasoning_content = (turn.reasoning_content ?? '') + field(b, 'thinking', where);
    else if (b.type === 'tool_use') {
      const input = b.input;
      if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badRequest(`${where}.input must be an object (the tool's arguments).`, `${where}.input`);
      // The input object itself: Qwen3's template writes a dict's arguments with tojson, as
      // transformers renders them (spaced, the way the model writes its calls), not compact text.
      (turn.tool_calls ??= []).push({ id: field(b, 'id', where), type: 'function', function: { name: field(b, 'name', where), arguments: input as Record<string, unknown> } });
    } else if (b.type !== 'redacted_thinking') throw unsupportedBlock(b.type, `${where}.type`, 'text, thinking and tool_use');
    // redacted_thinking is another model's encrypted reasoning: nothing this model can read.
  }
  return turn;
}

function resultText(content: unknown, at: string): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw badRequest(`${at} must be a string or an array of text blocks.`, at, 'invalid_type');
  return content
    .map((b: Block, j: number) => {
      if (b?.type !== 'text') throw unsupportedBlock(String(b?.type), `${at}[${j}].type`, 'text');
      return field(b, 'text', `${at}[${j}]`);
    })
    .join('\n');
}

function field(b: Block, name: string, at: string): string {
  const v = (b as Record<string, unknown>)[name];
  if (typeof v !== 'string') throw badRequest(`${at} is a ${b.type} block without its "${name}" string.`, `${at}.${name}`, v === undefined ? 'missing_required_parameter' : 'invalid_type');
  return v;
}

function unsupportedBlock(type: string, param: string, allowed: string): Error {
  return badRequest(`Content blocks of type '${type}' are not supported: this model reads text only. Send ${allowed} blocks.`, param, 'unsupported_content');
}

/** Client tools in the chat shape the template and the tool-call grammar read. */
export function chatTools(tools: readonly AnthropicTool[] | null | undefined): ToolInput[] | undefined {
  if (!tools || tools.length === 0) return undefined;
  return tools.map((t, i) => {
    if (t.type != null && t.type !== 'custom')
      throw badRequest(`Tools of type '${t.type}' are server tools, which this server does not run; send client tools ({"name", "description", "input_schema"}) and run them yourself.`, `tools[${i}].type`, 'unsupported_parameter');
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(t.name)) throw badRequest(`tools[${i}].name '${t.name}': a tool name is 1 to 64 letters, digits, _ . : or -.`, `tools[${i}].name`);
    const fn: ToolInput['function'] = { name: t.name };
    if (t.description != null) fn.description = t.description;
    if (t.input_schema != null) fn.parameters = t.input_schema;
    if (t.strict != null) fn.strict = t.strict;
    return { type: 'function', function: fn };
  });
}

export function chatToolChoice(choice: AnthropicToolChoice | null | undefined): { choice?: ToolChoice; parallel?: boolean } {
  if (!choice) return {};
  const parallel = 'disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use ? false : undefined;
  if (choice.type === 'auto') return { choice: 'auto', parallel };
  if (choice.type === 'any') return { choice: 'required', parallel };
  if (choice.type === 'none') return { choice: 'none' };
  return { choice: { type: 'function', function: { name: choice.name } }, parallel };
}

/** output_config.format (or the beta's output_format) as the answer format response_format would give. */
export function outputFormat(body: Pick<MessagesRequest, 'output_config' | 'output_format'>): AnswerFormat | undefined {
  const format = body.output_config?.format ?? body.output_format;
  if (!format) return undefined;
  return { type: 'json_schema', json_schema: { name: 'output', schema: format.schema, strict: true } };
}

/** thinking enabled (or adaptive) turns Qwen3's thinking on, disabled off; absent, the server's default. */
export function thinkingOn(thinking: MessagesRequest['thinking'], serverDefault: boolean): boolean {
  if (!thinking) return serverDefault;
  return thinking.type !== 'disabled';
}
