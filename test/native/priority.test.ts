// vLLM's priority scheduling policy in the native scheduler: waiting requests are admitted by
// (priority, arrival), lower first, and when KV blocks run out the running sequence last in that
// order is preempted. First come, first served, the same requests go by arrival alone.
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { greedy, run, untilPreempted, waitFor, type RunResult } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
async function open(opts: LoadOptions): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-a'), { maxSeqLen: 1024, maxTokensInPagedKvCache: 2048, ...opts });
  engines.push(e);
  return e;
}

const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;
const request = (at: number, maxTokens: number, priority?: number): SubmitRequest => ({
  tokens: long.slice(at, at + 10),
  sampling: greedy,
  maxTokens,
  ignoreEos: true,
  priority,
});

/** Runs the named requests at once and gives the names in the order they finished, with the results. */
async function finishOrder(engine: Engine, reqs: [string, SubmitRequest][]): Promise<{ order: string[]; results: Map<string, RunResult> }> {
  const order: string[] = [];
  const results = new Map<string, RunResult>();
  await Promise.all(
    reqs.map(([name, req]) =>
      run(engine, req).then((r) => {
        order.push(name);
        results.set(name, r);
      }),
    ),
  );
  return { order, results };
}

describe('scheduling policy', () => {
  it('reports its policy: fcfs unless asked', async () => {
    expect((await open({})).info.schedulingPolicy).toBe('fcfs');
    expect((await open({ schedulingPolicy: 'priority' })).info.schedulingPolicy).toBe('priority');
    await expect(open({ schedulingPolicy: 'lottery' as LoadOptions['schedulingPolicy'] })).rejects.toThrow(/schedulingPolicy must be "fcfs" or "priority"/);
  });

  it('admits waiting requests by priority, then arrival; fcfs by arrival alone', async () => {
    for (const policy of ['priority', 'fcfs'] as const) {
      const engine = await open({ schedulingPolicy: policy, maxBatchSize: 1 });
      // The first request holds the only batch slot while the others queue behind it.
      const first = run(engine, request(0, 200));
      await waitFor(() => engine.stats().running === 1);
      const queued: [string, SubmitRequest][] = [
        ['b', request(20, 2, 0)],
        ['c', request(40, 2, 5)],
        ['d', request(60, 2, -3)],
        ['e', request(80, 2, -3)],
      ];
      const { order } = await finishOrder(engine, queued);
      expect((await first).tokens).toHaveLength(200);
      expect(order).toEqual(policy === 'priority' ? ['d', 'e', 'b', 'c'] : ['b', 'c', 'd', 'e']);
    }
  });

  it('preempts the sequence last by priority when blocks run out, and outputs stay the same', async () => {
    const roomy = await open({});
    // Six blocks of 16 tokens: two sequences growing to 60 tokens (four blocks each) cannot both stay.
    const reqs: [string, SubmitRequest][] = [
      ['early', request(0, 50, 0)],
      ['urgent', request(30, 50, -1)],
    ];
    for (const policy of ['priority', 'fcfs'] as const) {
      const { engine: tight, result } = await untilPreempted(
        () => open({ schedulingPolicy: policy, maxBatchSize: 2, maxTokensInPagedKvCache: 6 * 16 }),
        (tight) => finishOrder(tight, reqs),
      );
      const { order, results } = result;
      // fcfs preempts the one admitted last; priority the one of the higher priority value.
      expect(order).toEqual(policy === 'priority' ? ['urgent', 'early'] : ['early', 'urgent']);
      for (const [name, req] of reqs) expect(results.get(name)!.tokens).toEqual((await run(roomy, req)).tokens);
      expect(tight.stats().kvBlocksUsed).toBe(0);
    }
  });
});
