// The passes a quantized build makes over whole weight matrices, as one set: the TypeScript
// definitions below (the reference every test reads), or the runtime's native twins of them
// (native/src/addon/quant_passes.cpp, quant_tools.cpp: the same bytes on every core). An 8B
// model sends ~190M weights a layer through several of these; in JavaScript they were most of a
// build's time once calibration and AWQ's search moved to the GPU.
import { addWeightMean, type WeightMeanInto } from './awq.js';
import { absMax, quantizeE4m3, type E4m3Quantizer } from './fp8.js';
import { quantizeInt4Symmetric, type Int4Quantizer } from './int4.js';
import { columnAbsMaxInto, type ColumnMaxInto } from './int8-sq.js';
import { quantizeRowsInt8, type Int8RowQuantizer } from './int8-wo.js';
import { decodeFloats } from './numeric.js';
import { divideRows, scaleColumns } from './smoothing.js';
import { rowDots } from './expert-stats.js';
import type { Matrix } from './types.js';

export interface QuantKernels {
  /** A checkpoint's bf16 bytes as fp32 values (every float weight a build reads). */
  decodeBf16: (bytes: Uint8Array) => Float32Array;
  /** int4 symmetric groups (int4_awq, int4_rtn). */
  int4: Int4Quantizer;
  /** int8 per output row (int8_wo, int8_sq). */
  int8Rows: Int8RowQuantizer;
  /** e4m3 codes of values / scale (fp8). */
  e4m3: E4m3Quantizer;
  /** max |a| (NaN skipped): fp8's per-tensor amax. */
  absMax: (a: Float32Array) => number;
  /** AWQ's weight means. */
  weightMeanInto: WeightMeanInto;
  /** SmoothQuant's per-column weight maxima. */
  columnAbsMaxInto: ColumnMaxInto;
  /** w[:, c] *= s[c], in place: a factor folded into the linear that reads the input. */
  scaleColumns: (w: Matrix, s: Float32Array) => void;
  /** Row rowOf[c] (default c) of w divided by s[c], in place: the factor's inverse folded into the linear before. */
  divideRows: (w: Matrix, s: Float32Array, rowOf?: Int32Array) => void;
  /** [x.rows, w.rows] dot products in double: an unrouted MoE expert's fallback statistics. */
  rowDots: (x: Matrix, w: Matrix) => Float64Array;
}

export const referenceKernels: QuantKernels = {
  decodeBf16: (bytes) => decodeFloats(bytes, 'BF16'),
  int4: quantizeInt4Symmetric,
  int8Rows: quantizeRowsInt8,
  e4m3: quantizeE4m3,
  absMax,
  weightMeanInto: addWeightMean,
  columnAbsMaxInto,
  scaleColumns,
  divideRows,
  rowDots,
};
