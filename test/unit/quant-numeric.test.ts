import { describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  decodeFloats,
  e4m3ToF32,
  encodeFloats,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToE4m3,
  f32ToF16Bits,
  roundEven,
} from '../../src/quant/numeric.js';

describe('roundEven', () => {
  it('rounds halves to the even neighbour, like torch.round', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, -2.6, 7.5].map(roundEven)).toEqual([0, 2, 2, -0, -2, -2, 2, -3, 8]);
  });
});

describe('e4m3', () => {
  it('decodes the format landmarks (max 448, min normal 2^-6, min subnormal 2^-9, NaN)', () => {
    expect(e4m3ToF32(0x7e)).toBe(448);
    expect(e4m3ToF32(0xfe)).toBe(-448);
    expect(e4m3ToF32(0x08)).toBe(2 ** -6);
    expect(e4m3ToF32(0x01)).toBe(2 ** -9);
    expect(e4m3ToF32(0x38)).toBe(1);
    expect(e4m3ToF32(0x7f)).toBeNaN();
  });
  it('round-trips every finite code', () => {
    for (let b = 0; b < 256; b++) {
      if ((b & 0x7f) === 0x7f) continue;
      const v = e4m3ToF32(b);
      const back = f32ToE4m3(v);
      if (v === 0) expect(back & 0x7f).toBe(0);
      else expect(back).toBe(b);
    }
  });
  it('rounds to nearest, ties to even mantissa, and saturates', () => {
    expect(e4m3ToF32(f32ToE4m3(1.0625))).toBe(1); // halfway between 1 and 1.125: even mantissa 1
    expect(e4m3ToF32(f32ToE4m3(1.1875))).toBe(1.25); // halfway between 1.125 and 1.25: even is 1.25
    expect(e4m3ToF32(f32ToE4m3(1.07))).toBe(1.125);
    expect(e4m3ToF32(f32ToE4m3(1e6))).toBe(448);
    expect(e4m3ToF32(f32ToE4m3(-1e6))).toBe(-448);
    expect(e4m3ToF32(f32ToE4m3(1e-5))).toBe(0);
  });
});

describe('bf16 and fp16', () => {
  it('round to nearest even and decode back', () => {
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8))).toBe(1); // tie -> even
    expect(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8))).toBe(1 + 2 ** -6);
    expect(f16BitsToF32(f32ToF16Bits(65504))).toBe(65504);
    expect(f16BitsToF32(f32ToF16Bits(2 ** -24))).toBe(2 ** -24);
    expect(f16BitsToF32(f32ToF16Bits(1 / 3))).toBeCloseTo(1 / 3, 3);
  });
  it('encodeFloats and decodeFloats are inverse on representable values', () => {
    const v = Float32Array.from([0, 1, -2.5, 0.15625, 3072]);
    for (const dt of ['BF16', 'F16', 'F32'] as const) expect(Array.from(decodeFloats(encodeFloats(v, dt), dt))).toEqual(Array.from(v));
  });
});
