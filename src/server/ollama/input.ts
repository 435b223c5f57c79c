// An Ollama request -> what the engine job takes: template messages, thinking on or off, the
// answer format, sampling, stop strings and the token budget. Ollama's clients send tool calls'
// arguments as objects and tool results as tool turns, which Qwen3's template reads as they are.
import { badRequest } from '../errors.js';
import type { ContextLimits, ServerContext } from '../context.js';
import type { TemplateMessage } from '../openai/chat-messages.js';
import { samplingFor, stopStrings, tokenBudget } from '../openai/sampling.js';
import type { AnswerFormat } from '../openai/vllm-fields.js';
import type { SamplingParams } from '../../engine/types.js';
import type { OllamaChatRequest, OllamaMessage, OllamaOptions } from './schema.js';

export function templateMessages(messages: readonly OllamaMessage[]): TemplateMessage[] {
  return messages.map((m, i) => {
    if (m.images && m.images.length > 0) throw imagesRefused(`messages[${i}].images`);
    const out: TemplateMessage = { role: m.role, content: m.content ?? '' };
    if (m.role === 'assistant') {
      if (m.thinking) out.reasoning_content = m.thinking;
      // The arguments object itself: Qwen3's template writes it with tojson, spaced, the way the model writes its calls.
      if (m.tool_calls && m.tool_calls.length > 0)
        out.tool_calls = m.tool_calls.map((c) => ({ type: 'function', function: { name: c.function.name, arguments: c.function.arguments ?? {} } }));
    }
    if (m.role === 'tool' && m.tool_name) out.name = m.tool_name;
    return out;
  });
}

export function imagesRefused(param: string) {
  return badRequest('This model reads text only: images are not supported. Send the text alone.', param, 'unsupported_content');
}

/** think true or a level turns Qwen3's thinking on, false off; absent, the server's default. */
export function thinkingOn(think: OllamaChatRequest['think'], serverDefault: boolean): boolean {
  if (think === null || think === undefined) return serverDefault;
  return think !== false;
}

/** format "json" is JSON mode, an object a JSON Schema; both are enforced as response_format is. */
export function answerFormat(format: OllamaChatRequest['format']): AnswerFormat | undefined {
  if (format === null || format === undefined || format === '') return undefined;
  if (format === 'json') return { type: 'json_object' };
  if (typeof format === 'string') throw badRequest(`invalid format '${format}': send "json" or a JSON Schema object.`, 'format');
  return { type: 'json_schema', json_schema: { name: 'format', schema: format, strict: true } };
}

/** The options as the sampler takes them; the server's defaults fill what they leave out. */
export function sampling(options: OllamaOptions | null | undefined, s: ServerContext): SamplingParams {
  const o = options ?? {};
  return samplingFor(
    {
      temperature: o.temperature,
      top_k: o.top_k,
      top_p: o.top_p,
      min_p: o.min_p,
      repetition_penalty: o.repeat_penalty,
      presence_penalty: o.presence_penalty,
      frequency_penalty: o.frequency_penalty,
      // Ollama's -1 is "pick a random seed".
      seed: o.seed === -1 ? undefined : o.seed,
    },
    s.options,
  );
}

export function stops(options: OllamaOptions | null | undefined, s: ServerContext): string[] {
  return stopStrings({ stop: options?.stop }, s.options);
}

/**
 * num_predict as the answer's budget. Past what the context leaves it is cut to fit (the answer
 * then ends with done_reason "length"), as Ollama never refuses it; 0 or less is the whole
 * rest of the context; absent, the checkpoint's max_new_tokens where it has one.
 */
export function answerBudget(numPredict: number | null | undefined, promptTokens: number, limits: ContextLimits, param: string, defaultMax: number | undefined): number {
  const rest = tokenBudget(undefined, promptTokens, limits, param, 'options.num_predict');
  if (numPredict === null || numPredict === undefined) return Math.min(rest, defaultMax ?? Infinity);
  return numPredict > 0 ? Math.min(numPredict, rest) : rest;
}

/**
 * Ollama's logprobs / top_logprobs: the alternatives per token when logprobs are asked for
 * (undefined when not). top_logprobs past 0-20, or without logprobs, is a 400 rather than a
 * count silently dropped.
 */
export function ollamaLogprobs(body: { logprobs?: boolean | null; top_logprobs?: number | null }): number | undefined {
  const top = body.top_logprobs ?? 0;
  if (top < 0 || top > 20) throw badRequest(`top_logprobs ${top} is outside 0 to 20; send at most 20.`, 'top_logprobs');
  if (!body.logprobs) {
    if (top > 0) throw badRequest('top_logprobs needs "logprobs": true.', 'top_logprobs');
    return undefined;
  }
  return top;
}
