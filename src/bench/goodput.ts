// Goodput, as `vllm bench serve --goodput` reports it: the requests a second that met every
// service-level objective given (time to first token, time per output token after the first, end
// to end latency, each in milliseconds), so a run's throughput can be read together with the
// latency its users would accept. A failed request meets none.
import type { RequestTiming } from './load.js';

export const sloKeys = ['ttft', 'tpot', 'e2el'] as const;
export type SloKey = (typeof sloKeys)[number];
/** Milliseconds each measure may take at most. */
export type Slos = Partial<Record<SloKey, number>>;

export interface Goodput {
  slos: Slos;
  /** Requests that met every objective. */
  good: number;
  requestsPerSecond: number;
}

/** Whether one request met every objective: vLLM's measures (tpot 0 for a single-token answer). */
export function meetsSlos(t: RequestTiming, slos: Slos): boolean {
  if (!t.ok) return false;
  const measured: Record<SloKey, number> = {
    ttft: 1000 * t.ttft,
    tpot: t.outputTokens > 1 ? (1000 * (t.e2e - t.ttft)) / (t.outputTokens - 1) : 0,
    e2el: 1000 * t.e2e,
  };
  return sloKeys.every((k) => slos[k] === undefined || measured[k] <= slos[k]!);
}

export function goodput(timings: RequestTiming[], wallSeconds: number, slos: Slos): Goodput {
  const good = timings.filter((t) => meetsSlos(t, slos)).length;
  return { slos, good, requestsPerSecond: good / wallSeconds };
}

/** `goodput: 1.234 req/s (10 of 12 requests within ttft <= 500 ms, tpot <= 50 ms)` */
export function goodputLine(g: Goodput, requests: number): string {
  const within = sloKeys.filter((k) => g.slos[k] !== undefined).map((k) => `${k} <= ${g.slos[k]} ms`).join(', ');
  return `goodput: ${g.requestsPerSecond.toFixed(3)} req/s (${g.good} of ${requests} requests within ${within})`;
}
