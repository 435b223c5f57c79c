// AWQ's activation-aware scale search (Lin et al. 2023, as AutoAWQ and ModelOpt's awq_lite run it):
// for linears that read the same input, try per-input-channel factors
//   s = x_mean^r / w_mean^(1 - r),  r = 0, 1/n, ..., (n-1)/n,  normalized by sqrt(max(s) * min(s)),
// quantize W * s to int4 groups, and keep the r whose outputs on calibration activations are
// closest to the float outputs. The input side is divided by s where that is exact (smoothing.ts).
// Plain round-to-nearest (s = 1) is one of the candidates, so on the calibration data AWQ never
// does worse than it.
import { fakeQuantInt4 } from './int4.js';
import type { Matrix } from './types.js';

export interface AwqSearchInput {
  /** [n, in]: calibration activations feeding these linears (a sample of tokens). */
  x: Matrix;
  /** [in]: mean |x| per input channel over all calibration tokens. */
  xMean: Float32Array;
  /** The linears that read x, [out, in] each. */
  weights: Matrix[];
  group: number;
  /** Grid points for the ratio r (AutoAWQ: 20). */
  grid?: number;
  /**
   * Channels that must share one factor (o_proj under grouped-query attention: the factor folds into
   * v_proj rows, which serve every query head of a group). tie[c] = class id; undefined: none.
   */
  tie?: Int32Array;
  /** The objective (awqLoss below, or the runtime's native twin of it for real model sizes). */
  loss?: AwqObjective;
  /** addWeightMean below, or its native twin (the same sums). */
  weightMean?: WeightMeanInto;
}

/** Adds one linear's AutoAWQ weight means to sum (see addWeightMean). */
export type WeightMeanInto = (w: Matrix, group: number, sum: Float64Array) => void;

/** Mean squared output error of int4 with factors s (null: round-to-nearest) over the samples x. */
export type AwqLossFn = (x: Matrix, w: Matrix, s: Float32Array | null, group: number) => number;

/**
 * The same objective as a search uses it: opened once per linear group (x, its stacked weights),
 * then evaluated per candidate; a GPU backend stages x and w on the device when it is opened.
 */
export type AwqObjective = (x: Matrix, w: Matrix, group: number) => (s: Float32Array | null) => number;

/** A plain loss function as an objective. */
export const objectiveOf = (loss: AwqLossFn): AwqObjective => (x, w, group) => (s) => loss(x, w, s, group);

export interface AwqSearchResult {
  /** [in]: the chosen factors (all 1 when round-to-nearest won). */
  scales: Float32Array;
  /** The chosen ratio r, or null for round-to-nearest. */
  ratio: number | null;
  /** Mean squared output error of the chosen factors and of round-to-nearest. */
  loss: number;
  rtnLoss: number;
}

/** Mean over classes: every channel gets its class's mean (no-op without ties). */
function tieMean(v: Float32Array, tie: Int32Array | undefined): Float32Array {
  if (!tie) return v;
  const sums = new Map<number, [number, number]>();
  for (let c = 0; c < v.length; c++) {
    const e = sums.get(tie[c]) ?? [0, 0];
    e[0] += v[c];
    e[1] += 1;
    sums.set(tie[c], e);
  }
  return v.map((_, c) => {
    const [s, n] = sums.get(tie[c])!;
    return s / n;
  });
}

/** sum[c] += |w[r, c]| / (its group's absmax + 1e-6) for every row r, in row order (in double). */
export function addWeightMean(w: Matrix, group: number, sum: Float64Array): void {
  const cols = w.cols;
  for (let base = 0; base < w.rows * cols; base += group) {
    let amax = 0;
    for (let i = 0; i < group; i++) amax = Math.max(amax, Math.abs(w.data[base + i]));
    const inv = 1 / (amax + 1e-6);
    const c0 = base % cols;
    for (let i = 0; i < group; i++) sum[c0 + i] += Math.abs(w.data[base + i]) * inv;
  }
}

/** AutoAWQ's w_mean: |w| relative to its group's absmax, averaged over all output rows. */
export function awqWeightMean(weights: Matrix[], group: number, meanInto: WeightMeanInto = addWeightMean): Float32Array {
  const sum = new Float64Array(weights[0].cols);
  let rows = 0;
  for (const w of weights) {
    meanInto(w, group, sum);
    rows += w.rows;
  }
  return Float32Array.from(sum, (s) => s / rows);
}

export function awqCandidate(xMean: Float32Array, wMean: Float32Array, ratio: number): Float32Array {
  const s = new Float32Array(xMean.length);
  let max = 0;
  let min = Infinity;
  for (let c = 0; c < s.length; c++) {
    const v = Math.max(1e-4, xMean[c] ** ratio / (wMean[c] ** (1 - ratio) + 1e-4));
    s[c] = v;
    max = Math.max(max, v);
    min = Math.min(min, v);
  }
  const norm = Math.sqrt(max * min);
  for (let c = 0; c < s.length; c++) s[c] /= norm;
  return s;
}

/** Mean squared error between x W^T and x (Q(W s) / s)^T over all linears. */
export function awqLoss(x: Matrix, weights: Matrix[], s: Float32Array | null, group: number): number {
  const cols = x.cols;
  let total = 0;
  let count = 0;
  for (const w of weights) {
    const scaled = new Float32Array(w.data.length);
    for (let i = 0; i < scaled.length; i++) scaled[i] = s ? w.data[i] * s[i % cols] : w.data[i];
    const q = fakeQuantInt4({ data: scaled, rows: w.rows, cols }, group);
    // delta = W - Q(W s) / s, one row at a time.
    const delta = new Float32Array(cols);
    for (let o = 0; o < w.rows; o++) {
      const base = o * cols;
      for (let c = 0; c < cols; c++) delta[c] = w.data[base + c] - (s ? q[base + c] / s[c] : q[base + c]);
      for (let t = 0; t < x.rows; t++) {
        const xb = t * cols;
        let dot = 0;
        for (let c = 0; c < cols; c++) dot += x.data[xb + c] * delta[c];
        total += dot * dot;
      }
    }
    count += w.rows * x.rows;
  }
  return total / count;
}

/** The linears of a group stacked into one [sum of out, in] matrix (their outputs side by side). */
export function stackRows(weights: Matrix[]): Matrix {
  if (weights.length === 1) return weights[0];
  const cols = weights[0].cols;
  const rows = weights.reduce((a, w) => a + w.rows, 0);
  const data = new Float32Array(rows * cols);
  let at = 0;
  for (const w of weights) {
    data.set(w.data, at);
    at += w.data.length;
  }
  return { data, rows, cols };
}

export function searchAwqScales(input: AwqSearchInput): AwqSearchResult {
  const { x, weights, group } = input;
  const grid = input.grid ?? 20;
  const stacked = stackRows(weights);
  const lossOf = (input.loss ?? objectiveOf((xm, w, s, g) => awqLoss(xm, [w], s, g)))(x, stacked, group);
  const xMean = tieMean(input.xMean, input.tie);
  const wMean = tieMean(awqWeightMean(weights, group, input.weightMean), input.tie);
  const rtnLoss = lossOf(null);
  let best: AwqSearchResult = { scales: new Float32Array(x.cols).fill(1), ratio: null, loss: rtnLoss, rtnLoss };
  for (let k = 0; k < grid; k++) {
    const ratio = k / grid;
    const s = awqCandidate(xMean, wMean, ratio);
    const loss = lossOf(s);
    if (loss < best.loss) best = { scales: s, ratio, loss, rtnLoss };
  }
  return best;
}
