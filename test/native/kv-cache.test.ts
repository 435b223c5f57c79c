// The paged KV cache: prefix reuse, blocks returned on finish and cancel, requests larger than
// the pool, and cancellation mid-decode leaving the engine usable.
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { collect, greedy, run, waitFor } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
async function open(opts: Parameters<typeof loadEngine>[1] = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-a'), { maxSeqLen: 4096, maxTokensInPagedKvCache: 4096, ...opts });
  engines.push(e);
  return e;
}

const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;

describe('prefix reuse', () => {
  it('hits on a shared prefix and gives the same outputs as without the cache', async () => {
    const cached = await open();
    const uncached = await open({ enablePrefixCaching: false });
    const first: SubmitRequest = { tokens: long.slice(0, 200), sampling: greedy, maxTokens: 8, logprobs: 2 };
    // Shares the first 150 tokens, then differs.
    const second: SubmitRequest = { tokens: [...long.slice(0, 150), ...long.slice(250, 290)], sampling: greedy, maxTokens: 8, logprobs: 2 };
    const a = await run(cached, first);
    expect(a.first.cachedPromptTokens).toBe(0);
    const b = await run(cached, second);
    // Whole 16-token blocks of the shared 150 tokens: 9 blocks.
    expect(b.first.cachedPromptTokens).toBe(144);
    const s = cached.stats();
    expect(s.prefixCacheHitTokens).toBe(144);
    expect(s.prefixCacheQueryTokens).toBe(200 + 190);
    const ref = await run(uncached, second);
    expect(ref.first.cachedPromptTokens).toBe(0);
    expect(b.tokens).toEqual(ref.tokens);
    expect(b.logprobs).toEqual(ref.logprobs);
    expect(uncached.stats().prefixCacheQueryTokens).toBe(0);
  });

  it('reuses all but the last token of a repeated prompt, and generated blocks too', async () => {
    const engine = await open();
    const req: SubmitRequest = { tokens: long.slice(0, 64), sampling: greedy, maxTokens: 40 };
    const a = await run(engine, req);
    const b = await run(engine, req);
    expect(b.first.cachedPromptTokens).toBe(48);  // the last block holds the token that must be recomputed
    expect(b.tokens).toEqual(a.tokens);
    // A follow-up turn that repeats prompt + answer hits the answer's blocks as well.
    const c = await run(engine, { tokens: [...req.tokens as number[], ...a.tokens, 11, 12], sampling: greedy, maxTokens: 2 });
    expect(c.first.cachedPromptTokens).toBe(96);
  });
});

