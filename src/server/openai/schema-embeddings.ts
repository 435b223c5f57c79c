// OpenAI's /v1/embeddings request, with vLLM's extra fields for it.
import { z } from 'zod';
import { MAX_EMBEDDING_INPUTS } from '../embeddings.js';
import { tokenIds } from './schema-completion.js';
import { vllmFields } from './vllm-fields.js';

export const embeddingRequestSchema = z.object({
  model: z.string().nullish(),
  input: z.union(
    [
      z.string(),
      z.array(z.string()).min(1, 'send at least one input').max(MAX_EMBEDDING_INPUTS, `at most ${MAX_EMBEDDING_INPUTS} inputs are accepted in one request`),
      tokenIds,
      z.array(tokenIds).min(1, 'send at least one input').max(MAX_EMBEDDING_INPUTS, `at most ${MAX_EMBEDDING_INPUTS} inputs are accepted in one request`),
    ],
    { error: 'expected a string, an array of strings, an array of token ids, or an array of such arrays' },
  ),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  dimensions: z.number().int().nullish(),
  user: z.string().nullish(),
  /** vLLM's: false leaves the vector as the model gives it. */
  normalize: z.boolean().nullish(),
  /** vLLM's: keep each input's last N tokens (-1: as many as an input may have). */
  truncate_prompt_tokens: vllmFields.truncate_prompt_tokens,
  /** vLLM's: true (its default for embeddings) adds the tokenizer's post-processor tokens to text inputs. */
  add_special_tokens: z.boolean().nullish(),
  priority: vllmFields.priority,
});
export type EmbeddingRequest = z.infer<typeof embeddingRequestSchema>;
