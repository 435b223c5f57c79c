import { describe, expect, it } from 'vitest';
import { awqLoss, searchAwqScales } from '../../src/quant/awq.js';
import { fakeQuantE4m3, fp8Scale, quantizeFp8 } from '../../src/quant/fp8.js';
import { checkGroup, dequantizeInt4, fakeQuantInt4, quantizeInt4Symmetric } from '../../src/quant/int4.js';
import { dequantizeRowsInt8, quantizeRowsInt8 } from '../../src/quant/int8-wo.js';
import { smoothQuantScales } from '../../src/quant/int8-sq.js';
import { foldedVAmax } from '../../src/quant/layer.js';
import { e4m3ToF32 } from '../../src/quant/numeric.js';
import { divideRows, divideVector, gqaClasses, scaleColumns } from '../../src/quant/smoothing.js';
import type { Matrix } from '../../src/quant/types.js';

/** Deterministic pseudo-random numbers in [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  };
}

function randomMatrix(rows: number, cols: number, seed: number, colScale?: (c: number) => number): Matrix {
  const r = rng(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = r() * (colScale ? colScale(i % cols) : 1);
  return { data, rows, cols };
}

function matmulT(x: Matrix, w: Matrix): Float64Array {
  // [n, in] x [out, in]^T -> [n, out]
  const y = new Float64Array(x.rows * w.rows);
  for (let t = 0; t < x.rows; t++)
    for (let o = 0; o < w.rows; o++) {
      let acc = 0;
      for (let c = 0; c < x.cols; c++) acc += x.data[t * x.cols + c] * w.data[o * w.cols + c];
      y[t * w.rows + o] = acc;
    }
  return y;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('int8 per-channel', () => {
  it('uses amax/127 per row and errs at most half a step', () => {
    const w = randomMatrix(8, 32, 1, (c) => (c === 3 ? 10 : 1));
    const { q, scales } = quantizeRowsInt8(w);
    const back = dequantizeRowsInt8(q, scales, 8, 32);
    for (let r = 0; r < 8; r++) {
      let amax = 0;
      for (let c = 0; c < 32; c++) amax = Math.max(amax, Math.abs(w.data[r * 32 + c]));
      expect(scales[r]).toBeCloseTo(amax / 127, 6);
      for (let c = 0; c < 32; c++) expect(Math.abs(back[r * 32 + c] - w.data[r * 32 + c])).toBeLessThanOrEqual(scales[r] / 2 + 1e-7);
    }
  });
  it('keeps an all-zero row at zero', () => {
    const w: Matrix = { data: new Float32Array(16), rows: 2, cols: 8 };
    const { q, scales } = quantizeRowsInt8(w);
    expect(Array.from(q).every((v) => v === 0)).toBe(true);
    expect(Array.from(scales)).toEqual([0, 0]);
  });
});

describe('int4 groups', () => {
  it('packs two values a byte, low nibble first, and dequantizes to the fake-quantized values', () => {
    const w = randomMatrix(6, 64, 2);
    const packed = quantizeInt4Symmetric(w, 16);
    expect(packed.packed.length).toBe(6 * 32);
    expect(packed.scales.length).toBe(6 * 4);
    expect(Array.from(dequantizeInt4(packed))).toEqual(Array.from(fakeQuantInt4(w, 16)));
    // element 0 of row 0 is the low nibble of byte 0
    const q0 = Math.round(w.data[0] / packed.scales[0]) + 8;
    expect(packed.packed[0] & 0xf).toBe(q0);
  });
  it('errs at most half a step of its group', () => {
    const w = randomMatrix(4, 32, 3);
    const fq = fakeQuantInt4(w, 8);
    for (let g = 0; g < (4 * 32) / 8; g++) {
      let amax = 0;
      for (let i = 0; i < 8; i++) amax = Math.max(amax, Math.abs(w.data[g * 8 + i]));
      for (let i = 0; i < 8; i++) expect(Math.abs(fq[g * 8 + i] - w.data[g * 8 + i])).toBeLessThanOrEqual(amax / 14 + 1e-7);
    }
  });
  it('rejects a block size that does not divide the input dimension, naming the layer and the fix', () => {
    expect(() => checkGroup('model.layers.0.self_attn.q_proj', 64, 128)).toThrow(/awq_block_size 128 does not divide the input dimension 64 of model.layers.0.self_attn.q_proj/);
    try {
      checkGroup('x', 96, 128);
    } catch (e) {
      expect((e as { hint: string }).hint).toMatch(/16, 32/);
    }
    expect(() => checkGroup('x', 64, 32)).not.toThrow();
  });
});

describe('fp8', () => {
  it('maps amax onto 448 and keeps e4m3 relative precision', () => {
    const w = randomMatrix(4, 64, 4);
    const ql = quantizeFp8('l', w, 2, 10);
    const ws = new Float32Array(ql.tensors[1].data.buffer.slice(0))[0];
    const is = new Float32Array(ql.tensors[2].data.buffer.slice(0))[0];
    expect(ws).toBeCloseTo(2 / 448, 8);
    expect(is).toBeCloseTo(10 / 448, 8);
    const q = ql.tensors[0].data;
    for (let i = 0; i < w.data.length; i++) {
      const back = e4m3ToF32(q[i]) * ws;
      expect(Math.abs(back - w.data[i])).toBeLessThanOrEqual(Math.abs(w.data[i]) / 16 + 2 ** -9 * ws);
    }
    expect(fp8Scale(0)).toBe(1);
    expect(Array.from(fakeQuantE4m3(Float32Array.of(448, 1000), 1))).toEqual([448, 448]);
  });
});

describe('folding factors into the previous operation', () => {
  it('RMSNorm weight: norm(x) * w / s fed to W * s gives the same outputs', () => {
    const x = randomMatrix(5, 16, 5, (c) => (c % 5 === 0 ? 8 : 1));
    const normW = Float32Array.from({ length: 16 }, (_, c) => 1 + 0.1 * Math.sin(c));
    const w = randomMatrix(12, 16, 6);
    const rms = (m: Matrix, g: Float32Array): Matrix => {
      const out = new Float32Array(m.data.length);
      for (let t = 0; t < m.rows; t++) {
        let ss = 0;
        for (let c = 0; c < m.cols; c++) ss += m.data[t * m.cols + c] ** 2;
        const inv = 1 / Math.sqrt(ss / m.cols + 1e-6);
        for (let c = 0; c < m.cols; c++) out[t * m.cols + c] = m.data[t * m.cols + c] * inv * g[c];
      }
      return { data: out, rows: m.rows, cols: m.cols };
    };
    const before = matmulT(rms(x, normW), w);
    const s = Float32Array.from({ length: 16 }, (_, c) => 0.5 + (c % 3));
    const w2 = { ...w, data: w.data.slice() };
    const n2 = normW.slice();
    scaleColumns(w2, s);
    divideVector(n2, s);
    expect(maxAbsDiff(matmulT(rms(x, n2), w2), before)).toBeLessThan(1e-5);
  });

  it('v_proj rows under grouped-query attention: tied factors keep o_proj(attn(v)) unchanged', () => {
    const shape = { numHeads: 4, numKvHeads: 2, headDim: 3 };
    const tie = gqaClasses(shape);
    expect(Array.from(tie)).toEqual([0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]);
    const T = 4;
    const vIn = randomMatrix(T, 8, 7); // token inputs to v_proj
    const wv = randomMatrix(6, 8, 8); // [kv * D, H]
    const wo = randomMatrix(5, 12, 9); // [H_out, heads * D]
    const probs = randomMatrix(4, T, 10); // one mixing row per head (any weights: attention is linear in v)
    const attnOut = (wvm: Matrix): Matrix => {
      const v = matmulT(vIn, wvm); // [T, 6]
      const out = new Float32Array(12);
      for (let h = 0; h < 4; h++)
        for (let d = 0; d < 3; d++) {
          let acc = 0;
          for (let t = 0; t < T; t++) acc += probs.data[h * T + t] * v[t * 6 + tie[h * 3 + d]];
          out[h * 3 + d] = acc;
        }
      return { data: out, rows: 1, cols: 12 };
    };
    const before = matmulT(attnOut(wv), wo);
    const classFactor = [0.5, 2, 3, 1.5, 0.25, 4];
    const s = Float32Array.from(tie, (k) => classFactor[k]);
    const wv2 = { ...wv, data: wv.data.slice() };
    const wo2 = { ...wo, data: wo.data.slice() };
    scaleColumns(wo2, s);
    divideRows(wv2, s, tie);
    expect(maxAbsDiff(matmulT(attnOut(wv2), wo2), before)).toBeLessThan(1e-5);
  });

  it('v_proj rows: the KV cache amax of the folded model follows from the per-channel amax of v', () => {
    const shape = { numHeads: 4, numKvHeads: 2, headDim: 3 };
    const tie = gqaClasses(shape);
    const vIn = randomMatrix(16, 8, 21);
    const wv = randomMatrix(6, 8, 22);
    const channelMax = (v: Float64Array) => Float32Array.from({ length: 6 }, (_, c) => Math.max(...Array.from({ length: 16 }, (_, t) => Math.abs(v[t * 6 + c]))));
    const vAbsMax = channelMax(matmulT(vIn, wv));
    const classFactor = [0.5, 2, 3, 1.5, 0.25, 4];
    const s = Float32Array.from(tie, (k) => classFactor[k]);
    const folded = { ...wv, data: wv.data.slice() };
    divideRows(folded, s, tie);
    const engineAmax = Math.max(...channelMax(matmulT(vIn, folded)));
    expect(foldedVAmax(vAbsMax, s, shape)).toBeCloseTo(engineAmax, 5);
    // Not the float model's amax: the factors moved it.
    expect(Math.abs(Math.max(...vAbsMax) - engineAmax)).toBeGreaterThan(0.1);
  });

  it('up_proj rows: silu(gate) * up / s fed to down * s gives the same outputs', () => {
    const x = randomMatrix(3, 8, 11);
    const g = randomMatrix(10, 8, 12);
    const u = randomMatrix(10, 8, 13);
    const d = randomMatrix(8, 10, 14);
    const mlp = (um: Matrix, dm: Matrix) => {
      const gy = matmulT(x, g);
      const uy = matmulT(x, um);
      const act = new Float32Array(30);
      for (let i = 0; i < 30; i++) act[i] = (gy[i] / (1 + Math.exp(-gy[i]))) * uy[i];
      return matmulT({ data: act, rows: 3, cols: 10 }, dm);
    };
    const before = mlp(u, d);
    const s = Float32Array.from({ length: 10 }, (_, c) => 0.3 + c);
    const u2 = { ...u, data: u.data.slice() };
    const d2 = { ...d, data: d.data.slice() };
    scaleColumns(d2, s);
    divideRows(u2, s);
    expect(maxAbsDiff(mlp(u2, d2), before)).toBeLessThan(1e-5);
  });
});

describe('AWQ search', () => {
  // Activations with a few strong channels, as real LLM activations have.
  const strong = (c: number) => (c % 7 === 0 ? 12 : 0.5 + (c % 3) * 0.25);
  const x = randomMatrix(48, 64, 21, strong);
  const xMean = new Float32Array(64);
  for (let t = 0; t < 48; t++) for (let c = 0; c < 64; c++) xMean[c] += Math.abs(x.data[t * 64 + c]) / 48;
  const weights = [randomMatrix(24, 64, 22), randomMatrix(16, 64, 23)];

  it('beats round-to-nearest on activation-skewed inputs', () => {
    const r = searchAwqScales({ x, xMean, weights, group: 16 });
    expect(r.ratio).not.toBeNull();
    expect(r.loss).toBeLessThan(r.rtnLoss * 0.8);
    expect(r.rtnLoss).toBeCloseTo(awqLoss(x, weights, null, 16), 10);
  });

  it('gives tied channels one factor', () => {
    const tie = Int32Array.from({ length: 64 }, (_, c) => c % 16);
    const r = searchAwqScales({ x, xMean, weights, group: 16, tie });
    for (let c = 16; c < 64; c++) expect(r.scales[c]).toBe(r.scales[c % 16]);
  });
});

describe('SmoothQuant factors', () => {
  it('are act_max^a / w_max^(1-a), shared within tie classes, 1 for dead channels', () => {
    const actMax = Float32Array.of(4, 1, 0, 9);
    const w: Matrix = { data: Float32Array.of(1, 2, 3, 1, 0.25, 0.5, 1, 4), rows: 2, cols: 4 };
    const s = smoothQuantScales(actMax, [w], 0.5);
    expect(s[0]).toBeCloseTo(Math.sqrt(4) / Math.sqrt(1), 6);
    expect(s[1]).toBeCloseTo(Math.sqrt(1) / Math.sqrt(2), 6);
    expect(s[2]).toBe(1);
    expect(s[3]).toBeCloseTo(Math.sqrt(9) / Math.sqrt(4), 6);
    const tied = smoothQuantScales(actMax, [w], 0.5, Int32Array.of(0, 0, 1, 1));
    expect(tied[0]).toBe(tied[1]);
    expect(tied[2]).toBe(tied[3]);
  });
});
