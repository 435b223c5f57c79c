// Pre-quantized Hugging Face AWQ checkpoints (quantization_config.quant_method "awq", version
// "gemm", as AutoAWQ writes them, e.g. Qwen/Qwen3-14B-AWQ). Per linear:
//   qweight int32 [in, out / 8]   eight 4-bit values of consecutive output channels per int32,
//                                 nibble k (bits 4k..4k+3) holding channel 8j + order[k],
//                                 order = [0, 2, 4, 6, 1, 3, 5, 7]
//   qzeros  int32 [in / group, out / 8]   zero points, packed the same way
//   scales  fp16  [in / group, out]
//   w[o, i] = (q[i, o] - zero[i / group, o]) * scale[i / group, o]
// They convert losslessly to the engine's int4 layout (int4.ts): transposed to [out, in], two
// values a byte, fp16 scales widened to fp32.
import type { Int4Weights } from './int4.js';

/** AutoAWQ's interleave: nibble k of a packed int32 holds output channel order[k] of its eight. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7];
/** Inverse: channel c of the eight sits in nibble AWQ_REVERSE_ORDER[c]. */
export const AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7];

/** [rows, cols] 4-bit values (0..15) -> int32 [rows, cols / 8] in AutoAWQ's order. */
export function packAwqInt32(values: Uint8Array, rows: number, cols: number): Int32Array {
  const out = new Int32Array((rows * cols) / 8);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols / 8; j++) {
      let word = 0;
      for (let k = 0; k < 8; k++) word |= (values[r * cols + j * 8 + AWQ_ORDER[k]] & 0xf) << (4 * k);
      out[r * (cols / 8) + j] = word;
    }
  }
  return out;
}

/** int32 [rows, cols / 8] in AutoAWQ's order -> [rows, cols] values 0..15. */
export function unpackAwqInt32(packed: Int32Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols / 8; j++) {
      const word = packed[r * (cols / 8) + j];
      for (let c = 0; c < 8; c++) out[r * cols + j * 8 + c] = (word >>> (4 * AWQ_REVERSE_ORDER[c])) & 0xf;
    }
  }
  return out;
}

export interface AwqTensors {
  qweight: Int32Array;
  qzeros: Int32Array;
  /** fp16 scales already widened: [in / group, out]. */
  scales: Float32Array;
  inFeatures: number;
  outFeatures: number;
  group: number;
}

/** AutoAWQ GEMM tensors -> the engine's int4 layout (exact). */
export function awqToInt4(t: AwqTensors): Int4Weights {
  const { inFeatures: K, outFeatures: N, group } = t;
  const groups = K / group;
  const q = unpackAwqInt32(t.qweight, K, N); // [K, N]
  const z = unpackAwqInt32(t.qzeros, groups, N); // [groups, N]
  const packed = new Uint8Array((N * K) / 2);
  const scales = new Float32Array(N * groups);
  const zeros = new Uint8Array(N * groups);
  for (let o = 0; o < N; o++) {
    for (let i = 0; i < K; i += 2) packed[(o * K + i) >>> 1] = q[i * N + o] | (q[(i + 1) * N + o] << 4);
    for (let g = 0; g < groups; g++) {
      scales[o * groups + g] = t.scales[g * N + o];
      zeros[o * groups + g] = z[g * N + o];
    }
  }
  return { packed, scales, zeros, rows: N, cols: K, group };
}

/**
 * AutoAWQ's own quantizer (asymmetric, zero point, 4 bits), for making test checkpoints:
 * w [out, in] -> GEMM-packed tensors with fp16-representable scales.
 */
export function quantizeLikeAutoAwq(w: Float32Array, outFeatures: number, inFeatures: number, group: number, toF16: (x: number) => number): AwqTensors {
  const N = outFeatures;
  const K = inFeatures;
  const groups = K / group;
  const q = new Uint8Array(K * N); // [K, N]
  const z = new Uint8Array(groups * N);
  const scales = new Float32Array(groups * N);
  for (let o = 0; o < N; o++) {
    for (let g = 0; g < groups; g++) {
      let max = -Infinity;
      let min = Infinity;
      for (let i = 0; i < group; i++) {
        const v = w[o * K + g * group + i];
        max = Math.max(max, v);
        min = Math.min(min, v);
      }
      const scale = toF16(Math.max(max - min, 1e-5) / 15);
      const zero = Math.min(15, Math.max(0, -Math.round(min / scale)));
      scales[g * N + o] = scale;
      z[g * N + o] = zero;
      for (let i = 0; i < group; i++) {
        const c = g * group + i;
        q[c * N + o] = Math.min(15, Math.max(0, Math.round(w[o * K + c] / scale) + zero));
      }
    }
  }
  return { qweight: packAwqInt32(q, K, N), qzeros: packAwqInt32(z, groups, N), scales, inFeatures: K, outFeatures: N, group };
}
