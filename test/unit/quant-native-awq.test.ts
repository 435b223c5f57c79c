// The runtime's native AWQ objective against its TypeScript definition (src/quant/awq.ts), and its
// native int4 packing against src/quant/int4.ts (the same bytes, or engines would differ by where
// they were built).
import { describe, expect, it } from 'vitest';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { awqCandidate, awqLoss, awqWeightMean } from '../../src/quant/awq.js';
import { quantizeInt4Symmetric } from '../../src/quant/int4.js';
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

describe('native int4 packing', () => {
  it('gives the bytes and scales of quantizeInt4Symmetric, ties, zeros and non-finite groups included', async () => {
    const bridge = await loadRuntimeBridge();
    expect(bridge.quantKernels).toBeDefined();
    const rows = 37;
    const cols = 256;
    for (const group of [32, 64, 128]) {
      const w = matrix(rows, cols, 7 + group, (c) => (c % 13 === 0 ? 40 : 1));
      // Ties: a group whose amax is 7, so its scale is 1 and x.5 values sit exactly between codes.
      for (let i = 0; i < group; i++) w.data[i] = i === 0 ? 7 : ((i % 15) - 7) + 0.5;
      w.data.fill(0, group, 2 * group); // an all-zero group: scale 0, every code 8
      w.data[2 * group + 1] = -0;
      w.data[cols + 3] = Number.NaN; // row 1's first group: NaN scale, codes 0
      w.data[2 * cols + 5] = Number.POSITIVE_INFINITY;
      const ts = quantizeInt4Symmetric(w, group);
      const native = bridge.quantKernels!.int4(w, group);
      expect(Buffer.from(native.packed).equals(Buffer.from(ts.packed))).toBe(true);
      // Scales bit for bit, but for a NaN's sign and payload, which JavaScript leaves unspecified.
      const bits = (a: Float32Array) => [...new Uint32Array(a.buffer)].map((b, i) => (Number.isNaN(a[i]) ? 'NaN' : b));
      expect(bits(native.scales)).toEqual(bits(ts.scales));
      expect(native.scales.some(Number.isNaN)).toBe(true);
      expect([...native.zeros]).toEqual([...ts.zeros]);
      expect(native).toMatchObject({ rows, cols, group });
    }
  });
});
