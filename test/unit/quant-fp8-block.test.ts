import { describe, expect, it } from 'vitest';
import { dequantizeFp8Block, NonFiniteFp8, quantizeFp8Block, scaleGridShape, type BlockSize } from '../../src/quant/fp8-block.js';
import { e4m3ToF32, f32ToE4m3 } from '../../src/quant/numeric.js';

describe('block-scaled FP8 (weight_scale_inv)', () => {
  it('sizes the scale grid with ceil, partial blocks at the bottom and right edges', () => {
    expect(scaleGridShape(144, 96, [32, 64])).toEqual([5, 2]);
    expect(scaleGridShape(128, 128, [128, 128])).toEqual([1, 1]);
    expect(scaleGridShape(129, 1, [128, 128])).toEqual([2, 1]);
  });

  it('multiplies each e4m3 value by the scale of block [i / bo, j / bi]', () => {
    // [5, 7] weight, [2, 3] blocks -> a [3, 3] grid whose last row and column are partial.
    const rows = 5, cols = 7;
    const block: BlockSize = [2, 3];
    const codes = Uint8Array.from({ length: rows * cols }, (_, k) => f32ToE4m3(((k % 11) - 5) * 0.75));
    const scaleInv = Float32Array.from({ length: 9 }, (_, g) => 2 ** (g - 4) * 1.5); // all different
    const w = dequantizeFp8Block({ codes, scaleInv, rows, cols, block });
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) {
        const expected = e4m3ToF32(codes[i * cols + j]) * scaleInv[Math.floor(i / 2) * 3 + Math.floor(j / 3)];
        expect(w[i * cols + j], `[${i}, ${j}]`).toBe(Math.fround(expected));
      }
    // Row 4 and column 6 alone make the partial blocks: they take the last row and column of scales.
    expect(w[4 * cols + 6]).toBe(Math.fround(e4m3ToF32(codes[4 * cols + 6]) * scaleInv[8]));
  });

  it('quantizes as transformers does: weight_scale_inv = 1 / (448 / amax), codes exactly e4m3', () => {
    const rows = 40, cols = 70;
    const block: BlockSize = [16, 32];
    const w = Float32Array.from({ length: rows * cols }, (_, k) => Math.fround(Math.sin(k * 0.37) * (1 + ((k >> 5) % 7))));
    const q = quantizeFp8Block(w, rows, cols, block);
    expect(q.scaleInv).toHaveLength(3 * 3);
    const back = dequantizeFp8Block(q);
    for (let gi = 0; gi < 3; gi++)
      for (let gj = 0; gj < 3; gj++) {
        let amax = 0;
        for (let i = gi * 16; i < Math.min(rows, gi * 16 + 16); i++)
          for (let j = gj * 32; j < Math.min(cols, gj * 32 + 32); j++) amax = Math.max(amax, Math.abs(w[i * cols + j]));
        expect(q.scaleInv[gi * 3 + gj]).toBe(Math.fround(1 / Math.fround(448 / amax)));
      }
    for (let k = 0; k < w.length; k++) {
      expect(q.codes[k] & 0x7f).not.toBe(0x7f); // never NaN
      const s = q.scaleInv[Math.floor(Math.floor(k / cols) / 16) * 3 + Math.floor((k % cols) / 32)];
      // e4m3 keeps 3 mantissa bits: the error is at most half a step of the value's binade (2^-4 relative), or of the subnormal step.
      expect(Math.abs(back[k] - w[k])).toBeLessThanOrEqual(Math.max(Math.abs(w[k]) * 2 ** -4, s * 2 ** -10) * 1.0001);
    }
  });

  it('an all-zero block takes scale 1 and stays zero', () => {
    const q = quantizeFp8Block(new Float32Array(4 * 4), 4, 4, [2, 2]);
    expect(Array.from(q.scaleInv)).toEqual([1, 1, 1, 1]);
    expect(Array.from(dequantizeFp8Block(q))).toEqual(new Array(16).fill(0));
  });

  it('refuses an e4m3 NaN code and a non-finite scale, naming where', () => {
    const codes = new Uint8Array(4 * 4);
    codes[2 * 4 + 3] = 0xff;
    expect(() => dequantizeFp8Block({ codes, scaleInv: new Float32Array(4).fill(1), rows: 4, cols: 4, block: [2, 2] })).toThrow(new NonFiniteFp8(2, 3, 'code'));
    const scales = Float32Array.of(1, 1, Infinity, 1);
    expect(() => dequantizeFp8Block({ codes: new Uint8Array(16), scaleInv: scales, rows: 4, cols: 4, block: [2, 2] })).toThrow(/non-finite weight_scale_inv at \[2, 0\]/);
  });
});
