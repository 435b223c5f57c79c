// The runtime's native AWQ objective against its TypeScript definition (src/quant/awq.ts).
import { describe, expect, it } from 'vitest';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { awqCandidate, awqLoss, awqWeightMean } from '../../src/quant/awq.js';
import type { Matrix } from '../../src/quant/types.js';

function matrix(rows: number, cols: number, seed: number, colScale = (c: number) => 1): Matrix {
  let s = seed;
  const data = Float32Array.from({ length: rows * cols }, (_, i) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * colScale(i % cols);
  });
  return { data, rows, cols };
}

describe('native AWQ objective', () => {
  it('matches the TypeScript definition, with and without factors', async () => {
    const bridge = await loadRuntimeBridge();
    const x = matrix(40, 96, 1, (c) => (c % 11 === 0 ? 9 : 1));
    const w = matrix(70, 96, 2);
    const xMean = new Float32Array(96);
    for (let t = 0; t < 40; t++) for (let c = 0; c < 96; c++) xMean[c] += Math.abs(x.data[t * 96 + c]) / 40;
    const s = awqCandidate(xMean, awqWeightMean([w], 32), 0.5);
    for (const factors of [null, s]) {
      const ts = awqLoss(x, [w], factors, 32);
      const native = bridge.awqLoss(x, w, factors, 32);
      expect(Math.abs(native - ts) / ts).toBeLessThan(1e-4);
    }
    expect(bridge.awqLoss(x, w, s, 32)).toBeLessThan(bridge.awqLoss(x, w, null, 32));
  });
});
