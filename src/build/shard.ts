// Tensor-parallel sharding of an engine's weights, the Megatron layout TensorRT-LLM uses for Qwen.
// Rank r of N holds:
//   q/k/v_proj      the rows of its heads: query heads [r*nh/N, (r+1)*nh/N) and KV heads
//                   [r*nkv/N, (r+1)*nkv/N) (a KV head and the query heads that read it stay together)
//   o_proj          the input columns of those query heads        -> partial sums, all-reduced
//   gate/up_proj    rows [r*I/N, (r+1)*I/N)
//   down_proj       the input columns [r*I/N, (r+1)*I/N)           -> partial sums, all-reduced
//   embed_tokens    vocabulary rows [r*V/N, (r+1)*V/N)             -> masked gather, all-reduced
//   lm_head         the same vocabulary rows                       -> logits all-gathered
//   norms           whole, on every rank
// Shards are cut after quantization, from the packed tensors, so every rank holds exact slices of
// the single-rank engine: per-channel scales go with their rows, per-tensor scales are copied,
// and int4 groups must lie inside one rank's columns.
import type { ModelConfig } from '../model/config.js';
import { dtypeBytes } from '../model/safetensors.js';
import type { LinearName } from '../quant/smoothing.js';
import type { PackedTensor, QuantizedLinear } from '../quant/types.js';
import { badInput } from '../util/errors.js';

/** How a tensor is divided between ranks: by output rows, by input columns, or copied whole. */
export type Split = 'rows' | 'columns' | 'replicated';

/** What one rank's weight shard holds (engine.json ranks[r].shard). */
export interface RankShard {
  num_heads: number;
  num_kv_heads: number;
  intermediate_size: number;
  vocab_start: number;
  vocab_end: number;
}

/** The split of each linear of a decoder layer. */
export const linearSplit: Record<LinearName, Exclude<Split, 'replicated'>> = {
  'self_attn.q_proj': 'rows',
  'self_attn.k_proj': 'rows',
  'self_attn.v_proj': 'rows',
  'self_attn.o_proj': 'columns',
  'mlp.gate_proj': 'rows',
  'mlp.up_proj': 'rows',
  'mlp.down_proj': 'columns',
};

function divisors(n: number, upTo = 64): number[] {
  const out: number[] = [];
  for (let d = 1; d <= Math.min(n, upTo); d++) if (n % d === 0) out.push(d);
  return out;
}

/** Refuses a tp_size the model cannot be split by, naming the sizes that work. */
export function checkTpSize(model: ModelConfig, tp: number): void {
  if (!Number.isInteger(tp) || tp < 1) throw badInput(`tp_size ${tp} is not a rank count`, 'pass --tp_size 1 or the number of GPUs to split the model across');
  if (tp === 1) return;
  const dims: [string, number][] = [
    ['num_key_value_heads', model.numKvHeads],
    ['num_attention_heads', model.numHeads],
    ['intermediate_size', model.intermediateSize],
    ['vocab_size', model.vocabSize],
  ];
  for (const [name, n] of dims) {
    if (n % tp !== 0) {
      const ok = dims.reduce((acc, [, m]) => acc.filter((d) => m % d === 0), divisors(model.numKvHeads));
      throw badInput(
        `tp_size ${tp} does not divide ${name} ${n}: every rank must hold the same number of ${name === 'vocab_size' ? 'vocabulary rows' : name === 'intermediate_size' ? 'MLP channels' : 'heads'}`,
        `pass a --tp_size that divides num_key_value_heads ${model.numKvHeads}, num_attention_heads ${model.numHeads}, intermediate_size ${model.intermediateSize} and vocab_size ${model.vocabSize}: ${ok.join(', ')}`,
      );
    }
  }
}

export function rankShard(model: ModelConfig, tp: number, rank: number): RankShard {
  const per = model.vocabSize / tp;
  return {
    num_heads: model.numHeads / tp,
    num_kv_heads: model.numKvHeads / tp,
    intermediate_size: model.intermediateSize / tp,
    vocab_start: rank * per,
    vocab_end: (rank + 1) * per,
  };
}

/** Rows [r*R/N, (r+1)*R/N) of a tensor whose first dimension is R (a 1-D tensor too). */
export function sliceRows(t: PackedTensor, rank: number, tp: number): PackedTensor {
  const rows = t.shape[0];
  if (rows % tp !== 0) throw new Error(`${t.name}: ${rows} rows cannot be split across ${tp} ranks`);
  const rowBytes = t.data.byteLength / rows;
  const per = rows / tp;
  const start = rank * per * rowBytes;
  return { ...t, shape: [per, ...t.shape.slice(1)], data: t.data.slice(start, start + per * rowBytes) };
}

