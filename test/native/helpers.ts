// Shared pieces of the native runtime tests: run a request to completion, greedy settings.
import { defaultSampling, type SamplingParams, type SubmitRequest, type TokenEvent } from '../../src/engine/types.js';
import type { GenerationEngine } from '../../src/engine/types.js';

export const greedy: SamplingParams = { ...defaultSampling, temperature: 0 };

export interface RunResult {
  tokens: number[];
  logprobs: number[];
  events: TokenEvent[];
  finish: TokenEvent['finishReason'];
  last: TokenEvent;
  first: TokenEvent;
}

/** Drains one request's stream. */
export async function collect(stream: AsyncIterable<TokenEvent>): Promise<RunResult> {
  const events: TokenEvent[] = [];
  for await (const ev of stream) events.push(ev);
  const tokens = events.flatMap((e) => e.tokens);
  const logprobs = events.flatMap((e) => e.logprobs ?? []);
  const last = events[events.length - 1];
  return { tokens, logprobs, events, finish: last?.finishReason, last, first: events[0] };
}

/** What a run gives a client, without the event split (a drafted step puts several tokens in one event). */
export function clientView(r: RunResult) {
  return { tokens: r.tokens, logprobs: r.logprobs, finish: r.finish, stop: r.last.stopTokenId, tops: r.events.flatMap((e) => e.topLogprobs ?? []) };
}

export function run(engine: GenerationEngine, req: SubmitRequest): Promise<RunResult> {
  return collect(engine.submit(req));
}

/** Index of the first step whose reference top-2 margin is under `tol` (a near tie), else the length. */
export function firstNearTie(margins: number[], tol = 1e-2): number {
  const i = margins.findIndex((m) => m < tol);
  return i < 0 ? margins.length : i;
}

/** Resolves once `pred` holds, polling (for engine state that changes on the native thread). */
export async function waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs fn with GRPST_CPU_KERNELS set to `level` (undefined: unset), restoring it after. */
export async function withLevel<T>(level: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.GRPST_CPU_KERNELS;
  if (level) process.env.GRPST_CPU_KERNELS = level;
  else delete process.env.GRPST_CPU_KERNELS;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.GRPST_CPU_KERNELS;
    else process.env.GRPST_CPU_KERNELS = saved;
  }
}

/**
 * Opens an engine with `open` and runs `go` on it until a run preempted a sequence, up to `tries`
 * fresh engines; gives that engine and what `go` gave. Requests submitted together preempt each
 * other only if the engine's thread holds them together: on a loaded machine the submitting
 * thread can be descheduled between two submissions while the engine's thread runs the first
 * alone, and a tiny model's request can end before the second ever needs its blocks. An attempt
 * that preempted nothing tests nothing, so it is set aside rather than asserted on.
 */
export async function untilPreempted<E extends { runtimeStats(): { preemptions: number }; close(): Promise<void> }, T>(
  open: () => Promise<E>,
  go: (engine: E) => Promise<T>,
  tries = 5,
): Promise<{ engine: E; result: T }> {
  for (let i = 0; i < tries; i++) {
    const engine = await open();
    const result = await go(engine);
    if (engine.runtimeStats().preemptions > 0) return { engine, result };
    await engine.close();
  }
  throw new Error(`no preemption in ${tries} runs: the KV pool is not too small for the requests together`);
}
