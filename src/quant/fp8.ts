// fp8 (TensorRT-LLM / ModelOpt FP8): e4m3 weights with one per-tensor scale, e4m3 activations with
// one static per-tensor scale calibrated on text. The runtime computes
//   y = (e4m3(x / input_scale) . q) * input_scale * weight_scale.
// Linears that TensorRT-LLM fuses (q/k/v, gate/up) share one weight scale, the largest, as its
// export does, so a GPU kernel can concatenate them without requantizing.
import { FP8_E4M3_MAX, f32ToE4m3, e4m3ToF32 } from './numeric.js';
import { bytesOf, type Matrix, type QuantizedLinear } from './types.js';

export function absMax(a: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    if (v > m) m = v;
  }
  return m;
}

/** Scale that maps amax onto e4m3's largest finite value (1 for an all-zero tensor). */
export function fp8Scale(amax: number): number {
  return amax > 0 ? Math.fround(amax / FP8_E4M3_MAX) : 1;
}

/** quantizeE4m3, or its native twin (the same bytes). */
export type E4m3Quantizer = (values: Float32Array, scale: number) => Uint8Array;

/** e4m3 codes of values / scale (the quotient in double, rounded once to e4m3). */
export function quantizeE4m3(values: Float32Array, scale: number): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToE4m3(values[i] / scale);
  return out;
}

export function fakeQuantE4m3(values: Float32Array, scale: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = e4m3ToF32(f32ToE4m3(values[i] / scale)) * scale;
  return out;
}

/**
 * @param weightAmax the amax the weight scale is taken from (the group's largest when fused)
 * @param inputAmax calibrated absolute maximum of this linear's input activations
 */
export function quantizeFp8(name: string, w: Matrix, weightAmax: number, inputAmax: number, e4m3: E4m3Quantizer = quantizeE4m3): QuantizedLinear {
  const weightScale = fp8Scale(weightAmax);
  const inputScale = fp8Scale(inputAmax);
  return {
    entry: {
      format: 'fp8',
      out_features: w.rows,
      in_features: w.cols,
      activation: 'per_tensor_static',
      tensors: { weight: `${name}.weight`, weight_scale: `${name}.weight_scale`, input_scale: `${name}.input_scale` },
    },
    tensors: [
      { name: `${name}.weight`, dtype: 'F8_E4M3', shape: [w.rows, w.cols], data: e4m3(w.data, weightScale) },
      { name: `${name}.weight_scale`, dtype: 'F32', shape: [1], data: bytesOf(Float32Array.of(weightScale)) },
      { name: `${name}.input_scale`, dtype: 'F32', shape: [1], data: bytesOf(Float32Array.of(inputScale)) },
    ],
  };
}
