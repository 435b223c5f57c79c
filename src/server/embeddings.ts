// Embeddings, shared by OpenAI's /v1/embeddings and Ollama's /api/embed and /api/embeddings: each
// input is one engine request that computes its prompt and samples nothing; the runtime hands back
// the final norm's output at the input's last token (last-token pooling, what vLLM's pooling
// runner does for a decoder and what Qwen3-Embedding models are trained for). Here it is cut to
// `dimensions` (Matryoshka, as Qwen3-Embedding documents it) and L2-normalized unless asked not to.
import type { GenerationEngine } from '../engine/types.js';
import { ApiError, badRequest } from './errors.js';
import { promptTokenLimit } from './openai/sampling.js';
import { forEachPrompt, promptOnly } from './prompt-only.js';
import type { RequestContext } from './router.js';

/** Inputs one request may embed: each is an engine sequence (OpenAI accepts 2,048 per request). */
export const MAX_EMBEDDING_INPUTS = 2048;

export interface Pooling {
  /** Keep the first N values (then normalize). */
  dimensions?: number;
  /** L2-normalize (the default everywhere but Ollama's legacy /api/embeddings). */
  normalize: boolean;
}

/** Checks `dimensions` against the model's hidden size; `param` names it in the 400. */
export function checkDimensions(dimensions: number | null | undefined, hidden: number, param = 'dimensions'): number | undefined {
  if (dimensions == null) return undefined;
  if (dimensions < 1 || dimensions > hidden)
    throw badRequest(`${param} ${dimensions} is outside 1 to ${hidden}, this model's embedding size; send at most ${hidden}, or leave it out.`, param, 'invalid_value');
  return dimensions;
}

export function pool(vector: Float32Array, p: Pooling): number[] {
  const kept = p.dimensions !== undefined ? vector.subarray(0, p.dimensions) : vector;
  const out = Array.from(kept);
  if (!p.normalize) return out;
  let sum = 0;
  for (const v of out) sum += v * v;
  // A zero vector stays zero (as torch's normalize leaves it, with its epsilon).
  const scale = 1 / Math.max(Math.sqrt(sum), 1e-12);
  return out.map((v) => v * scale);
}

/** Every input's pooled vector, in input order (src/server/prompt-only.ts runs them). */
export async function embedInputs(rc: RequestContext, inputs: number[][], pooling: Pooling, priority?: number, on?: GenerationEngine): Promise<number[][]> {
  // `on`: the engine as a LoRA adapter's requests see it (ServerContext.engineFor); else the served model.
  const engine: GenerationEngine = on ?? rc.server.requireEngine();
  return forEachPrompt(rc, inputs, async (tokens, signal) => pool(await promptOnly(engine, { tokens, embed: true, priority, signal }, (ev) => ev.embedding, 'Embedding'), pooling), priority);
}

/** An input longer than the engine takes: a 400 naming the field, or (cutEnd, Ollama's truncate) its first tokens kept. */
export function fitInput(ids: number[], limits: { maxSeqLen: number; maxInputLen: number }, param: string, cutEnd = false): number[] {
  const max = promptTokenLimit(limits);
  if (ids.length <= max) return ids;
  if (cutEnd) return ids.slice(0, max);
  throw new ApiError(400, `This model's maximum context length is ${max} tokens. However, ${param} has ${ids.length} tokens. Shorten the input.`, {
    param,
    code: 'context_length_exceeded',
  });
}
