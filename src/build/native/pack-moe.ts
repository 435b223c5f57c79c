// A Qwen3-MoE sparse layer in the engine: its norms, its four attention projections, its router and
// every expert's three projections, under the checkpoint's own names. The attention projections are
// quantized as a dense layer's are (quantizeLayer with the attention groups: AWQ / SmoothQuant
// factors folded into input_layernorm and v_proj, fp8 input scales from their inputs); each expert
// from the statistics of its own inputs, the tokens the router sent to it (src/quant/moe-expert.ts,
// expert-stats.ts), with an expert's gate/up factors written as its pre_quant_scale; the router stays
// in the engine's float dtype, unquantized, because it picks the experts and a rounding there changes
// which ones run.
import { checkGroup, int4Linear } from '../../quant/int4.js';
import { needsCalibration, quantizeLayer, type KvAmax, type LayerCalibration, type LayerFormat, type LayerWeights } from '../../quant/layer.js';
import type { AwqObjective } from '../../quant/awq.js';
import type { QuantKernels } from '../../quant/kernels.js';
import { expertStats, type ExpertWeights } from '../../quant/expert-stats.js';
import { quantizeExpert } from '../../quant/moe-expert.js';
import { linearGroups, type AttentionShape, type LinearName } from '../../quant/smoothing.js';
import type { Matrix, PackedTensor, QuantizedLinear } from '../../quant/types.js';
import { expertModule, routerModule } from '../../model/moe-tensors.js';
import { linearSplit } from '../shard.js';
import type { RankWriters } from './rank-writers.js';
import { readAwqLinear, readFloat, readMatrix, type SourceModel } from './source.js';

const attentionGroups = linearGroups.filter((g) => g.input === 'attn_in' || g.input === 'o_in');
const attentionLinears: LinearName[] = attentionGroups.flatMap((g) => g.linears);
const headNorms = ['self_attn.q_norm.weight', 'self_attn.k_norm.weight'];

/** What packWeights lends a sparse layer: where tensors go, how float tensors are written, how to quantize. */
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
  /** int4 group along the input (int4_awq, int4_rtn). */
  group: number;
  /** SmoothQuant alpha. */
  alpha: number;
  attention: AttentionShape;
  /** This layer's calibration statistics (int4_awq, fp8 and int8_sq; a quantized KV cache's). */
  calibration?: LayerCalibration;
  awqLoss?: AwqObjective;
  kernels?: QuantKernels;
}

export interface SparseLayerResult {
  /** The engine's KV cache amax for this layer (with calibration). */
  kvAmax?: KvAmax;
  /** Experts calibrated as if every token were routed to them (no rows of their own). */
  fallbackExperts: number[];
}

/** Writes sparse layer `layer` of a Qwen3-MoE checkpoint. */
export function packSparseLayer(src: SourceModel, layer: number, t: SparseLayerTools): SparseLayerResult {
  const m = src.checkpoint.model;
  const p = `model.layers.${layer}.`;
  const calib = t.calibration;
  if (!t.format || src.awq) {
    // bf16, or an AWQ checkpoint's own int4 projections as they are: nothing measured, nothing folded.
    const projection = (prefix: string) => (src.awq?.quantized.has(prefix) ? int4Linear(prefix, readAwqLinear(src, prefix)) : t.copiedLinear(prefix));
    for (const norm of ['input_layernorm.weight', 'post_attention_layernorm.weight', ...headNorms]) t.writer.replicated(t.f32(p + norm, readFloat(src, p + norm)));
    for (const name of attentionLinears) t.writer.linear(p + name, projection(p + name), linearSplit[name]);
    t.writer.replicated(t.copied(`${routerModule(layer)}.weight`));
    for (let e = 0; e < m.moe!.numExperts; e++) {
      for (const proj of ['gate_proj', 'up_proj', 'down_proj'] as const) {
        const module = expertModule(layer, e, proj);
        t.writer.linear(module, projection(module), proj === 'down_proj' ? 'columns' : 'rows');
      }
    }
    return { kvAmax: calib && { k: calib.kAmax, v: calib.vAmax }, fallbackExperts: [] };
  }

  const format = t.format;
  const opts = { format, group: t.group, alpha: t.alpha, awqLoss: t.awqLoss, kernels: t.kernels };
  const attention: LayerWeights = {
    inputNorm: readFloat(src, p + 'input_layernorm.weight'),
    postNorm: readFloat(src, p + 'post_attention_layernorm.weight'),
    linears: Object.fromEntries(attentionLinears.map((n) => [n, readMatrix(src, `${p}${n}.weight`)])) as Record<LinearName, Matrix>,
  };
  const r = quantizeLayer(layer, attention, calib, { ...opts, attention: t.attention, groups: attentionGroups });
  t.writer.replicated(t.f32(p + 'input_layernorm.weight', r.inputNorm));
  t.writer.replicated(t.f32(p + 'post_attention_layernorm.weight', r.postNorm));
  for (const norm of headNorms) t.writer.replicated(t.f32(p + norm, readFloat(src, p + norm)));
  for (const name of attentionLinears) t.writer.linear(p + name, r.linears.get(name)!, linearSplit[name]);
  t.writer.replicated(t.copied(`${routerModule(layer)}.weight`));

  const int4 = format === 'int4_awq' || format === 'int4_rtn';
  if (int4) {
    checkGroup(expertModule(layer, 0, 'gate_proj'), m.hiddenSize, t.group);
    checkGroup(expertModule(layer, 0, 'down_proj'), m.moe!.intermediateSize, t.group);
  }
  const fallbackExperts: number[] = [];
  for (let e = 0; e < m.moe!.numExperts; e++) {
    const prefix = `${p}mlp.experts.${e}`;
    const w: ExpertWeights = {
      gate: readMatrix(src, `${prefix}.gate_proj.weight`),
      up: readMatrix(src, `${prefix}.up_proj.weight`),
      down: readMatrix(src, `${prefix}.down_proj.weight`),
    };
    const stats = needsCalibration(format) ? expertStats(calib!, e, w, format === 'int4_awq', t.kernels?.rowDots) : undefined;
    if (stats?.fallback) fallbackExperts.push(e);
    const q = quantizeExpert(prefix, w, stats, opts);
    t.writer.linear(`${prefix}.gate_proj`, q.gate, 'rows');
    t.writer.linear(`${prefix}.up_proj`, q.up, 'rows');
    t.writer.linear(`${prefix}.down_proj`, q.down, 'columns');
    if (q.preQuantScale) t.writer.replicated(t.f32(`${prefix}.pre_quant_scale`, q.preQuantScale));
  }
  return { kvAmax: r.kvAmax, fallbackExperts };
}
