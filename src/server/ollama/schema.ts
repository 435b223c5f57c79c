// Ollama's request bodies (/api/chat, /api/generate, /api/show), as far as a text model served
// by grpst can honour them. Unknown fields and unknown `options` are dropped, as Ollama drops
// them; a known field of the wrong type is a 400 naming it, as Ollama's is.
import { z } from 'zod';
import { MAX_MESSAGES, MAX_STOP_STRINGS, MAX_TOOL_CALLS, MAX_TOOLS, tooMany, tooManyItems } from '../openai/limits.js';
import { jsonObject } from '../openai/schema-common.js';
import { toolSchema } from '../openai/schema-chat.js';

const finite = () => z.number().refine(Number.isFinite, 'expected a finite number');

/**
 * The Modelfile parameters a request may set per call. Runtime ones (num_ctx, num_gpu,
 * num_thread, ...) are fixed by the engine and its conf here, so they are dropped with the rest.
 */
const options = z.object({
  temperature: finite().min(0).nullish(),
  /** 0 or less: off. */
  top_k: z.number().int().nullish(),
  top_p: finite().min(0).max(1).nullish(),
  min_p: finite().min(0).max(1).nullish(),
  /** -1 (or any value of 0 or less): until the model ends or the context is full. */
  num_predict: z.number().int().nullish(),
  stop: z
    .union([z.string(), z.array(z.string())], { error: 'expected a string or an array of strings' })
    .refine((s) => typeof s === 'string' || s.length <= MAX_STOP_STRINGS, tooManyItems(MAX_STOP_STRINGS, 'stop strings', 'send fewer'))
    .nullish(),
  /** -1: a fresh random seed, as Ollama reads it. */
  seed: z.number().int().nullish(),
  repeat_penalty: finite().gt(0).max(10).nullish(),
  presence_penalty: finite().min(-2).max(2).nullish(),
  frequency_penalty: finite().min(-2).max(2).nullish(),
});
export type OllamaOptions = z.infer<typeof options>;

/** true / false, or a level ("high", "medium", "low"), which turns Qwen3's thinking on. */
const think = z.union([z.boolean(), z.enum(['high', 'medium', 'low'])], { error: 'expected true, false, "high", "medium" or "low"' });

/** "json", or a JSON Schema object; "" asks for nothing. */
const format = z.union([z.string(), jsonObject()], { error: 'expected "json" or a JSON Schema object' });

const toolCall = z.object({
  function: z.object({
    name: z.string(),
    /** An object, as Ollama sends and takes it (not OpenAI's JSON string). */
    arguments: jsonObject().optional(),
  }),
});

const message = z.object({
  role: z.enum(['system', 'user', 'assistant', 'tool']),
  content: z.string().nullish(),
  thinking: z.string().nullish(),
  images: z.array(z.unknown()).nullish(),
  tool_calls: z.array(toolCall).max(MAX_TOOL_CALLS, tooMany(MAX_TOOL_CALLS, 'tool calls of one message', 'send fewer calls per turn')).nullish(),
  /** The tool whose result a tool message carries. */
  tool_name: z.string().nullish(),
});
export type OllamaMessage = z.infer<typeof message>;

/** Fields both generation routes take. */
const common = {
  model: z.string(),
  think: think.nullish(),
  format: format.nullish(),
  options: options.nullish(),
  /** Ollama streams unless told not to. */
  stream: z.boolean().nullish(),
  /** How long Ollama keeps a model loaded; this server keeps its one model loaded while it runs. */
  keep_alive: z.union([z.string(), z.number()]).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().nullish(),
};

export const chatRequestSchema = z.object({
  ...common,
  messages: z.array(message).max(MAX_MESSAGES, tooMany(MAX_MESSAGES, 'messages', 'drop or summarize the oldest turns')).nullish(),
  tools: z.array(toolSchema).max(MAX_TOOLS, tooMany(MAX_TOOLS, 'tools', 'send only the tools this turn may need')).nullish(),
});
export type OllamaChatRequest = z.infer<typeof chatRequestSchema>;

export const generateRequestSchema = z.object({
  ...common,
  prompt: z.string().nullish(),
  system: z.string().nullish(),
  /** true: the prompt goes to the model as it is, without the chat template. */
  raw: z.boolean().nullish(),
  template: z.string().nullish(),
  suffix: z.string().nullish(),
  images: z.array(z.unknown()).nullish(),
  context: z.array(z.number()).nullish(),
});
export type OllamaGenerateRequest = z.infer<typeof generateRequestSchema>;

/** `name` is the field's old spelling, which older clients still send. */
export const showRequestSchema = z.object({ model: z.string().nullish(), name: z.string().nullish(), verbose: z.boolean().nullish() });

/** /api/embed: one input or several; truncate (default true) cuts an input past the context to fit. */
export const embedRequestSchema = z.object({
  model: z.string(),
  input: z.union([z.string(), z.array(z.string())], { error: 'expected a string or an array of strings' }).nullish(),
  truncate: z.boolean().nullish(),
  dimensions: z.number().int().nullish(),
  options: options.nullish(),
  keep_alive: z.union([z.string(), z.number()]).nullish(),
});

/** /api/embeddings, the older route: one prompt, the vector as the model gives it. */
export const legacyEmbedRequestSchema = z.object({
  model: z.string(),
  prompt: z.string().nullish(),
  options: options.nullish(),
  keep_alive: z.union([z.string(), z.number()]).nullish(),
});
