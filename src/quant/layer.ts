// Quantizes one decoder layer: searches per-channel factors where the scheme has them (AWQ,
// SmoothQuant), folds them into the previous operations, then quantizes each linear.
import { searchAwqScales, type AwqObjective } from './awq.js';
import { quantizeFp8 } from './fp8.js';
import { checkGroup, int4Linear } from './int4.js';
import { quantizeInt8Wo } from './int8-wo.js';
import { quantizeInt8Sq, smoothQuantScales } from './int8-sq.js';
import { referenceKernels, type QuantKernels } from './kernels.js';
import {
  divideVector,
  gqaClasses,
  linearGroups,
  type AttentionShape,
  type CapturePoint,
  type LinearGroup,
  type LinearName,
} from './smoothing.js';
import type { Matrix, QuantizedLinear } from './types.js';

/** Formats the layer quantizer knows; int4_rtn is int4_awq without the search (the baseline AWQ must beat). */
export type LayerFormat = 'int8_wo' | 'int4_awq' | 'int4_rtn' | 'fp8' | 'int8_sq';

export interface LayerWeights {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  linears: Record<LinearName, Matrix>;
}

/** Statistics of one layer input over the calibration text (the runtime's calibration hook). */
export interface CaptureStats {
  /** [in]: max |x| per channel. */
  absMax: Float32Array;
  /** [in]: mean |x| per channel. */
  absMean: Float32Array;
  /** [n, in]: a sample of the token rows, for AWQ's search. */
  samples: Matrix;
}

/**
 * One expert of a Qwen3-MoE sparse layer, over the calibration tokens the router sent to it: what
 * its gate/up_proj read (the layer's MLP input rows of those tokens) and what its down_proj reads.
 */
export interface ExpertCalibration {
  /** Calibration tokens routed to it (0: none reached it; its statistics are all zero). */
  tokens: number;
  gateUp: CaptureStats;
  down: CaptureStats;
}

export interface LayerCalibration {
  /** A sparse layer's mlp_in is every token's MLP input (what its router reads); its down_in is empty. */
  captures: Record<CapturePoint, CaptureStats>;
  /** A sparse layer's experts, in order. */
  experts?: ExpertCalibration[];
  /** max |k| and |v| as the KV cache of the calibrated model stores them (k after k_norm and rope). */
  kAmax: number;
  vAmax: number;
  /** [kv_dim]: max |v| per channel (v_proj output row). */
  vAbsMax: Float32Array;
}

/** What a calibration pass measures: every decoder layer, and lm_head's input (the final norm's output). */
export interface ModelCalibration {
  layers: LayerCalibration[];
  head: CaptureStats;
}

/** max |k| and |v| of what a layer's KV cache holds in the engine: the calibration amax of quantized KV caches. */
export interface KvAmax {
  k: number;
  v: number;
}

export interface LayerQuantOptions {
  format: LayerFormat;
  /** int4 group size (awq_block_size). */
  group: number;
  /** SmoothQuant alpha. */
  alpha: number;
  attention: AttentionShape;
  /** AWQ's objective; default: the TypeScript reference (slow beyond fixture sizes). */
  awqLoss?: AwqObjective;
  /** The whole-matrix passes; default: the TypeScript references (the runtime's native twins give the same bytes). */
  kernels?: QuantKernels;
  /**
   * The groups to quantize (default: all four); the layer's weights hold their linears only. A
   * sparse layer passes the attention groups: its experts are quantized one by one (moe-experts.ts).
   */
  groups?: LinearGroup[];
}

export interface GroupNote {
  input: CapturePoint;
  /** AWQ: the chosen ratio (null: round-to-nearest won) and output errors on calibration samples. */
  ratio?: number | null;
  loss?: number;
  rtnLoss?: number;
}

export interface LayerResult {
  inputNorm: Float32Array;
  postNorm: Float32Array;
  linears: Map<LinearName, QuantizedLinear>;
  notes: GroupNote[];
  /** The engine's KV cache amax (with calibration). */
  kvAmax?: KvAmax;
}

export function needsCalibration(format: LayerFormat): boolean {
  return format === 'int4_awq' || format === 'fp8' || format === 'int8_sq';
}

/**
 * The engine's max |v|: o_proj's factors folded into v_proj rows divide each v channel by its own
 * factor (s[c] for every o_proj input channel c reading v row tie[c]), so the float model's amax no
 * longer describes the cache; k is unchanged by every fold.
 */
export function foldedVAmax(vAbsMax: Float32Array, s: Float32Array, attention: AttentionShape): number {
  const tie = gqaClasses(attention);
  let amax = 0;
  for (let c = 0; c < s.length; c++) amax = Math.max(amax, vAbsMax[tie[c]] / s[c]);
  return amax;
}

/**
 * AWQ's (int4_awq) or SmoothQuant's (int8_sq) per-input-channel factors for the linears that read
 * one input, and what the AWQ search found (ratio null: round-to-nearest won).
 */
