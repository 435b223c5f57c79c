// The runtime's native quantization passes (native/src/addon/quant_passes.cpp) against their
// TypeScript definitions (src/quant/kernels.ts referenceKernels): the same bytes, edge values
// included, one pass at a time and through whole layers and heads of every format. An engine must
// not depend on which of the two built it.
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { quantizeHead } from '../../src/quant/head.js';
import { referenceKernels, type QuantKernels } from '../../src/quant/kernels.js';
import { quantizeLayer, type CaptureStats, type LayerCalibration, type LayerFormat, type LayerWeights } from '../../src/quant/layer.js';
import { gqaClasses, linearNames, type LinearName } from '../../src/quant/smoothing.js';
import { e4m3ToF32 } from '../../src/quant/numeric.js';
import { swigluStats } from '../../src/quant/expert-stats.js';
import type { Matrix } from '../../src/quant/types.js';

let native: QuantKernels;
beforeAll(async () => {
  const k = (await loadRuntimeBridge()).quantKernels;
  if (!k) throw new Error('the runtime has no native quantization passes');
  native = k;
});

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

function matrix(rows: number, cols: number, seed: number, colScale = (_c: number) => 1): Matrix {
  const r = random(seed);
  return { data: Float32Array.from({ length: rows * cols }, (_, i) => r() * colScale(i % cols)), rows, cols };
}

const copy = (m: Matrix): Matrix => ({ data: m.data.slice(), rows: m.rows, cols: m.cols });
/** Float bits, NaN as one token (JavaScript leaves a NaN's sign and payload unspecified). */
const bits = (a: Float32Array | Float64Array) => {
  const u = a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : new BigUint64Array(a.buffer, a.byteOffset, a.length);
  return [...u].map((b, i) => (Number.isNaN(a[i]) ? 'NaN' : b));
};

/** A matrix with every edge value the passes must treat as the TypeScript does. */
function awkward(rows: number, cols: number, seed: number): Matrix {
  const w = matrix(rows, cols, seed, (c) => (c % 9 === 0 ? 30 : 1));
  w.data.fill(0, cols, 2 * cols); // an all-zero row
  for (let c = 0; c < cols; c++) w.data[2 * cols + c] = c === 0 ? 127 : (c % 200) - 99.5; // amax 127: int8 ties at x.5
  w.data[3 * cols + 1] = -0;
  w.data[4 * cols + 7] = Number.NaN;
  w.data[5 * cols + 3] = Number.POSITIVE_INFINITY;
  w.data[6 * cols + 2] = Number.NEGATIVE_INFINITY;
  return w;
}

