// int4 weights in groups along the input dimension (TensorRT-LLM W4A16 / ModelOpt INT4_AWQ):
// each run of group_size weights in a row shares one scale and one zero point. Values are stored
// unsigned (0..15) two per byte, low nibble first; w = (q - zero) * scale. Our own quantizer is
// symmetric as ModelOpt's (zero = 8, scale = amax / 7); AutoAWQ checkpoints bring their own zeros.
import { badInput } from '../util/errors.js';
import { roundEven } from './numeric.js';
import { bytesOf, type Matrix, type QuantizedLinear } from './types.js';

export interface Int4Weights {
  /** [rows, cols / 2]: element 2j in the low nibble of byte j, 2j+1 in the high nibble. */
  packed: Uint8Array;
  /** [rows, cols / group]. */
  scales: Float32Array;
  /** [rows, cols / group], each 0..15. */
  zeros: Uint8Array;
  rows: number;
  cols: number;
  group: number;
}

/**
 * Refuses a group that does not divide `cols`. `alsoChecked` are the model's other input
 * dimensions checked with it: the sizes suggested divide them all, so the fix never fails on the
 * next one.
 */
export function checkGroup(name: string, cols: number, group: number, alsoChecked: number[] = []): void {
  if (group <= 0 || cols % group !== 0 || group % 2 !== 0) {
    const dims = [...new Set([...alsoChecked, cols])];
    const divisors = [16, 32, 64, 128, 256].filter((g) => dims.every((d) => d % g === 0));
    const what = dims.length === 1 ? `${cols}` : `every input dimension (${dims.join(', ')})`;
    throw badInput(
      `awq_block_size ${group} does not divide the input dimension ${cols} of ${name}`,
      divisors.length
        ? `use an --awq_block_size that divides ${what}: ${divisors.join(', ')}`
        : `${dims.length === 1 ? "this layer's input dimension" : 'the input dimensions'} ${dims.join(', ')} have no even block size among 16..256 in common; build int8_wo or fp8 instead`,
    );
  }
}

/** quantizeInt4Symmetric, or a faster twin of it with the same output (the runtime's native one). */
export type Int4Quantizer = (w: Matrix, group: number) => Int4Weights;

/** Symmetric group quantization: q = clamp(round(w / s), -8, 7) + 8 with s = amax / 7. */
export function quantizeInt4Symmetric(w: Matrix, group: number): Int4Weights {
  const { data, rows, cols } = w;
  const groups = cols / group;
  const packed = new Uint8Array((rows * cols) / 2);
  const scales = new Float32Array(rows * groups);
  const zeros = new Uint8Array(rows * groups).fill(8);
  const q = new Uint8Array(group);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * group;
      let amax = 0;
      for (let i = 0; i < group; i++) amax = Math.max(amax, Math.abs(data[base + i]));
      const scale = Math.fround(amax / 7);
      scales[r * groups + g] = scale;
      for (let i = 0; i < group; i++) {
        const v = scale === 0 ? 0 : roundEven(data[base + i] / scale);
        q[i] = (v > 7 ? 7 : v < -8 ? -8 : v) + 8;
      }
      for (let i = 0; i < group; i += 2) packed[(base + i) >>> 1] = q[i] | (q[i + 1] << 4);
    }
  }
  return { packed, scales, zeros, rows, cols, group };
}

/** Round-trip quantization in float (what the runtime will compute), for searches and checks. */
export function fakeQuantInt4(w: Matrix, group: number): Float32Array {
  const { data, rows, cols } = w;
  const out = new Float32Array(rows * cols);
  for (let base = 0; base < rows * cols; base += group) {
    let amax = 0;
    for (let i = 0; i < group; i++) amax = Math.max(amax, Math.abs(data[base + i]));
    const scale = Math.fround(amax / 7);
    if (scale === 0) continue;
    for (let i = 0; i < group; i++) {
      const v = roundEven(data[base + i] / scale);
      // + 0 turns -0 into 0, as the integer path gives.
      out[base + i] = (v > 7 ? 7 : v < -8 ? -8 : v) * scale + 0;
    }
  }
  return out;
}

export function dequantizeInt4(w: Int4Weights): Float32Array {
  const { packed, scales, zeros, rows, cols, group } = w;
  const groups = cols / group;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const byte = packed[i >>> 1];
      const q = c % 2 === 0 ? byte & 0xf : byte >> 4;
      const g = r * groups + Math.floor(c / group);
      out[i] = (q - zeros[g]) * scales[g];
    }
  }
  return out;
}

export function int4Linear(name: string, w: Int4Weights): QuantizedLinear {
  const groups = w.cols / w.group;
  return {
    entry: {
      format: 'int4',
      out_features: w.rows,
      in_features: w.cols,
      group_size: w.group,
      tensors: { weight: `${name}.qweight`, scales: `${name}.scales`, zeros: `${name}.zeros` },
    },
    tensors: [
      { name: `${name}.qweight`, dtype: 'U8', shape: [w.rows, w.cols / 2], data: w.packed },
      { name: `${name}.scales`, dtype: 'F32', shape: [w.rows, groups], data: bytesOf(w.scales) },
      { name: `${name}.zeros`, dtype: 'U8', shape: [w.rows, groups], data: w.zeros },
    ],
  };
}
