// The rerank request (vLLM's /v1/rerank, in the shape of Jina's and Cohere's) and vLLM's /v1/score.
import { z } from 'zod';
import { MAX_RERANK_PAIRS } from '../rerank.js';
import { vllmFields } from './vllm-fields.js';

const tooMany = `at most ${MAX_RERANK_PAIRS} are accepted in one request`;
/** A document: its text, or an object with a text field (Jina, Cohere v1). */
const rerankDocument = z.union([z.string(), z.object({ text: z.string() })], { error: 'expected a string or an object with a "text" string' });
const texts = z.union([z.string(), z.array(z.string()).min(1, 'send at least one text').max(MAX_RERANK_PAIRS, tooMany)], {
  error: 'expected a string or an array of strings',
});

const common = {
  model: z.string().nullish(),
  /** grpst's: the Instruct line of the reranker's prompt (default: Qwen3-Reranker's web-search task). */
  instruction: z.string().min(1, 'send a non-empty instruction, or leave it out').nullish(),
  /** vLLM's: cut each document's end so its prompt has at most N tokens (-1: as many as a prompt may have). */
  truncate_prompt_tokens: vllmFields.truncate_prompt_tokens,
  priority: vllmFields.priority,
  user: z.string().nullish(),
};

export const rerankRequestSchema = z.object({
  ...common,
  query: z.string(),
  documents: z.array(rerankDocument).min(1, 'send at least one document').max(MAX_RERANK_PAIRS, tooMany),
  /** How many results, best first (absent or 0: all of them). */
  top_n: z.number().int().min(0).nullish(),
  /** false leaves each result's document out (vLLM returns it). */
  return_documents: z.boolean().nullish(),
});
export type RerankRequest = z.infer<typeof rerankRequestSchema>;

export const scoreRequestSchema = z.object({
  ...common,
  /** The queries: one for every text_2, or one per text_2. */
  text_1: texts,
  /** The documents. */
  text_2: texts,
});
export type ScoreRequest = z.infer<typeof scoreRequestSchema>;
