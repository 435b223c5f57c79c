// Block-scaled FP8 weights as Qwen's and DeepSeek-V3's "fine-grained FP8" checkpoints store them
// (quantization_config {quant_method: "fp8", fmt: "e4m3", weight_block_size: [bo, bi]}):
//   weight            e4m3fn [out, in]
//   weight_scale_inv  float  [ceil(out / bo), ceil(in / bi)]
//   w[i, j] = e4m3(weight[i, j]) * weight_scale_inv[floor(i / bo), floor(j / bi)]
// Despite its name weight_scale_inv is a multiplier: the quantizer divides each block by amax / 448
// and stores that divisor. Blocks at the right and bottom edges may be partial (the ceil above).
// This is transformers' convention (integrations/finegrained_fp8.py: FP8Linear sizes the grid with
// ceil, _dequantize_fp8_weight repeats each scale over its block and cuts the last one short) and
// vLLM's (quantization/fp8.py: Fp8LinearMethod sizes weight_scale_inv (out + bo - 1) / bo by
// (in + bi - 1) / bi, block [0] along the output).
import { e4m3ToF32, f32ToE4m3, FP8_E4M3_MAX } from './numeric.js';

export type BlockSize = [rows: number, cols: number];

/** e4m3fn bytes -> value: a table, since dequantizing a whole model reads billions of them. */
const E4M3_VALUES = Float32Array.from({ length: 256 }, (_, b) => e4m3ToF32(b));

/** [ceil(out / bo), ceil(in / bi)]: the shape weight_scale_inv must have. */
export function scaleGridShape(rows: number, cols: number, block: BlockSize): [number, number] {
  return [Math.ceil(rows / block[0]), Math.ceil(cols / block[1])];
}

export interface Fp8BlockWeight {
  /** e4m3fn bytes [rows, cols]. */
  codes: Uint8Array;
  /** weight_scale_inv [ceil(rows / bo), ceil(cols / bi)], widened to fp32. */
  scaleInv: Float32Array;
  rows: number;
  cols: number;
  block: BlockSize;
}

/** Where a block-scaled weight holds a value that is not a finite number. */
export class NonFiniteFp8 extends Error {
  constructor(readonly row: number, readonly col: number, readonly what: 'code' | 'scale') {
    super(`${what === 'code' ? 'an e4m3 NaN code' : 'a non-finite weight_scale_inv'} at [${row}, ${col}]`);
  }
}

/**
 * The weight as fp32 [rows, cols]. Each value is one rounding of the exact product (e4m3 has 4
 * significant bits, so the double product is exact), as torch's fp32 multiply gives.
 */
export function dequantizeFp8Block(t: Fp8BlockWeight): Float32Array {
  const { codes, scaleInv, rows, cols, block } = t;
  const [bo, bi] = block;
  const gridCols = Math.ceil(cols / bi);
  const out = new Float32Array(rows * cols);
  for (let g = 0; g < scaleInv.length; g++) {
    if (!Number.isFinite(scaleInv[g])) throw new NonFiniteFp8(Math.floor(g / gridCols) * bo, (g % gridCols) * bi, 'scale');
  }
  for (let i = 0; i < rows; i++) {
    const scaleRow = Math.floor(i / bo) * gridCols;
    const base = i * cols;
    for (let j = 0; j < cols; j++) {
      const b = codes[base + j];
      // 0x7f and 0xff are e4m3fn's NaN; it has no infinities.
      if ((b & 0x7f) === 0x7f) throw new NonFiniteFp8(i, j, 'code');
      out[base + j] = E4M3_VALUES[b] * scaleInv[scaleRow + Math.floor(j / bi)];
    }
  }
  return out;
}

/**
 * Quantizes w [rows, cols] the way transformers' Fp8Quantize writes these checkpoints: per block,
 * scale = 448 / amax (1 for an all-zero block), weight_scale_inv = 1 / scale, codes = e4m3(w * scale)
 * rounded to nearest even and saturated at +-448. Every fp32 step is rounded as torch's is.
 * Used to make test checkpoints; partial edge blocks take the amax of the values they hold.
 */
export function quantizeFp8Block(w: Float32Array, rows: number, cols: number, block: BlockSize): Fp8BlockWeight {
  const [bo, bi] = block;
  const [gr, gc] = scaleGridShape(rows, cols, block);
  const amax = new Float32Array(gr * gc);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const g = Math.floor(i / bo) * gc + Math.floor(j / bi);
      amax[g] = Math.max(amax[g], Math.abs(w[i * cols + j]));
    }
  }
  const scale = Float32Array.from(amax, (a) => (a > 0 ? Math.fround(FP8_E4M3_MAX / a) : 1));
  const scaleInv = Float32Array.from(scale, (s) => Math.fround(1 / s));
  const codes = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const s = scale[Math.floor(i / bo) * gc + Math.floor(j / bi)];
      codes[i * cols + j] = f32ToE4m3(Math.fround(w[i * cols + j] * s));
    }
  }
  return { codes, scaleInv, rows, cols, block };
}
