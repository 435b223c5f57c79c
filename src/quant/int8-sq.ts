// int8_sq (SmoothQuant, TensorRT-LLM W8A8 per-channel / per-token): activation outliers migrate into
// the weights through per-input-channel factors s = act_max^alpha / w_max^(1 - alpha), folded into
// the previous operation (see smoothing.ts); weights are then int8 per output channel and the
// runtime quantizes each token's activations to int8 with its own absmax scale:
//   y[t,o] = w_scale[o] * x_scale[t] * sum_i q[o,i] * xq[t,i].
import { quantizeRowsInt8, type Int8RowQuantizer } from './int8-wo.js';
import { bytesOf, type Matrix, type QuantizedLinear } from './types.js';

/**
 * SmoothQuant's factors for linears that share one input.
 * @param actMaxIn per input channel, the calibrated absolute maximum of the activations
 * @param weights the linears reading that input ([out, in] each)
 */
export function smoothQuantScales(actMaxIn: Float32Array, weights: Matrix[], alpha: number, tie?: Int32Array, colMax: ColumnMaxInto = columnAbsMaxInto): Float32Array {
  const cols = actMaxIn.length;
  let wMax: Float32Array = new Float32Array(cols);
  for (const w of weights) colMax(w, wMax);
  const actMax = tie ? tieMax(actMaxIn, tie) : actMaxIn;
  if (tie) wMax = tieMax(wMax, tie);
  const s = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    // A channel never active (or a zero column) gets no migration.
    s[c] = actMax[c] > 0 && wMax[c] > 0 ? Math.max(1e-5, actMax[c] ** alpha / wMax[c] ** (1 - alpha)) : 1;
  }
  return s;
}

/** Raises into[c] to max |w[r, c]| over every row (Math.max: a NaN stays). */
export type ColumnMaxInto = (w: Matrix, into: Float32Array) => void;

export function columnAbsMaxInto(w: Matrix, into: Float32Array): void {
  for (let r = 0; r < w.rows; r++) {
    const base = r * w.cols;
    for (let c = 0; c < w.cols; c++) into[c] = Math.max(into[c], Math.abs(w.data[base + c]));
  }
}

/** Max over each class of channels that must share one factor (see smoothing.ts, gqaClasses). */
export function tieMax(v: Float32Array, tie: Int32Array): Float32Array {
  const m = new Map<number, number>();
  for (let c = 0; c < v.length; c++) m.set(tie[c], Math.max(m.get(tie[c]) ?? 0, v[c]));
  return v.map((_, c) => m.get(tie[c])!);
}

export function quantizeInt8Sq(name: string, w: Matrix, int8Rows: Int8RowQuantizer = quantizeRowsInt8): QuantizedLinear {
  const { q, scales } = int8Rows(w);
  return {
    entry: {
      format: 'int8_sq',
      out_features: w.rows,
      in_features: w.cols,
      activation: 'per_token_dynamic',
      tensors: { weight: `${name}.qweight`, scales: `${name}.scales` },
    },
    tensors: [
      { name: `${name}.qweight`, dtype: 'I8', shape: [w.rows, w.cols], data: bytesOf(q) },
      { name: `${name}.scales`, dtype: 'F32', shape: [w.rows], data: bytesOf(scales) },
    ],
  };
}
