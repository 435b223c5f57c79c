// A chat request's messages -> the template's options. /v1/chat/completions and /tokenize both
// build them here, so the count /tokenize gives is the prompt chat generates from, whatever the
// flags (continue_final_message, add_generation_prompt, thinking, template kwargs).
import { keepWrittenNumbers } from '../../parse/json-numbers.js';
import { objectInOrder } from '../../util/key-order.js';
import type { RenderOptions } from '../context.js';
import { badRequest } from '../errors.js';
import type { ChatMessageInput } from './schema-chat.js';
import type { RequestTemplates } from './request-templates.js';
import { unsupported } from './vllm-fields.js';

/** The request fields that shape the rendered prompt. */
export interface ChatRenderFields {
  messages: ChatMessageInput[];
  enable_thinking?: boolean | null;
  chat_template_kwargs?: Record<string, unknown> | null;
  reasoning_effort?: string | null;
  add_generation_prompt?: boolean | null;
  continue_final_message?: boolean | null;
  documents?: Record<string, unknown>[] | null;
  chat_template?: unknown;
}

/** chat_template_kwargs.enable_thinking (vLLM's spelling), checked to be a boolean. */
export function thinkingKwarg(kwargs: Record<string, unknown> | null | undefined): boolean | undefined {
  const v = kwargs?.enable_thinking;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest('chat_template_kwargs.enable_thinking must be true or false.', 'chat_template_kwargs.enable_thinking');
  return v;
}

/**
 * Thinking for a chat request. reasoning_effort (OpenAI's field) maps as /v1/responses maps
 * reasoning.effort: "none" and "minimal" turn Qwen3's thinking off, any other effort on. An
 * explicit enable_thinking (or chat_template_kwargs.enable_thinking) that says the opposite is a
 * 400 rather than one of the two silently losing; when they agree, or only one is sent, it applies.
 */
export function chatThinking(body: Pick<ChatRenderFields, 'enable_thinking' | 'chat_template_kwargs' | 'reasoning_effort'>, serverDefault: boolean): boolean {
  const kwarg = thinkingKwarg(body.chat_template_kwargs);
  const explicit = body.enable_thinking ?? kwarg;
  const effort = body.reasoning_effort;
  if (effort == null) return explicit ?? serverDefault;
  const byEffort = effort !== 'none' && effort !== 'minimal';
  if (explicit !== undefined && explicit !== byEffort) {
    const field = body.enable_thinking != null ? 'enable_thinking' : 'chat_template_kwargs.enable_thinking';
    throw badRequest(
      `reasoning_effort "${effort}" turns thinking ${byEffort ? 'on' : 'off'}, and ${field} ${explicit} turns it ${explicit ? 'on' : 'off'}; send one of them.`,
      'reasoning_effort',
    );
  }
  return byEffort;
}

/**
 * chat_template_kwargs other than enable_thinking (which has its own path) go to the template as
 * is: the copy keeps the client's key order and the text of the numbers it holds (1.0 stays 1.0).
 */
export function extraKwargs(kwargs: Record<string, unknown> | null | undefined): Record<string, unknown> | undefined {
  if (!kwargs) return undefined;
  const rest = withMembers(kwargs, Object.entries(kwargs).filter(([k]) => k !== 'enable_thinking'));
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/** A copy of the client's object `source` with these members, in their order, its numbers' text kept. */
function withMembers(source: Record<string, unknown>, entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  return keepWrittenNumbers(source, objectInOrder(entries));
}

/**
 * The template options of a chat request, after the checks vLLM makes: continue_final_message
 * needs a final assistant message and cannot go with add_generation_prompt true; a request's own
 * chat_template renders the prompt only where the server trusts them (requestTemplates, as vLLM's
 * --trust-request-chat-template) and is refused elsewhere; documents reach a template that reads
 * them, as vLLM passes them, and are refused where it would not.
 */
export function chatRenderOptions(
  body: ChatRenderFields,
  opts: { thinking: boolean; tools?: unknown[]; template: string; requestTemplates?: RequestTemplates },
): RenderOptions {
  let template: RenderOptions['template'];
  if (body.chat_template != null) {
    if (!opts.requestTemplates)
      throw unsupported('chat_template', "A request's own chat_template is refused: this server renders every prompt with the model's template unless its inference conf sets trust_request_chat_template: true (vLLM's --trust-request-chat-template). Leave it out (chat_template_kwargs reach the model's template), or ask the operator.");
    if (typeof body.chat_template !== 'string' || body.chat_template.trim() === '')
      throw badRequest('chat_template must be a Jinja template string.', 'chat_template');
    template = opts.requestTemplates.get(body.chat_template);
  }
  const continueFinal = body.continue_final_message ?? false;
  if (continueFinal) {
    if (body.messages[body.messages.length - 1].role !== 'assistant')
      throw badRequest('continue_final_message needs the last message to be from the assistant.', 'continue_final_message');
    if (body.add_generation_prompt === true)
      throw badRequest('continue_final_message and add_generation_prompt cannot both be true; leave add_generation_prompt out.', 'add_generation_prompt');
  }
  let kwargs = extraKwargs(body.chat_template_kwargs);
  if (body.documents != null) {
    if (!/\bdocuments\b/.test(template?.source ?? opts.template))
      throw unsupported('documents', "documents are not supported by this model's chat template, which never reads them; put their text in a message instead.");
    kwargs = withMembers(kwargs ?? {}, [...Object.entries(kwargs ?? {}), ['documents', body.documents]]);
  }
  return {
    continueFinalMessage: continueFinal,
    addGenerationPrompt: body.add_generation_prompt ?? !continueFinal,
    enableThinking: opts.thinking,
    tools: opts.tools,
    kwargs,
    template,
  };
}
