import { describe, expect, it } from 'vitest';
import { AWQ_ORDER, AWQ_REVERSE_ORDER, awqToInt4, packAwqInt32, quantizeLikeAutoAwq, unpackAwqInt32 } from '../../src/quant/autoawq.js';
import { dequantizeInt4 } from '../../src/quant/int4.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/quant/numeric.js';

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

describe('AutoAWQ GEMM packing', () => {
  it('puts output channel order[k] of each eight in nibble k, as AutoAWQ does', () => {
    const values = Uint8Array.from({ length: 8 }, (_, c) => c + 1); // channel c holds c + 1
    const [word] = packAwqInt32(values, 1, 8);
    for (let k = 0; k < 8; k++) expect((word >>> (4 * k)) & 0xf).toBe(AWQ_ORDER[k] + 1);
    for (let c = 0; c < 8; c++) expect(AWQ_ORDER[AWQ_REVERSE_ORDER[c]]).toBe(c);
    expect(Array.from(unpackAwqInt32(Int32Array.of(word), 1, 8))).toEqual(Array.from(values));
  });

  it('round-trips values 0..15 including the sign bit of the int32', () => {
    const values = Uint8Array.from({ length: 3 * 16 }, (_, i) => (i * 7 + 15) % 16);
    expect(Array.from(unpackAwqInt32(packAwqInt32(values, 3, 16), 3, 16))).toEqual(Array.from(values));
  });

  it('converts to the engine int4 layout exactly: same dequantized weights as AutoAWQ', () => {
    const out = 16, inF = 64, group = 32;
    const w = Float32Array.from({ length: out * inF }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 5)));
    const t = quantizeLikeAutoAwq(w, out, inF, group, f16);
    // AutoAWQ's dequantization, straight from its tensors: w[o, i] = (q[i, o] - z[i/g, o]) * s[i/g, o]
    const q = unpackAwqInt32(t.qweight, inF, out);
    const z = unpackAwqInt32(t.qzeros, inF / group, out);
    const engine = dequantizeInt4(awqToInt4(t));
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inF; i++) {
        const g = Math.floor(i / group);
        const expected = (q[i * out + o] - z[g * out + o]) * t.scales[g * out + o];
        expect(engine[o * inF + i]).toBe(Math.fround(expected));
      }
    // and it is a faithful quantization of w (asymmetric: error at most half a step)
    for (let o = 0; o < out; o++)
      for (let i = 0; i < inF; i++) {
        const s = t.scales[Math.floor(i / group) * out + o];
        expect(Math.abs(engine[o * inF + i] - w[o * inF + i])).toBeLessThanOrEqual(s * 0.5 + 1e-6);
      }
  });
});
