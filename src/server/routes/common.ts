// Shared by the route handlers: body parsing and the admission + tracking around a generation.
import { setMaxListeners } from 'node:events';
import type { z } from 'zod';
import { fromZod } from '../errors.js';
import { readJson } from '../http.js';
import type { RequestContext } from '../router.js';

/**
 * Generations one request may start (prompts × n). Each is an engine sequence the admission
 * queue counts as one request, so an unbounded prompt array would let a single request take
 * the whole engine and stall every other client.
 */
export const maxChoicesPerRequest = 256;

/** Choices of one request plus the request's own listeners. */
const maxChoiceListeners = maxChoicesPerRequest + 8;

export async function parseBody<S extends z.ZodType>(rc: RequestContext, schema: S): Promise<z.infer<S>> {
  const raw = await readJson(rc.req, rc.server.options.maxBodyBytes);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw fromZod(parsed.error, raw);
  return parsed.data;
}

/** Waits for a generation slot (429 when the queue is full) and records the wait. */
export async function admit(rc: RequestContext, priority = 0): Promise<() => void> {
  const start = performance.now();
  const release = await rc.server.admission.acquire(rc.signal, priority);
  rc.server.metrics.queueTime.observe((performance.now() - start) / 1000);
  return release;
}

export function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * A controller that follows the request's signal and that the route aborts itself when it ends,
 * so no choice of a failed or finished request keeps generating.
 */
export function requestScope(signal: AbortSignal): AbortController {
  const ac = new AbortController();
  // Every choice of the request listens on it (up to 256 of them): not a listener leak.
  setMaxListeners(maxChoiceListeners, ac.signal);
  if (signal.aborted) ac.abort(signal.reason);
  else signal.addEventListener('abort', () => ac.abort(signal.reason), { once: true });
  return ac;
}