describe('blocks and limits', () => {
  it('returns every block when requests finish', async () => {
    const engine = await open();
    await Promise.all([1, 2, 3].map((i) => run(engine, { tokens: long.slice(i, i + 40), sampling: greedy, maxTokens: 20 })));
    const s = engine.stats();
    expect(s.kvBlocksUsed).toBe(0);
    expect(s.running).toBe(0);
    expect(s.kvBlockSize).toBe(16);
    expect(s.kvBlocksTotal).toBe(4096 / 16);
  });

  it('a request larger than the whole pool ends with a clear error; the engine stays usable', async () => {
    const engine = await open({ maxTokensInPagedKvCache: 64 });
    const r = await run(engine, { tokens: long, sampling: greedy, maxTokens: 4 });
    expect(r.finish).toBe('error');
    expect(r.last.error).toMatch(/KV cache blocks .* whole cache holds 4 blocks/);
    const ok = await run(engine, { tokens: long.slice(0, 20), sampling: greedy, maxTokens: 4 });
    expect(ok.finish).toBe('length');
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it('a request that does not fit now waits for blocks, then runs', async () => {
    // 24 blocks: each 300-token prompt needs 19, so the second waits for the first. The first
    // decodes 60 tokens (23 blocks by its end), so the wait lasts 60 steps: long enough for the
    // poll below to see it however fast a step is (6 steps took about 5 ms, which a 5 ms poll missed).
    const engine = await open({ maxTokensInPagedKvCache: 24 * 16 });
    const solo = await open();
    const req = (off: number, maxTokens: number): SubmitRequest => ({ tokens: [...long.slice(off), ...long.slice(0, off)], sampling: greedy, maxTokens, ignoreEos: true });
    const streams = [engine.submit(req(0, 60)), engine.submit(req(100, 6))];
    await waitFor(() => engine.stats().waiting === 1 && engine.stats().running === 1);
    const [a, b] = await Promise.all(streams.map(collect));
    expect(a.tokens).toHaveLength(60);
    expect(a.tokens).toEqual((await run(solo, req(0, 60))).tokens);
    expect(b.tokens).toEqual((await run(solo, req(100, 6))).tokens);
    expect(engine.runtimeStats().preemptions).toBe(0);
  });

  it('a prompt that exactly fills the pool runs when it emits at most one token (that token needs no slot)', async () => {
    const engine = await open({ maxTokensInPagedKvCache: 4 * 16 });
    const roomy = await open();
    const prompt = long.slice(0, 64);
    // Scoring the prompt (lm-eval's echo with max_tokens 0), and one token.
    for (const maxTokens of [0, 1]) {
      const req: SubmitRequest = { tokens: prompt, sampling: greedy, maxTokens, logprobs: 1, promptLogprobs: true };
      const [got, expected] = [await run(engine, req), await run(roomy, req)];
      expect(got.last.error).toBeUndefined();
      expect(got.finish).toBe('length');
      expect(got.tokens).toEqual(expected.tokens);
      expect(got.tokens).toHaveLength(maxTokens);
      expect(got.logprobs).toEqual(expected.logprobs);
      expect(got.first.promptLogprobs).toEqual(expected.first.promptLogprobs);
    }
    // A second token would need a fifth block: refused up front, as before.
    const two = await run(engine, { tokens: prompt, sampling: greedy, maxTokens: 2 });
    expect(two.finish).toBe('error');
    expect(two.last.error).toMatch(/needs 5 KV cache blocks \(65 tokens\) but the whole cache holds 4 blocks/);
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it('a sequence that alone outgrows the pool ends with an error naming the cache', async () => {
    const engine = await open({ maxTokensInPagedKvCache: 4 * 16 });
    const r = await run(engine, { tokens: long.slice(0, 10), sampling: greedy, maxTokens: 100, ignoreEos: true });
    expect(r.finish).toBe('error');
    expect(r.last.error).toMatch(/KV cache is full/);
    // 64 slots hold positions 0..63; the token sampled from position 63 is still emitted.
    expect(r.tokens.length).toBe(64 - 10 + 1);
  });
});

describe('cancel', () => {
  it('mid-decode: ends with "cancelled", frees the blocks, the engine keeps working', async () => {
    const engine = await open();
    const expected = await run(engine, { tokens: long.slice(0, 30), sampling: greedy, maxTokens: 12 });
    const ctl = new AbortController();
    const events = [];
    for await (const ev of engine.submit({ tokens: long, sampling: greedy, maxTokens: 3000, ignoreEos: true, signal: ctl.signal })) {
      events.push(ev);
      if (events.length === 3) ctl.abort();
    }
    const last = events[events.length - 1];
    expect(last.finishReason).toBe('cancelled');
    expect(events.flatMap((e) => e.tokens).length).toBeLessThan(3000);
    const s = engine.stats();
    expect(s.kvBlocksUsed).toBe(0);
    expect(s.running).toBe(0);
    const again = await run(engine, { tokens: long.slice(0, 30), sampling: greedy, maxTokens: 12 });
    expect(again.tokens).toEqual(expected.tokens);
  });

  it('leaving the loop early cancels the request', async () => {
    const engine = await open();
    for await (const ev of engine.submit({ tokens: long.slice(0, 50), sampling: greedy, maxTokens: 3000, ignoreEos: true })) {
      if (ev.tokens.length) break;
    }
    await waitFor(() => engine.stats().running === 0);
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it('an already aborted signal never starts the request', async () => {
    const engine = await open();
    const ctl = new AbortController();
    ctl.abort();
    const r = await run(engine, { tokens: long.slice(0, 10), sampling: greedy, maxTokens: 5, signal: ctl.signal });
    expect(r.finish).toBe('cancelled');
    expect(r.tokens).toEqual([]);
  });

  it('an abort or a loop left while the engine closes ends the request as cancelled, never throws', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      // An abort: its listener runs outside any caller, so a throw there is an uncaught exception.
      const engine = await open();
      const ctl = new AbortController();
      const done = collect(engine.submit({ tokens: long, sampling: greedy, maxTokens: 3000, ignoreEos: true, signal: ctl.signal }));
      await waitFor(() => engine.stats().running === 1);
      const closing = engine.close();
      ctl.abort();
      await closing;
      expect((await done).finish).toBe('cancelled');
      // Leaving a for-await loop: the throw would surface from the loop itself.
      const other = await open();
      let closingOther: Promise<void> | undefined;
      for await (const ev of other.submit({ tokens: long, sampling: greedy, maxTokens: 3000, ignoreEos: true })) {
        if (ev.tokens.length === 0) continue;
        closingOther = other.close();
        break;
      }
      await closingOther;
      // A second close() resolves only once the engine has stopped, like the first.
      await other.close();
      expect(() => other.stats()).toThrow(/closed/);
      await new Promise((r) => setTimeout(r, 20));
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  });

  it('close() ends requests in flight as cancelled', async () => {
    const engine = await open();
    const stream = engine.submit({ tokens: long, sampling: greedy, maxTokens: 5000, ignoreEos: true });
    const done = collect(stream);
    await waitFor(() => engine.stats().running === 1);
    await engine.close();
    const r = await done;
    expect(r.finish).toBe('cancelled');
    expect(() => engine.submit({ tokens: [1, 2], sampling: greedy, maxTokens: 1 })).toThrow(/closed/);
  });
});
