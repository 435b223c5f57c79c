// The /v1/responses request body (OpenAI's Responses API), as far as a text model can honour it.
// Input items, function tools and text formats are checked here; fields that would need what this
// server does not have (hosted tools, images, background runs, conversation objects) are
// accepted by the schema and refused by name in responses-input.ts, so the error says what to send.
import { z } from 'zod';
import { MAX_CONTENT_PARTS, MAX_MESSAGES, MAX_TOOLS, tooMany, tooManyItems } from './limits.js';
import { jsonObject, samplingFields } from './schema-common.js';
import { vllmFields } from './vllm-fields.js';

/** A content part of an input message: text kinds are read, any other type is refused by name. */
const inputPart = z.object({ type: z.string(), text: z.string().optional(), refusal: z.string().optional() });
const inputContent = z
  .union([z.string(), z.array(inputPart)], { error: 'expected a string or an array of content parts' })
  .refine((c) => typeof c === 'string' || c.length <= MAX_CONTENT_PARTS, tooManyItems(MAX_CONTENT_PARTS, 'content parts of one message', 'join the text into fewer parts'));

const messageItem = z.object({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'system', 'developer', 'assistant']),
  content: inputContent,
  id: z.string().optional(),
  status: z.string().optional(),
});

const functionCallItem = z.object({
  type: z.literal('function_call'),
  call_id: z.string(),
  name: z.string(),
  arguments: z.string(),
  id: z.string().optional(),
  status: z.string().optional(),
});

const functionCallOutputItem = z.object({
  type: z.literal('function_call_output'),
  call_id: z.string(),
  output: z.union([z.string(), z.array(inputPart)], { error: 'expected a string or an array of content parts' }),
  id: z.string().nullish(),
  status: z.string().nullish(),
});

const reasoningItem = z.object({
  type: z.literal('reasoning'),
  id: z.string().optional(),
  summary: z.array(z.object({ type: z.string(), text: z.string() })).optional(),
  content: z.array(z.object({ type: z.string(), text: z.string() })).nullish(),
  encrypted_content: z.string().nullish(),
  status: z.string().nullish(),
});

/** Any other item type (item_reference, computer calls, ...): refused by name after parsing. */
const otherItem = z.object({ type: z.string() }).passthrough();

// A message may come without "type" (the easy input form), so the message shape is tried first.
const inputItem = z.union([messageItem, functionCallItem, functionCallOutputItem, reasoningItem, otherItem], {
  error: 'expected an input item: a message ({"role", "content"}), a function_call, a function_call_output or a reasoning item',
});
export type ResponseInputItem = z.infer<typeof inputItem>;

const functionName = z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'a function name is 1 to 64 letters, digits, _ . : or -');

/** Function tools in the Responses shape (flat: name at the top, no "function" wrapper). */
const functionTool = z.object({
  type: z.literal('function'),
  name: functionName,
  description: z.string().nullish(),
  parameters: jsonObject().nullish(),
  strict: z.boolean().nullish(),
});
const responseTool = z.union([functionTool, z.object({ type: z.string() }).passthrough()], { error: 'expected a tool: {"type": "function", "name", "parameters"}' });
export type ResponseTool = z.infer<typeof responseTool>;

const functionChoice = z.object({ type: z.literal('function'), name: functionName });
/** Narrows the tools the model may call to these, with mode "auto" or "required". */
const allowedTools = z.object({
  type: z.literal('allowed_tools'),
  mode: z.enum(['auto', 'required']),
  tools: z.array(z.object({ type: z.string(), name: z.string().optional() }).passthrough()).max(MAX_TOOLS, tooMany(MAX_TOOLS, 'allowed tools', 'list fewer')),
});
export type AllowedToolsChoice = z.infer<typeof allowedTools>;
// One object shape checked by its type, so a malformed function or allowed_tools choice is told
// what is wrong with it (a plain union would report the last branch's complaint). Other types
// (hosted tools, mcp, custom) pass here and are refused by name in responses-input.ts.
const objectChoice = z
  .object({ type: z.string() })
  .passthrough()
  .superRefine((choice, ctx) => {
    const shape = choice.type === 'function' ? functionChoice : choice.type === 'allowed_tools' ? allowedTools : undefined;
    const checked = shape?.safeParse(choice);
    for (const issue of checked?.error?.issues ?? []) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  });
