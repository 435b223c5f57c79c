// A Qwen3-MoE sparse layer in the engine: its norms, its four attention projections, its router and
// every expert's three projections, under the checkpoint's own names. Each projection goes through
// the same per-linear quantizer as a dense layer's (the engine loader reads an expert's tensors by
// its prefix, as it reads q_proj's); the router stays in the engine's float dtype, unquantized,
// because it picks the experts and a rounding there changes which ones run. Only formats that need
// no activation statistics get here (checks.ts refuses the others for MoE checkpoints before any
// work): their projections quantize one by one, with nothing folded between them.
import { int4Linear } from '../../quant/int4.js';
import { needsCalibration, quantizeLinear, type LayerFormat } from '../../quant/layer.js';
import type { QuantKernels } from '../../quant/kernels.js';
import type { LinearName } from '../../quant/smoothing.js';
import type { PackedTensor, QuantizedLinear } from '../../quant/types.js';
import { expertModules, routerModule } from '../../model/moe-tensors.js';
import { linearSplit } from '../shard.js';
import type { RankWriters } from './rank-writers.js';
import { readAwqLinear, readFloat, readMatrix, type SourceModel } from './source.js';

const attentionLinears: LinearName[] = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj'];
const layerNorms = ['input_layernorm.weight', 'post_attention_layernorm.weight', 'self_attn.q_norm.weight', 'self_attn.k_norm.weight'];

/** What packWeights lends a sparse layer: where tensors go, and how float tensors are written. */
export interface SparseLayerTools {
  writer: RankWriters;
  /** A norm as fp32 (as every layer's norms are stored). */
  f32(name: string, values: Float32Array): PackedTensor;
  /** A float tensor in the engine dtype (copied as it is where it already is). */
  copied(name: string): PackedTensor;
  /** A linear left float in the engine dtype. */
  copiedLinear(prefix: string): QuantizedLinear;
  /** The layers' format (undefined: float weights, or an AWQ checkpoint converted as it is). */
  format?: LayerFormat;
  /** int4 group along the input (int4_rtn). */
  group: number;
  kernels?: QuantKernels;
}

/** One projection in the engine's format: an AWQ checkpoint's int4 as it is, else quantized (or copied) from float. */
function projection(src: SourceModel, prefix: string, t: SparseLayerTools): QuantizedLinear {
  if (src.awq) return src.awq.quantized.has(prefix) ? int4Linear(prefix, readAwqLinear(src, prefix)) : t.copiedLinear(prefix);
  if (!t.format) return t.copiedLinear(prefix);
  return quantizeLinear(t.format, prefix, readMatrix(src, `${prefix}.weight`), t.group, 0, 0, t.kernels);
}

/** Writes sparse layer `layer` of a Qwen3-MoE checkpoint. */
export function packSparseLayer(src: SourceModel, layer: number, t: SparseLayerTools): void {
  // fp8's input scales, SmoothQuant's and AWQ's factors come from each linear's own inputs: an
  // expert's are the tokens routed to it, which calibration does not collect.
  if (t.format && needsCalibration(t.format)) throw new Error(`layer ${layer}: ${t.format} needs per-expert activation statistics (checks.ts refuses it for MoE checkpoints)`);
  const p = `model.layers.${layer}.`;
  for (const norm of layerNorms) t.writer.replicated(t.f32(p + norm, readFloat(src, p + norm)));
  for (const name of attentionLinears) t.writer.linear(p + name, projection(src, p + name, t), linearSplit[name]);
  t.writer.replicated(t.copied(`${routerModule(layer)}.weight`));
  for (const { module, projection: proj } of expertModules(src.checkpoint.model, layer)) {
    t.writer.linear(module, projection(src, module, t), proj === 'down_proj' ? 'columns' : 'rows');
  }
}
