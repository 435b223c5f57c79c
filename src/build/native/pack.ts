// Writes the weights of every rank in engine order: embeddings, each layer (norms, then its seven
// linears in the chosen format; a Qwen3-MoE sparse layer's router and experts, each expert from
// its own statistics: pack-moe.ts), the
// final norm, lm_head; with tp_size > 1 each tensor is cut into one slice per rank as
// src/build/shard.ts says. Norms are stored as fp32: AWQ and SmoothQuant
// fold factors into them, and rounding the folded values back to bf16 would add error for nothing.
import type { ManifestRank } from '../manifest.js';
import type { Dtype, QFormat } from '../options.js';
import type { Reporter } from '../progress.js';
import type { Staging } from '../staging.js';
import { int4Linear } from '../../quant/int4.js';
import type { AwqObjective } from '../../quant/awq.js';
import type { QuantKernels } from '../../quant/kernels.js';
import { quantizeHead, type HeadResult } from '../../quant/head.js';
import { quantizeLayer, type CaptureStats, type GroupNote, type KvAmax, type LayerCalibration, type LayerFormat, type LayerWeights } from '../../quant/layer.js';
import { encodeFloats } from '../../quant/numeric.js';
import { linearNames, type LinearName } from '../../quant/smoothing.js';
import type { Matrix, PackedTensor, QuantizedLinear } from '../../quant/types.js';
import { copiedAsIs, readAwqLinear, readBytes, readFloat, readMatrix, type SourceModel } from './source.js';
import { linearSplit } from '../shard.js';
import { RankWriters, type RankFile } from './rank-writers.js';
import { packSparseLayer } from './pack-moe.js';
import { isSparseLayer } from '../../model/moe-tensors.js';

export interface PackOptions {
  dtype: Dtype;
  qformat: QFormat;
  awqBlockSize: number;
  smoothquantAlpha: number;
  /** false: int4 by round-to-nearest, without AWQ's search (the baseline AWQ is measured against). */
  awqSearch: boolean;
  /** Per layer, from the calibration pass; required by int4_awq, fp8 and int8_sq. */
  calibration?: LayerCalibration[];
  /** AWQ's objective, computed by the runtime (native) when it is loaded. */
  awqLoss?: AwqObjective;
  /** The whole-matrix passes in native code (the same bytes as src/quant's TypeScript). */
  kernels?: QuantKernels;
  /** Tensor-parallel ranks: one weight file each (src/build/shard.ts); default 1. */
  tp?: number;
  /** Quantize lm_head in the layers' format too (--quantize_lm_head); needs a quantized format. */
  quantizeLmHead?: boolean;
  /** Statistics of lm_head's input, from the calibration pass (int4_awq, fp8 and int8_sq heads). */
  headCalibration?: CaptureStats;
}

export interface PackResult {
  /** One entry per tensor-parallel rank. */
  ranks: ManifestRank[];
  files: RankFile[];
  /** Bytes of all weight files together. */
  bytes: number;
  /** Per layer, what the AWQ search chose (empty for other formats). */
  notes: GroupNote[][];
  /**
   * Per layer, max |k| and |v| of what the engine's KV cache holds (AWQ and SmoothQuant rescale v's
   * channels); absent without calibration statistics (an AWQ checkpoint: calibrate the engine).
   */
  kvAmax?: KvAmax[];
  /** A Qwen3-MoE model's experts without calibration rows of their own (see src/quant/expert-stats.ts), by layer. */
  fallbackExperts: FallbackExperts[];
}

export interface FallbackExperts {
  layer: number;
  experts: number[];
}

const engineDtype = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' } as const;

export function layerFormat(qformat: QFormat, awqSearch: boolean): LayerFormat | undefined {
  if (qformat === 'full_prec') return undefined;
  if (qformat === 'int4_awq' && !awqSearch) return 'int4_rtn';
  return qformat;
}

