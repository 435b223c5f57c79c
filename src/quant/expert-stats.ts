// Which activation statistics a Qwen3-MoE expert is quantized from. Its own: the calibration rows of
// the tokens the router sent to it (what TensorRT-LLM's, llm-compressor's and AutoAWQ's MoE
// calibration measure). An expert that no calibration token reached has none, and one that only
// unsampled tokens reached has no rows for AWQ's search; such an expert is calibrated as if every
// calibration token had been routed to it: its gate/up_proj on the layer's MLP input (every token),
// its down_proj on its own SwiGLU of the layer's sampled MLP input rows. That is what it would see
// under a router that picked it for everything, a superset of what it can see at run time; fp8's
// input scales come out no smaller than needed (no clipping), AWQ's and SmoothQuant's factors follow
// the layer's typical channels rather than a guess.
import type { CaptureStats, LayerCalibration } from './layer.js';
import type { Matrix } from './types.js';

export interface ExpertWeights {
  gate: Matrix;
  up: Matrix;
  down: Matrix;
}

export interface ExpertStats {
  gateUp: CaptureStats;
  down: CaptureStats;
  /** Calibrated as if every token were routed to it (see above). */
  fallback: boolean;
}

/** Whether an expert's own statistics serve: AWQ's search needs sampled rows, the others per-channel maxima. */
export function hasOwnStats(layer: LayerCalibration, expert: number, needsSamples: boolean): boolean {
  const e = layer.experts?.[expert];
  if (!e || e.tokens === 0) return false;
  return !needsSamples || e.gateUp.samples.rows > 0;
}

export function expertStats(layer: LayerCalibration, expert: number, w: ExpertWeights, needsSamples: boolean,
  dots: (x: Matrix, w: Matrix) => Float64Array = rowDots): ExpertStats {
  if (hasOwnStats(layer, expert, needsSamples)) {
    const e = layer.experts![expert];
    return { gateUp: e.gateUp, down: e.down, fallback: false };
  }
  const mlpIn = layer.captures.mlp_in;
  return { gateUp: mlpIn, down: swigluStats(mlpIn.samples, w.gate, w.up, dots), fallback: true };
}

const silu = (v: number): number => v / (1 + Math.exp(-v));

/** [x.rows, w.rows]: each row of x dotted with each row of w, in double, summed along the columns in order. */
export function rowDots(x: Matrix, w: Matrix): Float64Array {
  const H = x.cols;
  const out = new Float64Array(x.rows * w.rows);
  for (let t = 0; t < x.rows; t++) {
    const xt = x.data.subarray(t * H, (t + 1) * H);
    for (let o = 0; o < w.rows; o++) {
      let acc = 0;
      const base = o * H;
      for (let c = 0; c < H; c++) acc += xt[c] * w.data[base + c];
      out[t * w.rows + o] = acc;
    }
  }
  return out;
}

/**
 * Statistics of silu(x gate^T) * (x up^T) over the rows of x: an expert's down_proj input for those
 * tokens. `dots`: rowDots or its native twin (the same values; at Qwen3-30B-A3B's size the products
 * take seconds per expert in JavaScript).
 */
export function swigluStats(x: Matrix, gate: Matrix, up: Matrix, dots: (x: Matrix, w: Matrix) => Float64Array = rowDots): CaptureStats {
  const I = gate.rows;
  const g = dots(x, gate);
  const u = dots(x, up);
  const out = new Float32Array(x.rows * I);
  for (let i = 0; i < out.length; i++) out[i] = silu(g[i]) * u[i];
  const absMax = new Float32Array(I);
  const sum = new Float64Array(I);
  for (let t = 0; t < x.rows; t++)
    for (let o = 0; o < I; o++) {
      const a = Math.abs(out[t * I + o]);
      absMax[o] = Math.max(absMax[o], a);
      sum[o] += a;
    }
  const n = Math.max(1, x.rows);
  return { absMax, absMean: Float32Array.from(sum, (s) => s / n), samples: { data: out, rows: x.rows, cols: I } };
}
