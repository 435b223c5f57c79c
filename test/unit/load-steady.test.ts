// The sustained rate of a load run (src/bench/load.ts steadyRate): output tokens whose chunks
// arrive between the first request's end and the last request's start, per second.
import { describe, expect, it } from 'vitest';
import { steadyRate, summarize, type LoadResult, type RequestTiming } from '../../src/bench/load.js';

/** A complete request: sent at `sent`, its chunks `gaps` apart after its first at `ttft`. */
function request(sent: number, ttft: number, gaps: number[], outputTokens: number, e2e: number): RequestTiming {
  return { ok: true, index: 0, sent, ttft, itl: gaps, e2e, outputTokens };
}

describe('steadyRate', () => {
  // a: chunks at 1, 2, 3, ends at 3 (the first end); b: chunks at 0.5 ... 4.5, two tokens each;
  // c: sent at 3, a chunk at 3.4 and 4.4; d: sent at 4 (the last start), its one chunk at 4.2.
  const a = request(0, 1, [1, 1], 3, 3);
  const b = request(0, 0.5, [1, 1, 1, 1], 10, 4.6);
  const c = request(3, 0.4, [1], 2, 1.5);
  const d = request(4, 0.2, [], 1, 0.3);

  it('counts the tokens whose chunks arrive in [first end, last start), a chunk as its share of the request', () => {
    // in [3, 4): a's chunk at 3 (1 token), b's at 3.5 (2 tokens), c's at 3.4 (1 token)
    expect(steadyRate([a, b, c, d])).toEqual({ fromS: 3, toS: 4, outputTokensPerSecond: 4 });
  });

  it('has none for a single wave, or a run with a failed request', () => {
    expect(steadyRate([a, b])).toBeUndefined(); // both sent at 0: no request starts after one ends
    expect(steadyRate([a, b, c, { ...d, ok: false }])).toBeUndefined();
    expect(steadyRate([])).toBeUndefined();
  });

  it('has none where no chunk arrived in the window (a rate-driven pair: the second sent after the first ended)', () => {
    const first = request(0, 1, [1], 2, 3); // chunks at 1 and 2, ends at 3
    const second = request(3.5, 0.2, [], 1, 0.3); // sent at 3.5: the window is [3, 3.5)
    expect(steadyRate([first, second])).toBeUndefined();
    // a third request's chunk inside the window gives one: 2 tokens in 0.5 s
    const third = request(0, 3.2, [], 2, 3.3);
    expect(steadyRate([first, second, third])).toEqual({ fromS: 3, toS: 3.5, outputTokensPerSecond: 4 });
  });

  it('is part of the run summary where there is one', () => {
    const run = (timings: RequestTiming[]): LoadResult => ({
      spec: { url: 'http://x', model: 'm', concurrency: 2, requests: timings.length, outputTokens: 1, promptTokens: 1 },
      wallSeconds: 5,
      timings,
    });
    expect(summarize(run([a, b, c, d])).steady?.outputTokensPerSecond).toBe(4);
    expect(summarize(run([a, b])).steady).toBeUndefined();
  });
});
