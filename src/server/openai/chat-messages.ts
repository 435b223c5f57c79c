// OpenAI chat messages -> the plain messages the checkpoint's chat template reads. Content parts
// become one string; tool calls keep their arguments as the JSON text the model once wrote.
import type { ChatMessage } from '../../chat/chat-template.js';
import { badRequest } from '../errors.js';
import type { ChatMessageInput, ToolInput } from './schema-chat.js';

export type TemplateMessage = ChatMessage & { content: string };

export function toTemplateMessages(messages: readonly ChatMessageInput[]): TemplateMessage[] {
  return messages.map((m, i) => {
    const content = contentText(m.content, i);
    const role = m.role === 'developer' ? 'system' : m.role;
    const out: TemplateMessage = { role, content };
    if (m.name !== undefined) out.name = m.name;
    if (m.role === 'assistant') {
      if (m.tool_calls && m.tool_calls.length > 0)
        out.tool_calls = m.tool_calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }));
      // The template renders it as the turn's think block (after the last user turn), whichever
      // name the client read it under: vLLM's `reasoning` or DeepSeek's `reasoning_content`.
      const reasoning = m.reasoning_content ?? m.reasoning;
      if (typeof reasoning === 'string') out.reasoning_content = reasoning;
    }
    if (m.role === 'tool' && m.tool_call_id !== undefined) out.tool_call_id = m.tool_call_id;
    return out;
  });
}

function contentText(content: ChatMessageInput['content'], index: number): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      // An assistant turn the model refused comes back from OpenAI clients as a refusal part;
      // its words are the turn's text, as vLLM and /v1/responses read them.
      const key = part.type === 'text' ? 'text' : part.type === 'refusal' ? 'refusal' : undefined;
      if (key === undefined)
        throw badRequest(
          `Content part type '${part.type}' is not supported: this model reads text only. Send {"type": "text", "text": ...} parts or a string.`,
          `messages[${index}].content[${j}].type`,
          'unsupported_content',
        );
      const value = part[key];
      // A part without its string is malformed, not of an unsupported type.
      if (typeof value !== 'string') throw badRequest(`Missing required parameter: 'messages[${index}].content[${j}].${key}'.`, `messages[${index}].content[${j}].${key}`, 'missing_required_parameter');
      return value;
    })
    .join('\n');
}

/**
 * vLLM's echo on chat: the final message's text, which each answer then starts with, when that
 * message is the assistant's (the role of the answer: a reply being continued); otherwise "".
 */
export function echoedMessage(echo: boolean | null | undefined, messages: readonly ChatMessageInput[]): string {
  const last = messages[messages.length - 1];
  return echo === true && last.role === 'assistant' ? contentText(last.content, messages.length - 1) : '';
}

/**
 * The turns to render and whether the answer continues the last one, for the APIs whose last
 * assistant message is a prefill (Anthropic's, Ollama's). One that ended in tool calls is answered
 * instead. An empty one (no text, no thinking) has nothing to continue: Anthropic allows "the
 * optional final assistant message" to be empty and Ollama answers it, so it is left out and the
 * answer is a fresh assistant turn.
 */
export function prefillPlan(turns: TemplateMessage[]): { turns: TemplateMessage[]; prefill: boolean } {
  const last = turns[turns.length - 1];
  if (last?.role !== 'assistant' || last.tool_calls) return { turns, prefill: false };
  if (last.content === '' && !last.reasoning_content) return { turns: turns.slice(0, -1), prefill: false };
  return { turns, prefill: true };
}

/** Tools as the template lists them (the OpenAI shape; Qwen3's template prints each as JSON). */
export function toTemplateTools(tools: readonly ToolInput[] | null | undefined): ToolInput[] | undefined {
  return tools && tools.length > 0 ? [...tools] : undefined;
}