export function searchFactors(
  format: 'int4_awq' | 'int8_sq',
  stats: CaptureStats,
  weights: Matrix[],
  opts: Pick<LayerQuantOptions, 'group' | 'alpha' | 'awqLoss' | 'kernels'>,
  tie?: Int32Array,
): { scales: Float32Array; ratio?: number | null; loss?: number; rtnLoss?: number } {
  const k = opts.kernels ?? referenceKernels;
  if (format === 'int8_sq') return { scales: smoothQuantScales(stats.absMax, weights, opts.alpha, tie, k.columnAbsMaxInto) };
  const r = searchAwqScales({ x: stats.samples, xMean: stats.absMean, weights, group: opts.group, tie, loss: opts.awqLoss, weightMean: k.weightMeanInto });
  return { scales: r.scales, ratio: r.ratio, loss: r.loss, rtnLoss: r.rtnLoss };
}

/**
 * One linear in `format`, its factors (if any) already folded into w. fp8: weightAmax is the
 * amax its weight scale comes from (a fused group's largest), inputAmax its calibrated input's.
 */
export function quantizeLinear(format: LayerFormat, name: string, w: Matrix, group: number, weightAmax = 0, inputAmax = 0, k: QuantKernels = referenceKernels): QuantizedLinear {
  switch (format) {
    case 'int8_wo':
      return quantizeInt8Wo(name, w, k.int8Rows);
    case 'int4_awq':
    case 'int4_rtn':
      return int4Linear(name, k.int4(w, group));
    case 'fp8':
      return quantizeFp8(name, w, weightAmax, inputAmax, k.e4m3);
    case 'int8_sq':
      return quantizeInt8Sq(name, w, k.int8Rows);
  }
}

function applyFactors(layer: LayerWeights, group: LinearGroup, s: Float32Array, attention: AttentionShape, k: QuantKernels): void {
  for (const name of group.linears) k.scaleColumns(layer.linears[name], s);
  const fold = group.fold;
  if (fold.kind === 'norm') divideVector(fold.norm === 'input_layernorm' ? layer.inputNorm : layer.postNorm, s);
  else k.divideRows(layer.linears[fold.linear], s, fold.gqa ? gqaClasses(attention) : undefined);
}

/** Quantizes layer `index` in place of its float weights (the norms and linears are modified). */
export function quantizeLayer(index: number, layer: LayerWeights, calib: LayerCalibration | undefined, opts: LayerQuantOptions): LayerResult {
  const prefix = `model.layers.${index}.`;
  const notes: GroupNote[] = [];
  const k = opts.kernels ?? referenceKernels;
  if (needsCalibration(opts.format) && !calib) throw new Error(`layer ${index}: ${opts.format} needs calibration statistics`);
  if (opts.format === 'int4_awq' || opts.format === 'int4_rtn') {
    for (const name of Object.keys(layer.linears) as LinearName[]) checkGroup(prefix + name, layer.linears[name].cols, opts.group);
  }

  let kvAmax: KvAmax | undefined = calib ? { k: calib.kAmax, v: calib.vAmax } : undefined;
  // Factors are searched on the original weights of every group first, then applied: folding into
  // v_proj / up_proj rows must not change what the qkv / gate-up searches saw (AutoAWQ's order).
  const groups = opts.groups ?? linearGroups;
  if (opts.format === 'int4_awq' || opts.format === 'int8_sq') {
    const factors: Float32Array[] = [];
    for (const group of groups) {
      const stats = calib!.captures[group.input];
      const weights = group.linears.map((n) => layer.linears[n]);
      const tie = group.fold.kind === 'rows' && group.fold.gqa ? gqaClasses(opts.attention) : undefined;
      const { scales, ...found } = searchFactors(opts.format, stats, weights, opts, tie);
      notes.push({ input: group.input, ...found });
      factors.push(scales);
    }
    groups.forEach((g, i) => applyFactors(layer, g, factors[i], opts.attention, k));
    const vFold = groups.findIndex((g) => g.fold.kind === 'rows' && g.fold.linear === 'self_attn.v_proj');
    kvAmax = { k: calib!.kAmax, v: foldedVAmax(calib!.vAbsMax, factors[vFold], opts.attention) };
  }

  const linears = new Map<LinearName, QuantizedLinear>();
  for (const group of groups) {
    // TensorRT-LLM fuses q/k/v and gate/up: fp8 gives them one weight scale, the largest.
    const sharedWeightAmax = opts.format === 'fp8' ? Math.max(...group.linears.map((n) => k.absMax(layer.linears[n].data))) : 0;
    const inputAmax = opts.format === 'fp8' ? k.absMax(calib!.captures[group.input].absMax) : 0;
    for (const name of group.linears) {
      linears.set(name, quantizeLinear(opts.format, prefix + name, layer.linears[name], opts.group, sharedWeightAmax, inputAmax, k));
    }
  }
  return { inputNorm: layer.inputNorm, postNorm: layer.postNorm, linears, notes, kvAmax };
}
