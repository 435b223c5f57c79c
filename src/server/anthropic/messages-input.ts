// A /v1/messages request -> what the chat path already takes: template messages, chat-shaped
// tools and tool_choice, thinking on or off. Anthropic puts tool results inside the user turn
// (tool_result blocks) and calls inside the assistant turn (tool_use blocks with an input
// object); Qwen3's template wants them as tool turns and tool_calls with JSON arguments.
import { badRequest } from '../errors.js';
import type { TemplateMessage } from '../openai/chat-messages.js';
import type { ToolChoice, ToolInput } from '../openai/schema-chat.js';
import type { AnthropicContent, AnthropicTool, AnthropicToolChoice, MessagesRequest } from './schema-messages.js';

type Block = Exclude<AnthropicContent, string>[number];

/** The system prompt and messages as template turns. */
export function templateMessages(body: Pick<MessagesRequest, 'system' | 'messages'>): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  const system = systemText(body.system);
  if (system !== undefined) out.push({ role: 'system', content: system });
  body.messages.forEach((m, i) => {
    const at = `messages[${i}].content`;
    if (typeof m.content === 'string') {
      out.push({ role: m.role, content: m.content });
      return;
    }
    if (m.role === 'assistant') out.push(assistantTurn(m.content, at));
    else out.push(...userTurns(m.content, at));
  });
  return out;
}

function systemText(system: MessagesRequest['system']): string | undefined {
  if (system == null) return undefined;
  if (typeof system === 'string') return system;
  return system
    .map((b, j) => {
      if (b.type !== 'text' || typeof b.text !== 'string') throw badRequest(`system[${j}] is a ${b.type} block; the system prompt takes text blocks only.`, `system[${j}].type`);
      return b.text;
    })
    .join('\n');
}

/** Tool results become tool turns in order; the text between them, user turns. */
function userTurns(blocks: Block[], at: string): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  let text: string[] | undefined;
  blocks.forEach((b, j) => {
    if (b.type === 'text') {
      const t = field(b, 'text', `${at}[${j}]`);
      if (text) text.push(t);
      else {
        text = [t];
        out.push({ role: 'user', content: '' });
      }
      out[out.length - 1].content = text.join('\n');
      return;
    }
    if (b.type === 'tool_result') {
      text = undefined;
      const id = field(b, 'tool_use_id', `${at}[${j}]`);
      out.push({ role: 'tool', content: resultText(b.content, `${at}[${j}].content`), tool_call_id: id });
      return;
    }
    throw unsupportedBlock(b.type, `${at}[${j}].type`, 'text and tool_result');
  });
  return out;
}

function assistantTurn(blocks: Block[], at: string): TemplateMessage {
  const turn: TemplateMessage = { role: 'assistant', content: '' };
  blocks.forEach((b, j) => {
    const where = `${at}[${j}]`;
    if (b.type === 'text') turn.content += field(b, 'text', where);
    else if (b.type === 'thinking') turn.reasoning_content = (turn.reasoning_content ?? '') + field(b, 'thinking', where);
    else if (b.type === 'tool_use') {
      const input = b.input;
      if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badRequest(`${where}.input must be an object (the tool's arguments).`, `${where}.input`);
      (turn.tool_calls ??= []).push({ id: field(b, 'id', where), type: 'function', function: { name: field(b, 'name', where), arguments: JSON.stringify(input) } });
    } else if (b.type !== 'redacted_thinking') throw unsupportedBlock(b.type, `${where}.type`, 'text, thinking and tool_use');
    // redacted_thinking is another model's encrypted reasoning: nothing this model can read.
  });
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

/** thinking enabled (or adaptive) turns Qwen3's thinking on, disabled off; absent, the server's default. */
export function thinkingOn(thinking: MessagesRequest['thinking'], serverDefault: boolean): boolean {
  if (!thinking) return serverDefault;
  return thinking.type !== 'disabled';
}
