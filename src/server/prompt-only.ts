// Requests whose inputs are prompts the engine computes without sampling (embeddings, rerank
// scores): every input of a request runs at once under one admission, and a client that leaves
// cancels the rest.
import type { GenerationEngine, SubmitRequest, TokenEvent } from '../engine/types.js';
import { defaultSampling } from '../engine/types.js';
import { ApiError } from './errors.js';
import type { RequestContext } from './router.js';
import { admit, requestScope } from './routes/common.js';

/** Runs `each` on every input (one admission for the request) and returns the results in input order. */
export async function forEachPrompt<T>(rc: RequestContext, inputs: number[][], each: (tokens: number[], signal: AbortSignal) => Promise<T>, priority?: number): Promise<T[]> {
  const release = await admit(rc, priority);
  const scope = requestScope(rc.signal);
  try {
    rc.server.metrics.promptTokens.inc({}, inputs.reduce((n, ids) => n + ids.length, 0));
    return await Promise.all(inputs.map((tokens) => each(tokens, scope.signal)));
  } finally {
    scope.abort();
    release();
  }
}

/**
 * Submits one prompt-only request (`embed` or `scoreIds` set) and returns what `pick` takes from
 * its one event; `what` names the work in the errors ("Embedding", "Scoring").
 */
export async function promptOnly<T>(
  engine: GenerationEngine,
  req: Pick<SubmitRequest, 'tokens' | 'embed' | 'scoreIds' | 'priority' | 'signal'>,
  pick: (ev: TokenEvent) => T | undefined,
  what: string,
): Promise<T> {
  let value: T | undefined;
  for await (const ev of engine.submit({ ...req, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 0 })) {
    value = pick(ev) ?? value;
    if (ev.finishReason === 'error') throw new ApiError(500, `${what} failed: ${ev.error ?? 'unknown engine error'}`, { code: 'engine_error' });
    if (ev.finishReason === 'cancelled') throw new ApiError(503, 'The request was cancelled.', { type: 'server_error', code: 'cancelled' });
  }
  if (value === undefined) throw new ApiError(500, `${what} failed: the engine returned nothing.`, { code: 'engine_error' });
  return value;
}
