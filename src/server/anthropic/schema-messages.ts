// The /v1/messages request body (Anthropic's Messages API), as far as a text model can honour it.
// Blocks other than text, tool_use, tool_result and thinking are accepted by the schema and
// refused by name in messages-input.ts, so the error says which block and what to send instead.
import { z } from 'zod';
import { MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_STOP_STRINGS, MAX_TOOLS, tooMany, tooManyItems } from '../openai/limits.js';
import { jsonObject } from '../openai/schema-common.js';

const finite = () => z.number().refine(Number.isFinite, 'expected a finite number');

/** One content block; its fields are checked by type after parsing (messages-input.ts). */
const block = z.object({ type: z.string() }).passthrough();
const content = z
  .union([z.string(), z.array(block)], { error: 'expected a string or an array of content blocks' })
  .refine((c) => typeof c === 'string' || c.length <= MAX_CONTENT_PARTS, tooManyItems(MAX_CONTENT_PARTS, 'content blocks of one message', 'join the text into fewer blocks'));
export type AnthropicContent = z.infer<typeof content>;

// "system" is the SDK's SystemMessageParam: a system turn among the others (text blocks only).
const message = z.object({ role: z.enum(['user', 'assistant', 'system']), content });

// The names tools accepts (chatTools): any tool it takes can be the one tool_choice forces.
const functionName = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a tool name is 1 to 64 letters, digits, _ . : or -');

/** Client tools; a server tool (its `type` names a version, as web_search_20250305) is refused by name. */
const tool = z
  .object({
    type: z.string().nullish(),
    name: z.string(),
    description: z.string().nullish(),
    input_schema: jsonObject().nullish(),
    strict: z.boolean().nullish(),
  })
  .passthrough();
export type AnthropicTool = z.infer<typeof tool>;

const toolChoice = z.discriminatedUnion('type', [
  z.object({ type: z.literal('auto'), disable_parallel_tool_use: z.boolean().nullish() }),
  z.object({ type: z.literal('any'), disable_parallel_tool_use: z.boolean().nullish() }),
  z.object({ type: z.literal('tool'), name: functionName, disable_parallel_tool_use: z.boolean().nullish() }),
  z.object({ type: z.literal('none') }),
]);
export type AnthropicToolChoice = z.infer<typeof toolChoice>;

const thinking = z.discriminatedUnion('type', [
  z.object({ type: z.literal('enabled'), budget_tokens: z.number().int().min(1).nullish() }),
  z.object({ type: z.literal('adaptive') }),
  z.object({ type: z.literal('disabled') }),
]);

const systemBlock = z.object({ type: z.string(), text: z.string().optional() }).passthrough();

/** Structured outputs: the answer's text is JSON of this schema (enforced by constrained decoding). */
const jsonOutputFormat = z.object({ type: z.literal('json_schema'), schema: jsonObject() });

export const messagesRequestSchema = z.object({
  model: z.string(),
  max_tokens: z.number().int().min(1),
  messages: z.array(message).max(MAX_MESSAGES, tooMany(MAX_MESSAGES, 'messages', 'drop or summarize the oldest turns')),
  system: z.union([z.string(), z.array(systemBlock)], { error: 'expected a string or an array of text blocks' }).nullish(),
  stop_sequences: z.array(z.string()).max(MAX_STOP_STRINGS, tooMany(MAX_STOP_STRINGS, 'stop sequences', 'send fewer')).nullish(),
  stream: z.boolean().nullish(),
  // Anthropic's ranges: temperature 0..1.
  temperature: finite().min(0).max(1).nullish(),
  top_p: finite().min(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  tools: z.array(tool).max(MAX_TOOLS, tooMany(MAX_TOOLS, 'tools', 'send only the tools this turn may need')).nullish(),
  tool_choice: toolChoice.nullish(),
  thinking: thinking.nullish(),
  /** `format` is read; `effort` and the rest are accepted (thinking follows `thinking`). */
  output_config: z.object({ format: jsonOutputFormat.nullish() }).passthrough().nullish(),
  /** The structured-outputs beta's spelling of output_config.format, which the SDK's beta client still sends. */
  output_format: jsonOutputFormat.nullish(),
  metadata: z.object({ user_id: z.string().nullish() }).passthrough().nullish(),
  service_tier: z.string().nullish(),
});
export type MessagesRequest = z.infer<typeof messagesRequestSchema>;

/** /v1/messages/count_tokens: the prompt fields only. */
export const countTokensSchema = messagesRequestSchema.pick({ model: true, messages: true, system: true, tools: true, tool_choice: true, thinking: true });
export type CountTokensRequest = z.infer<typeof countTokensSchema>;