export async function packWeights(src: SourceModel, opts: PackOptions, staging: Staging, reporter: Reporter, signal?: AbortSignal): Promise<PackResult> {
  const m = src.checkpoint.model;
  const writer = new RankWriters(staging, opts.tp ?? 1);
  const notes: GroupNote[][] = [];
  const kvAmax: (KvAmax | undefined)[] = [];
  const fallbackExperts: FallbackExperts[] = [];
  const dt = engineDtype[opts.dtype];
  const float = (name: string, values: Float32Array, shape: number[]): PackedTensor => ({ name, dtype: dt, shape, data: encodeFloats(values, dt) });
  const f32 = (name: string, values: Float32Array): PackedTensor => ({ name, dtype: 'F32', shape: [values.length], data: encodeFloats(values, 'F32') });
  // Every linear of a layer ends in .q_proj .. .down_proj; lm_head is split by vocabulary rows.
  const addLinear = (prefix: string, q: QuantizedLinear) => {
    const name = linearNames.find((n) => prefix.endsWith(n));
    writer.linear(prefix, q, name ? linearSplit[name] : 'rows');
  };
  // A float tensor already in the engine dtype is copied as it is (no fp32 round trip: an 8B
  // model's embeddings alone are 1.2 GB in bf16).
  const copied = (name: string, as = name): PackedTensor => {
    const t = src.checkpoint.tensors.get(name)!;
    if (copiedAsIs(src, name, dt)) return { name: as, dtype: dt, shape: t.shape, data: readBytes(t) };
    return float(as, readFloat(src, name), t.shape);
  };
  const copiedLinear = (prefix: string): QuantizedLinear => {
    const t = copied(`${prefix}.weight`);
    return { entry: { format: 'float', out_features: t.shape[0], in_features: t.shape[1], tensors: { weight: t.name } }, tensors: [t] };
  };
  const format = src.awq ? undefined : layerFormat(opts.qformat, opts.awqSearch);
  try {
    const embed = copied('model.embed_tokens.weight');
    writer.rows(embed);
    const [vocab, hidden] = embed.shape;
    for (let i = 0; i < m.numLayers; i++) {
      // Let signals (Ctrl-C) and the spinner run between layers.
      await new Promise((r) => setImmediate(r));
      signal?.throwIfAborted();
      reporter.progress(i / m.numLayers, `layer ${i + 1}/${m.numLayers}`);
      const p = `model.layers.${i}.`;
      if (isSparseLayer(m, i)) {
        // A Qwen3-MoE layer: its router and experts instead of one MLP, each expert from its own statistics.
        const r = packSparseLayer(src, i, {
          writer,
          f32,
          copied,
          copiedLinear,
          format,
          group: opts.awqBlockSize,
          alpha: opts.smoothquantAlpha,
          attention: { numHeads: m.numHeads, numKvHeads: m.numKvHeads, headDim: m.headDim },
          calibration: opts.calibration?.[i],
          awqLoss: opts.awqLoss,
          kernels: opts.kernels,
        });
        kvAmax.push(r.kvAmax);
        if (r.fallbackExperts.length) fallbackExperts.push({ layer: i, experts: r.fallbackExperts });
        if (format) notes.push([]); // the notes stay one entry per quantized layer
        continue;
      }
      const layer: LayerWeights = {
        inputNorm: readFloat(src, p + 'input_layernorm.weight'),
        postNorm: readFloat(src, p + 'post_attention_layernorm.weight'),
        linears: {} as Record<LinearName, Matrix>,
      };
      let quantized: Map<LinearName, QuantizedLinear>;
      const calib = opts.calibration?.[i];
      kvAmax.push(calib && { k: calib.kAmax, v: calib.vAmax });
      if (src.awq) {
        quantized = new Map();
        for (const name of linearNames) {
          const prefix = p + name;
          quantized.set(name, src.awq.quantized.has(prefix) ? int4Linear(prefix, readAwqLinear(src, prefix)) : copiedLinear(prefix));
        }
      } else if (!format) {
        quantized = new Map(linearNames.map((n) => [n, copiedLinear(p + n)]));
      } else {
        for (const name of linearNames) layer.linears[name] = readMatrix(src, `${p}${name}.weight`);
        const r = quantizeLayer(i, layer, calib, {
          format,
          group: opts.awqBlockSize,
          alpha: opts.smoothquantAlpha,
          attention: { numHeads: m.numHeads, numKvHeads: m.numKvHeads, headDim: m.headDim },
          awqLoss: opts.awqLoss,
          kernels: opts.kernels,
        });
        quantized = r.linears;
        notes.push(r.notes);
        kvAmax[i] = r.kvAmax;
      }
      writer.replicated(f32(p + 'input_layernorm.weight', layer.inputNorm));
      writer.replicated(f32(p + 'post_attention_layernorm.weight', layer.postNorm));
      writer.replicated(f32(p + 'self_attn.q_norm.weight', readFloat(src, p + 'self_attn.q_norm.weight')));
      writer.replicated(f32(p + 'self_attn.k_norm.weight', readFloat(src, p + 'self_attn.k_norm.weight')));
      for (const name of linearNames) addLinear(p + name, quantized.get(name)!);
    }
    let head: HeadResult | undefined;
    let finalNorm = readFloat(src, 'model.norm.weight');
    if (opts.quantizeLmHead) {
      if (!format) throw new Error('--quantize_lm_head needs a quantized format (a --qformat other than full_prec, from a float checkpoint)');
      reporter.progress(1, 'lm_head');
      // A tied head reads the embedding table: the quantized head is a copy of it in the layers' format.
      const weight = readMatrix(src, m.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
      head = quantizeHead(weight, finalNorm, opts.headCalibration, { format, group: opts.awqBlockSize, alpha: opts.smoothquantAlpha, awqLoss: opts.awqLoss, kernels: opts.kernels });
      finalNorm = head.finalNorm;
    }
    writer.replicated(f32('model.norm.weight', finalNorm));
    if (head) {
      addLinear('lm_head', head.linear);
    } else if (m.tieWordEmbeddings) {
      writer.entryOnly('lm_head', { format: 'float', out_features: vocab, in_features: hidden, tensors: { weight: 'model.embed_tokens.weight' } });
    } else {
      addLinear('lm_head', copiedLinear('lm_head'));
    }
    reporter.progress(1, `${m.numLayers} layers`);
    const { ranks, files } = writer.close(m);
    const complete = kvAmax.every((a) => a !== undefined);
    return {
      ranks,
      files,
      bytes: files.reduce((a, f) => a + f.bytes, 0),
      notes,
      fallbackExperts,
      ...(complete ? { kvAmax: kvAmax as KvAmax[] } : {}),
    };
  } catch (e) {
    writer.discard();
    throw e;
  }
}