describe('native quantization passes, one at a time', () => {
  it('int8 rows: the codes and scales of quantizeRowsInt8', () => {
    const w = awkward(40, 320, 1);
    const ts = referenceKernels.int8Rows(w);
    const n = native.int8Rows(w);
    expect(Buffer.from(n.q.buffer).equals(Buffer.from(ts.q.buffer))).toBe(true);
    expect(bits(n.scales)).toEqual(bits(ts.scales));
    expect(ts.q[2 * 320 + 1]).not.toBe(0); // the tie row quantized
  });

  it('e4m3: the codes of quantizeE4m3, ties, saturation, subnormals and non-finite values included', () => {
    const scale = Math.fround(300 / 448); // not a power of two: the quotient's double precision matters
    const edge = [0, -0, 448, 449, 464, 1e9, -1e9, 2 ** -9, 2 ** -10, 3 * 2 ** -10, 1.0625, 1.1875, -1.0625, 240, 248, 232, NaN, Infinity, -Infinity];
    const values = new Float32Array(200_000);
    const r = random(3);
    // (the second half spread over every binade from 2^-14 to 2^10: subnormals, normals, saturation)
    for (let i = 0; i < values.length; i++)
      values[i] = i < edge.length * 2 ? edge[i % edge.length] * (i < edge.length ? 1 : scale) : i < 100_000 ? r() * 400 : (r() - 0.5) * 2 ** (Math.floor(r() * 25) - 14);
    // Every code and every midpoint between two neighbours (a tie), both signs.
    const codes = Array.from({ length: 127 }, (_, k) => e4m3ToF32(k));
    const exact = codes.flatMap((v, k) => (k < 126 ? [v, (v + codes[k + 1]) / 2] : [v]));
    values.set(exact, 1000);
    values.set(exact.map((v) => -v), 2000);
    for (const s of [1, scale]) expect(Buffer.from(native.e4m3(values, s)).equals(Buffer.from(referenceKernels.e4m3(values, s)))).toBe(true);
  });

  it("rowDots: the same doubles, so an unrouted MoE expert's fallback statistics are the same floats", () => {
    const x = matrix(37, 300, 21);
    const gate = matrix(70, 300, 22);
    const up = matrix(70, 300, 23);
    x.data[5] = Number.NaN;
    expect(bits(native.rowDots(x, gate))).toEqual(bits(referenceKernels.rowDots(x, gate)));
    const a = swigluStats(x, gate, up, native.rowDots);
    const b = swigluStats(x, gate, up);
    expect(bits(a.samples.data)).toEqual(bits(b.samples.data));
    expect(bits(a.absMax)).toEqual(bits(b.absMax));
    expect(bits(a.absMean)).toEqual(bits(b.absMean));
    expect(() => native.rowDots(x, matrix(4, 299, 1))).toThrow(/as many columns/);
  });

  it('absMax skips NaN; column maxima keep it', () => {
    const big = matrix(1100, 1000, 5).data; // more than one native chunk
    big[123_456] = -77;
    big[999] = Number.NaN;
    expect(native.absMax(big)).toBe(referenceKernels.absMax(big));
    expect(native.absMax(big)).toBe(77);
    const w = awkward(33, 300, 6);
    const into = () => Float32Array.from({ length: 300 }, (_, c) => (c % 5 === 0 ? 2 : 0));
    const [a, b] = [into(), into()];
    referenceKernels.columnAbsMaxInto(w, a);
    native.columnAbsMaxInto(w, b);
    expect(bits(b)).toEqual(bits(a));
    expect(Number.isNaN(a[7])).toBe(true);
  });

  it("AWQ's weight means: the same double sums, accumulated over several linears", () => {
    for (const group of [32, 128]) {
      const sums = [new Float64Array(512), new Float64Array(512)];
      const ws = [matrix(70, 512, group, (c) => (c % 13 === 0 ? 9 : 1)), awkward(12, 512, 8)];
      for (const w of ws) {
        referenceKernels.weightMeanInto(w, group, sums[0]);
        native.weightMeanInto(w, group, sums[1]);
      }
      expect(bits(sums[1])).toEqual(bits(sums[0]));
    }
  });

  it('factor folding: columns scaled and rows divided, tied rows once', () => {
    const s = Float32Array.from({ length: 64 }, (_, c) => 0.3 + (c % 7) * 0.41);
    const w = matrix(50, 64, 9);
    const [a, b] = [copy(w), copy(w)];
    referenceKernels.scaleColumns(a, s);
    native.scaleColumns(b, s);
    expect(bits(b.data)).toEqual(bits(a.data));
    const tie = gqaClasses({ numHeads: 4, numKvHeads: 2, headDim: 16 }); // 64 channels onto 32 rows
    const tied = Float32Array.from({ length: 64 }, (_, c) => 0.5 + (tie[c] % 5) * 0.3);
    const v = matrix(32, 48, 10);
    const [va, vb] = [copy(v), copy(v)];
    referenceKernels.divideRows(va, tied, tie);
    native.divideRows(vb, tied, tie);
    expect(bits(vb.data)).toEqual(bits(va.data));
    const [ua, ub] = [copy(w), copy(w)];
    referenceKernels.divideRows(ua, s.subarray(0, 50));
    native.divideRows(ub, s.subarray(0, 50));
    expect(bits(ub.data)).toEqual(bits(ua.data));
    expect(() => native.divideRows(copy(v), s, undefined)).toThrow(/outside w/);
  });

  it('bf16 decoding: the bits of decodeFloats, from a file buffer at an odd offset', () => {
    const raw = new Uint8Array(2 * 300_001 + 1);
    const r = random(12);
    for (let i = 0; i < raw.length; i++) raw[i] = Math.floor((r() + 1) * 128) & 0xff;
    raw.set([0xc0, 0x7f, 0x80, 0xff, 0x00, 0x80], 1); // a NaN, -Inf and -0
    const bytes = raw.subarray(1); // byteOffset 1: not aligned for a Uint16Array view
    const a = referenceKernels.decodeBf16(bytes);
    const b = native.decodeBf16(bytes);
    expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(Number.isNaN(b[0]) && b[1] === -Infinity && Object.is(b[2], -0)).toBe(true);
    expect(() => native.decodeBf16(raw.subarray(0, 3))).toThrow(/odd number of bytes/);
  });

  it('rejects arrays that do not match the shape they are given', () => {
    expect(() => native.int8Rows({ data: new Float32Array(10), rows: 3, cols: 4 })).toThrow(/rows x cols/);
    expect(() => native.weightMeanInto(matrix(4, 96, 1), 64, new Float64Array(96))).toThrow(/multiple of group/);
  });
});

