// What every quantization scheme produces for one linear layer: the packed tensors the runtime
// maps in place, and the manifest entry that tells the runtime how to read them. The byte layouts
// are described in src/quant/LAYOUTS.md.
import type { SafetensorsDtype } from '../model/safetensors.js';

export interface PackedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

/** Weight formats of a linear layer in an engine (engine.json "linears"). */
export type LinearFormat = 'float' | 'int8_wo' | 'int4' | 'fp8' | 'int8_sq';

/** One linear layer in engine.json: its format, its tensors by role, the format's parameters. */
export interface LinearEntry {
  format: LinearFormat;
  /** Output features (rows of the weight). */
  out_features: number;
  /** Input features (the reduction dimension). */
  in_features: number;
  /** Role -> tensor name in the rank's tensor table (weight, scales, zeros, weight_scale, input_scale). */
  tensors: Record<string, string>;
  /** int4: elements per scale group along in_features. */
  group_size?: number;
  /** int8_sq: activations are quantized per token at run time. */
  activation?: 'per_token_dynamic' | 'per_tensor_static';
}

export interface QuantizedLinear {
  entry: LinearEntry;
  tensors: PackedTensor[];
}

/** A [rows, cols] row-major float matrix (HF's [out, in] for weights, [tokens, in] for activations). */
export interface Matrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

export function bytesOf(a: Float32Array | Int8Array | Uint8Array | Uint16Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
