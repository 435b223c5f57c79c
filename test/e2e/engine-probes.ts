// What the build tests ask of a built engine through the real runtime: its log-softmax rows over a
// prompt (the scorer the accuracy report uses), and its greedy tokens.
import { expect } from 'vitest';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { loadEngine } from '../../src/engine/load.js';
import { defaultSampling } from '../../src/engine/types.js';

/** [tokens, vocab] log-softmax rows of an engine or checkpoint folder over `tokens`. */
export async function logprobRows(dir: string, tokens: number[]): Promise<Float32Array> {
  const scorer = await (await loadRuntimeBridge()).openScorer(dir);
  try {
    let rows = new Float32Array();
    await scorer.logprobs(Int32Array.from(tokens), (_first, r) => (rows = r.slice()));
    return rows;
  } finally {
    await scorer.close();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** `count` greedy tokens after `prompt`, from the folder loaded on the CPU. */
export async function greedyTokens(dir: string, prompt: number[], count: number): Promise<number[]> {
  const engine = await loadEngine(dir, { threads: 2, maxSeqLen: 256, maxNumTokens: 64 });
  try {
    const out: number[] = [];
    for await (const ev of engine.submit({ tokens: prompt, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: count, ignoreEos: true })) out.push(...ev.tokens);
    return out;
  } finally {
    await engine.close();
  }
}
