// Number formats the quantizers write and read: bf16, fp16, fp8 e4m3 (OCP "E4M3FN": no
// infinities, max 448) and round-half-to-even, which is what torch.round and the hardware use.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds half to even (torch.round): 0.5 -> 0, 1.5 -> 2, -2.5 -> -2. */
export function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function bf16BitsToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/** float32 -> bf16 bits with round-to-nearest-even (NaN stays NaN). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export const FP8_E4M3_MAX = 448;

/** Decodes one e4m3fn byte: 1 sign, 4 exponent (bias 7), 3 mantissa bits; 0x7f/0xff are NaN. */
export function e4m3ToF32(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const exp = (byte >>> 3) & 0xf;
  const mant = byte & 0x7;
  if (exp === 15 && mant === 7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

const e4m3Table = Float64Array.from({ length: 128 }, (_, i) => e4m3ToF32(i));

/** float -> e4m3fn byte, round-to-nearest-even, saturating at +-448 (as cuda's __nv_cvt with satfinite). */
export function f32ToE4m3(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= FP8_E4M3_MAX) return sign | 0x7e;
  // Binary search over the 127 finite magnitudes (0x00..0x7e are increasing).
  let lo = 0;
  let hi = 0x7e;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (e4m3Table[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - e4m3Table[lo];
  const dHi = e4m3Table[hi] - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

/** bf16 / fp16 / fp32 little-endian bytes -> Float32Array (a copy). */
export function decodeFloats(bytes: Uint8Array, dtype: 'BF16' | 'F16' | 'F32'): Float32Array {
  const n = bytes.byteLength / (dtype === 'F32' ? 4 : 2);
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (dtype === 'F32') return new Float32Array(aligned.buffer, aligned.byteOffset, n).slice();
  const h = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
  const out = new Float32Array(n);
  if (dtype === 'BF16') {
    const o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o32[i] = h[i] << 16;
  } else {
    for (let i = 0; i < n; i++) out[i] = f16BitsToF32(h[i]);
  }
  return out;
}

/** Float32Array -> bytes of the engine dtype (bf16 and fp16 round to nearest even). */
export function encodeFloats(values: Float32Array, dtype: 'BF16' | 'F16' | 'F32'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  if (dtype === 'BF16') for (let i = 0; i < values.length; i++) out[i] = f32ToBf16Bits(values[i]);
  else for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return new Uint8Array(out.buffer);
}

/** IEEE half, round-to-nearest-even, overflow to infinity. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const m = mant >>> 13;
  const rest = mant & 0x1fff;
  let out = sign | (e << 10) | m;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) out++;
  return out;
}
