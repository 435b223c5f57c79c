// Lengths that vary by request (src/bench/load.ts: rangedLength, lengthBounds, rangedTokenPrompt),
// as vllm bench serve's --random-range-ratio draws them.
import { describe, expect, it } from 'vitest';
import { lengthBounds, rangedLength, rangedTokenPrompt, tokenPrompt } from '../../src/bench/load.js';

describe('rangedLength', () => {
  it('draws whole numbers over [base (1 - r), base (1 + r)], evenly, the same for the same request', () => {
    const draw = rangedLength(100, 0.25);
    const xs = Array.from({ length: 20_000 }, (_, i) => draw(i));
    expect(xs.every((x) => Number.isInteger(x) && x >= 75 && x <= 125)).toBe(true);
    expect(Math.min(...xs)).toBe(75);
    expect(Math.max(...xs)).toBe(125);
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.abs(mean - 100)).toBeLessThan(0.5);
    // every length about equally often: 51 values, ~392 draws each
    const counts = new Map<number, number>();
    for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1);
    expect(counts.size).toBe(51);
    expect(Math.min(...counts.values())).toBeGreaterThan(300);
    expect(Math.max(...counts.values())).toBeLessThan(490);
    expect(Array.from({ length: 50 }, (_, i) => rangedLength(100, 0.25)(i))).toEqual(xs.slice(0, 50));
    // another salt, another sequence (prompt and output lengths are drawn apart)
    expect(Array.from({ length: 50 }, (_, i) => rangedLength(100, 0.25, 2)(i))).not.toEqual(xs.slice(0, 50));
  });

  it('keeps lengths at least 1; a ratio of 0 is the base itself', () => {
    expect(lengthBounds(1, 0.9)).toEqual([1, 1]);
    expect(lengthBounds(10, 0.95)).toEqual([1, 19]);
    expect(lengthBounds(64, 0)).toEqual([64, 64]);
    expect(Array.from({ length: 20 }, (_, i) => rangedLength(64, 0)(i)).every((x) => x === 64)).toBe(true);
  });

  it('rangedTokenPrompt: request i gets its own length, and the tokens of tokenPrompt for i', () => {
    const lengthOf = rangedLength(30, 0.5, 1);
    const prompt = rangedTokenPrompt(lengthOf);
    for (let i = 0; i < 20; i++) {
      expect(prompt(i)).toHaveLength(lengthOf(i));
      expect(prompt(i)).toEqual(tokenPrompt(lengthOf(i))(i));
    }
  });
});
