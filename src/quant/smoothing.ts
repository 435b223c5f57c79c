// Per-input-channel factors s (AWQ, SmoothQuant) multiply a linear's weight columns; the input is
// divided by s in the operation before it, where that is exact, as AutoAWQ does:
//   q/k/v_proj   <- input_layernorm weight (RMSNorm's output is linear in its weight)
//   gate/up_proj <- post_attention_layernorm weight
//   o_proj       <- v_proj rows (attention output is a convex mix of v rows; under grouped-query
//                   attention a v row serves every query head of its group, so factors are tied)
//   down_proj    <- up_proj rows (silu(gate) * up is linear in up)
// The model computes the same function afterwards; only the quantization error moves.
import type { Matrix } from './types.js';

export type CapturePoint = 'attn_in' | 'o_in' | 'mlp_in' | 'down_in';

export type LinearName =
  | 'self_attn.q_proj'
  | 'self_attn.k_proj'
  | 'self_attn.v_proj'
  | 'self_attn.o_proj'
  | 'mlp.gate_proj'
  | 'mlp.up_proj'
  | 'mlp.down_proj';

export const linearNames: LinearName[] = [
  'self_attn.q_proj',
  'self_attn.k_proj',
  'self_attn.v_proj',
  'self_attn.o_proj',
  'mlp.gate_proj',
  'mlp.up_proj',
  'mlp.down_proj',
];

export type Fold = { kind: 'norm'; norm: 'input_layernorm' | 'post_attention_layernorm' } | { kind: 'rows'; linear: LinearName; gqa: boolean };

export interface LinearGroup {
  input: CapturePoint;
  linears: LinearName[];
  fold: Fold;
}

/** The four inputs of a Qwen3 decoder layer and the linears that read each. */
export const linearGroups: LinearGroup[] = [
  { input: 'attn_in', linears: ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'], fold: { kind: 'norm', norm: 'input_layernorm' } },
  { input: 'o_in', linears: ['self_attn.o_proj'], fold: { kind: 'rows', linear: 'self_attn.v_proj', gqa: true } },
  { input: 'mlp_in', linears: ['mlp.gate_proj', 'mlp.up_proj'], fold: { kind: 'norm', norm: 'post_attention_layernorm' } },
  { input: 'down_in', linears: ['mlp.down_proj'], fold: { kind: 'rows', linear: 'mlp.up_proj', gqa: false } },
];

export interface AttentionShape {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
}

/**
 * o_proj input channel h * headDim + d reads v row kvHead(h) * headDim + d, kvHead(h) = h / (numHeads / numKvHeads)
 * (transformers' repeat_kv); channels reading the same v row form one class.
 */
export function gqaClasses(a: AttentionShape): Int32Array {
  const rep = a.numHeads / a.numKvHeads;
  const tie = new Int32Array(a.numHeads * a.headDim);
  for (let h = 0; h < a.numHeads; h++) for (let d = 0; d < a.headDim; d++) tie[h * a.headDim + d] = Math.floor(h / rep) * a.headDim + d;
  return tie;
}

export function scaleColumns(w: Matrix, s: Float32Array): void {
  for (let r = 0; r < w.rows; r++) {
    const base = r * w.cols;
    for (let c = 0; c < w.cols; c++) w.data[base + c] *= s[c];
  }
}

export function divideVector(v: Float32Array, s: Float32Array): void {
  for (let c = 0; c < v.length; c++) v[c] /= s[c];
}

/**
 * Divides row rowOf[c] of w by s[c]. With ties several channels name the same row; their factors
 * are equal, and the row is divided once.
 */
export function divideRows(w: Matrix, s: Float32Array, rowOf?: Int32Array): void {
  const done = new Uint8Array(w.rows);
  for (let c = 0; c < s.length; c++) {
    const r = rowOf ? rowOf[c] : c;
    if (done[r]) continue;
    done[r] = 1;
    const base = r * w.cols;
    for (let i = 0; i < w.cols; i++) w.data[base + i] /= s[c];
  }
}
