// The /v1/completions request body.
import { z } from 'zod';
import { responseFormatSchema, samplingFields } from './schema-common.js';
import { vllmFields } from './vllm-fields.js';

/** A prompt (or an input) given as token ids. */
export const tokenIds = z.array(z.number().int().min(0)).min(1, 'a token prompt needs at least one token');

export const completionRequestSchema = z.object({
  ...samplingFields,
  ...vllmFields,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)], {
    error: 'expected a string, an array of strings, an array of token ids, or an array of such arrays',
  }),
  echo: z.boolean().nullish(),
  /** The number of alternatives per position (0..20), OpenAI's legacy shape. */
  logprobs: z.number().int().min(0).max(20).nullish(),
  best_of: z.number().int().min(1).nullish(),
  suffix: z.string().nullish(),
  /** vLLM's prompt as embeddings: refused whatever its value but null. */
  prompt_embeds: z.unknown().optional(),
  response_format: responseFormatSchema.nullish(),
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
