// One timed batch for the benches: requests submitted together, each one's tokens, the span from
// the first token of any to the last of all (the decode span), and the engine's stats around it.
import type { Engine } from '../src/engine/index.js';
import type { EngineStats, SubmitRequest } from '../src/engine/types.js';

export interface BatchRun {
  tokens: number[][];
  decodeMs: number;
  /** Engine steps from the first token to the end. */
  steps: number;
  before: EngineStats;
  after: EngineStats;
}

export async function runBatch(engine: Engine, requests: SubmitRequest[]): Promise<BatchRun> {
  const before = engine.stats();
  let first = 0;
  let last = 0;
  let stepsAtFirst = 0;
  const one = async (req: SubmitRequest) => {
    const tokens: number[] = [];
    for await (const ev of engine.submit(req)) {
      if (ev.error) throw new Error(ev.error);
      if (!ev.tokens.length) continue;
      const now = performance.now();
      if (!first) {
        first = now;
        stepsAtFirst = engine.stats().steps;
      }
      last = Math.max(last, now);
      tokens.push(...ev.tokens);
    }
    return tokens;
  };
  const tokens = await Promise.all(requests.map(one));
  const after = engine.stats();
  return { tokens, decodeMs: last - first, steps: after.steps - stepsAtFirst, before, after };
}

/** Tokens after each request's first, per second of the decode span. */
export function decodeRate(run: BatchRun): number {
  return (run.tokens.reduce((n, t) => n + t.length - 1, 0) * 1000) / run.decodeMs;
}
