// int8_wo (TensorRT-LLM W8A16): int8 weights with one symmetric scale per output channel;
// activations stay in the engine's float dtype. The runtime computes y[o] = scale[o] * sum_i q[o,i] * x[i].
import { roundEven } from './numeric.js';
import { bytesOf, type Matrix, type QuantizedLinear } from './types.js';

export const INT8_MAX = 127;

/** quantizeRowsInt8, or its native twin (the same bytes). */
export type Int8RowQuantizer = (w: Matrix) => { q: Int8Array; scales: Float32Array };

/** Per-row absmax quantization to int8: q = round(w / (amax / 127)), scales = amax / 127. */
export function quantizeRowsInt8(w: Matrix): { q: Int8Array; scales: Float32Array } {
  const { data, rows, cols } = w;
  const q = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let amax = 0;
    for (let c = 0; c < cols; c++) amax = Math.max(amax, Math.abs(data[base + c]));
    const scale = Math.fround(amax / INT8_MAX);
    scales[r] = scale;
    if (scale === 0) continue;
    for (let c = 0; c < cols; c++) {
      const v = roundEven(data[base + c] / scale);
      q[base + c] = v > INT8_MAX ? INT8_MAX : v < -INT8_MAX ? -INT8_MAX : v;
    }
  }
  return { q, scales };
}

export function dequantizeRowsInt8(q: Int8Array, scales: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = q[r * cols + c] * scales[r];
  return out;
}

export function quantizeInt8Wo(name: string, w: Matrix, int8Rows: Int8RowQuantizer = quantizeRowsInt8): QuantizedLinear {
  const { q, scales } = int8Rows(w);
  return {
    entry: {
      format: 'int8_wo',
      out_features: w.rows,
      in_features: w.cols,
      tensors: { weight: `${name}.qweight`, scales: `${name}.scales` },
    },
    tensors: [
      { name: `${name}.qweight`, dtype: 'I8', shape: [w.rows, w.cols], data: bytesOf(q) },
      { name: `${name}.scales`, dtype: 'F32', shape: [w.rows], data: bytesOf(scales) },
    ],
  };
}
