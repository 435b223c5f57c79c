// Goodput (src/bench/goodput.ts; the flag's parser in src/cli/bench.ts): vLLM's --goodput
// objectives parsed or refused by name, and a request counted only when it met every objective
// given, with vLLM's measures.
import { describe, expect, it } from 'vitest';
import { goodput, goodputLine, meetsSlos } from '../../src/bench/goodput.js';
import { parseSlos } from '../../src/cli/bench.js';
import type { RequestTiming } from '../../src/bench/load.js';

const timing = (ttft: number, e2e: number, outputTokens: number, ok = true): RequestTiming => ({ ok, index: 0, sent: 0, ttft, itl: [], e2e, outputTokens });

describe('parseSlos', () => {
  it("takes vLLM's KEY:MS pairs, separated by commas or spaces", () => {
    expect(parseSlos('ttft:500,tpot:50')).toEqual({ ttft: 500, tpot: 50 });
    expect(parseSlos('ttft:300 tpot:12.5 e2el:4000')).toEqual({ ttft: 300, tpot: 12.5, e2el: 4000 });
  });

  it('refuses what it cannot read, naming the pair and the form', () => {
    expect(() => parseSlos('')).toThrow(/--goodput takes KEY:MS pairs with KEY one of ttft, tpot, e2el/);
    expect(() => parseSlos('ttft:500,itl:20')).toThrow(/got "itl:20"/);
    expect(() => parseSlos('ttft500')).toThrow(/got "ttft500"/);
    expect(() => parseSlos('tpot:0')).toThrow(/--goodput's tpot takes milliseconds above 0, got "0"/);
    expect(() => parseSlos('tpot:fast')).toThrow(/got "fast"/);
    expect(() => parseSlos('ttft:1,ttft:2')).toThrow(/names ttft twice/);
  });
});

describe('meetsSlos and goodput', () => {
  it('a request is good only within every objective given; tpot is over the tokens after the first', () => {
    // ttft 200 ms, 11 tokens over 1.2 s: tpot (1200 - 200) / 10 = 100 ms, e2el 1,200 ms
    const t = timing(0.2, 1.2, 11);
    expect(meetsSlos(t, { ttft: 200 })).toBe(true);
    expect(meetsSlos(t, { ttft: 199 })).toBe(false);
    expect(meetsSlos(t, { tpot: 100 })).toBe(true);
    expect(meetsSlos(t, { tpot: 99 })).toBe(false);
    expect(meetsSlos(t, { ttft: 500, tpot: 150, e2el: 1199 })).toBe(false);
    expect(meetsSlos(t, { ttft: 500, tpot: 150, e2el: 1200 })).toBe(true);
    // one token: no time per output token to miss
    expect(meetsSlos(timing(0.1, 0.1, 1), { tpot: 1 })).toBe(true);
    // a failed request meets nothing
    expect(meetsSlos(timing(0.01, 0.01, 5, false), { e2el: 1e9 })).toBe(false);
  });

  it('counts the good requests over the run and says which objectives', () => {
    const timings = [timing(0.1, 1, 10), timing(0.6, 1.5, 10), timing(0.2, 3, 10), timing(0.1, 0.5, 10, false)];
    const g = goodput(timings, 2, { ttft: 500, tpot: 200 });
    expect(g.good).toBe(1); // the second is late to start, the third slow to go on, the fourth failed
    expect(g.requestsPerSecond).toBe(0.5);
    expect(goodputLine(g, timings.length)).toBe('goodput: 0.500 req/s (1 of 4 requests within ttft <= 500 ms, tpot <= 200 ms)');
  });
});