// One Qwen3 decoder layer, small: hidden 64, 4 query / 2 KV heads of 16, MLP 96.
const attention = { numHeads: 4, numKvHeads: 2, headDim: 16 };
const shapes: Record<LinearName, [number, number]> = {
  'self_attn.q_proj': [64, 64],
  'self_attn.k_proj': [32, 64],
  'self_attn.v_proj': [32, 64],
  'self_attn.o_proj': [64, 64],
  'mlp.gate_proj': [96, 64],
  'mlp.up_proj': [96, 64],
  'mlp.down_proj': [64, 96],
};

function layer(): LayerWeights {
  const linears = {} as Record<LinearName, Matrix>;
  linearNames.forEach((n, i) => (linears[n] = matrix(shapes[n][0], shapes[n][1], 20 + i, (c) => (c % 11 === 0 ? 4 : 1))));
  const r = random(40);
  return { inputNorm: Float32Array.from({ length: 64 }, () => 1 + r() * 0.2), postNorm: Float32Array.from({ length: 64 }, () => 1 + r() * 0.2), linears };
}

function capture(cols: number, seed: number): CaptureStats {
  const samples = matrix(24, cols, seed, (c) => (c % 17 === 0 ? 12 : 1));
  const absMax = new Float32Array(cols);
  const absMean = new Float32Array(cols);
  for (let t = 0; t < samples.rows; t++) {
    for (let c = 0; c < cols; c++) {
      const v = Math.abs(samples.data[t * cols + c]);
      absMax[c] = Math.max(absMax[c], v);
      absMean[c] += v / samples.rows;
    }
  }
  return { absMax, absMean, samples };
}

const calibration: LayerCalibration = {
  captures: { attn_in: capture(64, 50), o_in: capture(64, 51), mlp_in: capture(64, 52), down_in: capture(96, 53) },
  kAmax: 3.5,
  vAmax: 2.25,
  vAbsMax: Float32Array.from({ length: 32 }, (_, c) => 0.5 + (c % 6) * 0.3),
};

describe('native quantization passes, whole layers and heads', () => {
  for (const format of ['int8_wo', 'int4_rtn', 'int4_awq', 'fp8', 'int8_sq'] as LayerFormat[]) {
    it(`${format}: the same tensors, notes and KV amax as the TypeScript`, () => {
      const opts = { format, group: 32, alpha: 0.5, attention };
      const ts = quantizeLayer(3, layer(), calibration, { ...opts, kernels: referenceKernels });
      const nat = quantizeLayer(3, layer(), calibration, { ...opts, kernels: native });
      expect(nat.notes).toEqual(ts.notes);
      expect(nat.kvAmax).toEqual(ts.kvAmax);
      expect(bits(nat.inputNorm)).toEqual(bits(ts.inputNorm));
      expect(bits(nat.postNorm)).toEqual(bits(ts.postNorm));
      for (const name of linearNames) {
        const [a, b] = [ts.linears.get(name)!, nat.linears.get(name)!];
        expect(b.entry).toEqual(a.entry);
        expect(b.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(a.tensors.map((t) => [t.name, t.dtype, t.shape]));
        b.tensors.forEach((t, i) => expect(Buffer.from(t.data).equals(Buffer.from(a.tensors[i].data)), `${name} ${t.name}`).toBe(true));
      }
      const head = (k: QuantKernels) => quantizeHead(matrix(200, 64, 60), Float32Array.from({ length: 64 }, (_, c) => 1 + c / 64), capture(64, 61), { ...opts, kernels: k });
      const [ha, hb] = [head(referenceKernels), head(native)];
      expect(bits(hb.finalNorm)).toEqual(bits(ha.finalNorm));
      hb.linear.tensors.forEach((t, i) => expect(Buffer.from(t.data).equals(Buffer.from(ha.linear.tensors[i].data)), `lm_head ${t.name}`).toBe(true));
    });
  }
});
