// The /v1/chat/completions request body.
import { z } from 'zod';
import { MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_TOOL_CALLS, MAX_TOOLS, tooMany, tooManyItems } from './limits.js';
import { jsonObject, responseFormatSchema, samplingFields } from './schema-common.js';
import { vllmChatFields, vllmFields } from './vllm-fields.js';

/** Content parts are checked after parsing so a non-text part gets a message naming its type. */
const contentPart = z.object({ type: z.string(), text: z.string().optional(), refusal: z.string().optional() });
// The part count is checked after the union, so its error names the limit (a union's own error cannot).
// An empty array is refused as OpenAI refuses it (min length 1): a turn with no parts is most
// likely a client bug, and an assistant turn of tool calls alone sends null content instead.
const content = z
  .union([z.string(), z.array(contentPart)], { error: 'expected a string or an array of content parts' })
  .refine((c) => typeof c === 'string' || c.length > 0, 'array too short: expected at least one content part, got an empty array. Send a string or one or more {"type": "text", "text": ...} parts (an assistant turn of tool calls alone sends null)')
  .refine((c) => typeof c === 'string' || c.length <= MAX_CONTENT_PARTS, tooManyItems(MAX_CONTENT_PARTS, 'content parts of one message', 'join the text into fewer parts'));

const toolCall = z.object({
  id: z.string().optional(),
  type: z.literal('function').optional(),
  function: z.object({
    name: z.string(),
    /** OpenAI sends a JSON string; some clients send the object. */
    arguments: z.union([z.string(), jsonObject()], { error: 'expected a JSON string or an object' }),
  }),
});

const message = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content, name: z.string().optional() }),
  z.object({ role: z.literal('developer'), content, name: z.string().optional() }),
  z.object({ role: z.literal('user'), content, name: z.string().optional() }),
  z.object({
    role: z.literal('assistant'),
    content: content.nullish(),
    name: z.string().optional(),
    tool_calls: z.array(toolCall).max(MAX_TOOL_CALLS, tooMany(MAX_TOOL_CALLS, 'tool calls of one assistant message', 'send fewer calls per turn')).nullish(),
    reasoning_content: z.string().nullish(),
    /** The same think block under the name vLLM now answers with (and so its clients send back). */
    reasoning: z.string().nullish(),
  }),
  // tool_call_id may be left out (OpenAI demands it, vLLM does not): Qwen3's template pairs a
  // result with its call by order and never reads the id, so refusing would only break clients.
  z.object({ role: z.literal('tool'), content, tool_call_id: z.string().optional(), name: z.string().optional() }),
]);
export type ChatMessageInput = z.infer<typeof message>;

const functionName = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a function name is 1 to 64 letters, digits, _ . : or -');

export const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: functionName,
    description: z.string().optional(),
    parameters: jsonObject().optional(),
    strict: z.boolean().nullish(),
  }),
});
export type ToolInput = z.infer<typeof toolSchema>;

export const toolChoiceSchema = z.union(
  [z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: functionName }) })],
  { error: 'expected "none", "auto", "required" or {"type": "function", "function": {"name": ...}}' },
);
export type ToolChoice = z.infer<typeof toolChoiceSchema>;

/** OpenAI's reasoning efforts (as /v1/responses takes them): none and minimal turn Qwen3's thinking off, the rest on. */
export const reasoningEfforts = ['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max'] as const;

export const chatRequestSchema = z.object({
  ...samplingFields,
  ...vllmFields,
  ...vllmChatFields,
  // A chat turn of no tokens has no use (completions keeps 0 for echo scoring); OpenAI refuses it too.
  max_tokens: z.number().int().min(1).nullish(),
  messages: z
    .array(message)
    .min(1, 'send at least one message')
    .max(MAX_MESSAGES, tooMany(MAX_MESSAGES, 'messages', 'drop or summarize the oldest turns')),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  tools: z.array(toolSchema).max(MAX_TOOLS, tooMany(MAX_TOOLS, 'tools', 'send only the tools this turn may need')).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: responseFormatSchema.nullish(),
  /** grps_trtllm's spelling. */
  enable_thinking: z.boolean().nullish(),
  /** vLLM's spelling: chat_template_kwargs.enable_thinking. */
  chat_template_kwargs: jsonObject().nullish(),
  /** Render the prompt without the assistant header (vLLM). */
  add_generation_prompt: z.boolean().nullish(),
  /** Continue the final assistant message instead of starting a new one (vLLM). */
  continue_final_message: z.boolean().nullish(),
  reasoning_effort: z.enum(reasoningEfforts, { error: `expected one of ${reasoningEfforts.map((e) => `"${e}"`).join(', ')}` }).nullish(),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;