/** Columns [r*C/N, (r+1)*C/N) of a 2-D tensor [R, C] (C counted in stored elements). */
export function sliceColumns(t: PackedTensor, rank: number, tp: number): PackedTensor {
  if (t.shape.length !== 2) throw new Error(`${t.name}: only 2-D tensors split by columns (shape [${t.shape}])`);
  const [rows, cols] = t.shape;
  if (cols % tp !== 0) throw new Error(`${t.name}: ${cols} columns cannot be split across ${tp} ranks`);
  const eb = dtypeBytes[t.dtype];
  const per = cols / tp;
  const out = new Uint8Array(rows * per * eb);
  for (let r = 0; r < rows; r++) {
    const src = (r * cols + rank * per) * eb;
    out.set(t.data.subarray(src, src + per * eb), r * per * eb);
  }
  return { ...t, shape: [rows, per], data: out };
}

/**
 * How each role of a linear's tensors follows the linear's split. Per-output-channel scales go with
 * the rows and are whole for every column slice; int4 group scales and zeros run along the input
 * like the weight; fp8's per-tensor scales are the same on every rank.
 */
function roleSplit(format: string, role: string, split: 'rows' | 'columns'): Split {
  if (role === 'weight_scale' || role === 'input_scale') return 'replicated';
  if (role === 'weight') return split;
  if (format === 'int4' && (role === 'scales' || role === 'zeros')) return split;
  if (role === 'scales') return split === 'rows' ? 'rows' : 'replicated';
  throw new Error(`no sharding rule for the ${role} tensor of a ${format} linear`);
}

/** Rank `rank`'s part of a quantized (or float) linear, with its manifest entry. */
export function shardLinear(module: string, q: QuantizedLinear, split: 'rows' | 'columns', rank: number, tp: number): QuantizedLinear {
  const e = q.entry;
  if (split === 'rows' && e.out_features % tp !== 0) throw new Error(`${module}: ${e.out_features} output rows cannot be split across ${tp} ranks`);
  if (split === 'columns') {
    const per = e.in_features / tp;
    if (!Number.isInteger(per)) throw new Error(`${module}: ${e.in_features} input columns cannot be split across ${tp} ranks`);
    if (e.format === 'int4' && e.group_size && per % e.group_size !== 0) {
      const ok = [16, 32, 64, 128, 256].filter((g) => per % g === 0 && e.in_features % g === 0);
      throw badInput(
        `int4 groups of ${e.group_size} would straddle the tensor-parallel split of ${module}: each of the ${tp} ranks holds ${per} of its ${e.in_features} input columns`,
        ok.length ? `build with an --awq_block_size that divides ${per}: ${ok.join(', ')}` : `build with a smaller --tp_size, or with --qformat int8_wo or fp8`,
      );
    }
  }
  const byName = new Map(q.tensors.map((t) => [t.name, t]));
  const tensors: PackedTensor[] = [];
  for (const [role, name] of Object.entries(e.tensors)) {
    const t = byName.get(name);
    if (!t) throw new Error(`${module}: tensor ${name} (${role}) is not among the linear's tensors`);
    const how = roleSplit(e.format, role, split);
    tensors.push(how === 'rows' ? sliceRows(t, rank, tp) : how === 'columns' ? sliceColumns(t, rank, tp) : t);
  }
  const entry = {
    ...e,
    out_features: split === 'rows' ? e.out_features / tp : e.out_features,
    in_features: split === 'columns' ? e.in_features / tp : e.in_features,
  };
  return { entry, tensors };
}

/** Where a linear's int4 groups would cross a rank boundary, checked before any work (checks.ts). */
export function checkInt4Split(model: ModelConfig, tp: number, group: number): void {
  if (tp === 1) return;
  const cols: [string, number][] = [
    ['o_proj', model.numHeads * model.headDim],
    ['down_proj', model.intermediateSize],
  ];
  for (const [name, n] of cols) {
    const per = n / tp;
    if (per % group !== 0) {
      const ok = [16, 32, 64, 128, 256].filter((g) => per % g === 0 && model.hiddenSize % g === 0 && (model.numHeads * model.headDim) / tp % g === 0 && model.intermediateSize / tp % g === 0);
      throw badInput(
        `int4 groups of ${group} would straddle the tensor-parallel split of ${name}: each of the ${tp} ranks holds ${per} of its ${n} input columns`,
        ok.length ? `pass an --awq_block_size that divides every rank's columns: ${ok.join(', ')}` : 'build with a smaller --tp_size, or with --qformat int8_wo or fp8',
      );
    }
  }
}