const toolChoice = z.union([z.enum(['none', 'auto', 'required']), objectChoice], {
  error: 'expected "none", "auto", "required", {"type": "function", "name": ...} or {"type": "allowed_tools", "mode": "auto" | "required", "tools": [...]}',
});
export type ResponseToolChoice = z.infer<typeof toolChoice>;

const textFormat = z.discriminatedUnion('type', [
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z.object({
    type: z.literal('json_schema'),
    name: z.string().max(64),
    schema: jsonObject(),
    description: z.string().nullish(),
    strict: z.boolean().nullish(),
  }),
]);
export type ResponseTextFormat = z.infer<typeof textFormat>;

const { model, temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty, repetition_penalty, seed, stop, stop_token_ids, logit_bias, ignore_eos, skip_special_tokens, user } = samplingFields;

export const responsesRequestSchema = z.object({
  model,
  temperature,
  top_p,
  // vLLM's sampling extras, accepted here as its /v1/responses accepts them.
  top_k,
  min_p,
  presence_penalty,
  frequency_penalty,
  repetition_penalty,
  seed,
  stop,
  stop_token_ids,
  logit_bias,
  ignore_eos,
  skip_special_tokens,
  user,
  min_tokens: vllmFields.min_tokens,
  thinking_token_budget: vllmFields.thinking_token_budget,
  priority: vllmFields.priority,
  input: z.union([
    z.string(),
    z.array(inputItem).max(MAX_MESSAGES, tooMany(MAX_MESSAGES, 'input items', 'drop or summarize the oldest turns')),
  ], { error: 'expected a string or an array of input items' }),
  instructions: z.string().nullish(),
  max_output_tokens: z.number().int().min(1).nullish(),
  tools: z.array(responseTool).max(MAX_TOOLS, tooMany(MAX_TOOLS, 'tools', 'send only the tools this turn may need')).nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  text: z.object({ format: textFormat.nullish(), verbosity: z.string().nullish() }).nullish(),
  reasoning: z.object({ effort: z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh', 'max']).nullish(), summary: z.string().nullish() }).nullish(),
  /** Kept in this server's memory for previous_response_id and GET (OpenAI's default is true). */
  store: z.boolean().nullish(),
  previous_response_id: z.string().nullish(),
  stream: z.boolean().nullish(),
  include: z.array(z.string()).nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  // Accepted and echoed back as OpenAI does; with one engine and its own prefix cache there is no
  // tier to pick or cache bucket to choose, and how long cached prefixes live is the engine's to decide.
  service_tier: z.string().nullish(),
  prompt_cache_key: z.string().nullish(),
  prompt_cache_retention: z.string().nullish(),
  prompt_cache_options: z.object({ mode: z.string().nullish(), ttl: z.string().nullish() }).nullish(),
  safety_identifier: z.string().nullish(),
  /** Bounds calls to built-in tools, which this server runs none of (they are refused): no effect. */
  max_tool_calls: z.number().int().min(0).nullish(),
  // include_obfuscation: this server's stream events carry no obfuscation padding to leave out.
  // Checked, then dropped, so the sampling code never reads it as chat's stream_options.
  stream_options: z
    .object({ include_obfuscation: z.boolean().nullish() })
    .nullish()
    .transform(() => undefined),
  truncation: z.enum(['auto', 'disabled']).nullish(),
  background: z.boolean().nullish(),
  // Refused unless null (refuseUnsupportedResponseFields), so they take any JSON here: the
  // refusal, not a type error, is what the client reads.
  conversation: z.unknown().optional(),
  prompt: z.unknown().optional(),
  context_management: z.unknown().optional(),
  moderation: z.unknown().optional(),
  /** vLLM's: Qwen3's enable_thinking and any other template variables. */
  chat_template_kwargs: jsonObject().nullish(),
  enable_thinking: z.boolean().nullish(),
});
export type ResponsesRequest = z.infer<typeof responsesRequestSchema>;
