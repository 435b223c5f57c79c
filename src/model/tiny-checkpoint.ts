// Random Qwen3 checkpoints whose weights are a pure function of (seed, tensor name, index):
// the mirror of scripts/make_fixtures.py, so the tests rebuild the exact checkpoints the
// transformers references were computed on, and the bundled demo model needs no download.
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { decodeFloats, encodeFloats, f32ToBf16Bits } from '../quant/numeric.js';
import { writeSafetensors, type TensorToWrite } from './safetensors.js';

export interface TinySpec {
  seed: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  tie_word_embeddings: boolean;
  rope_theta: number;
  rope_scaling: Record<string, unknown> | null;
  rms_norm_eps: number;
  max_position_embeddings: number;
  shards: number;
  /** A Qwen3-MoE checkpoint's experts (config.json's names); absent for a dense one. */
  moe?: TinyMoeSpec;
}

export interface TinyMoeSpec {
  num_experts: number;
  num_experts_per_tok: number;
  moe_intermediate_size: number;
  norm_topk_prob: boolean;
  decoder_sparse_step: number;
  mlp_only_layers: number[];
}

/** transformers' Qwen3MoeDecoderLayer: experts unless the layer is in mlp_only_layers or off the sparse step. */
function isSparseLayer(spec: TinySpec, i: number): boolean {
  const moe = spec.moe;
  return moe !== undefined && !moe.mlp_only_layers.includes(i) && (i + 1) % moe.decoder_sparse_step === 0;
}

export interface InitRule {
  bound?: number;
  bound_times_sqrt_fan_in?: number;
  offset: number;
}

export interface TinyInit {
  embed_tokens: InitRule;
  lm_head: InitRule;
  norm: InitRule;
  linear: InitRule;
  /** Qwen3-MoE routers (mlp.gate); absent: `linear`'s. Larger bounds route more decisively. */
  router?: InitRule;
}

type Kind = keyof TinyInit;

function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(text, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** bf16 bit patterns of one tensor, row-major. */
export function tensorValues(seed: number, name: string, count: number, bound: number, offset: number): Uint16Array {
  const tseed = (Math.imul(seed, 0x9e3779b1) >>> 0) ^ fnv1a32(name);
  const out = new Uint16Array(count);
  for (let i = 0; i < count; i++) {
    const v = mix32((Math.imul(i, 0x9e3779b9) + tseed) >>> 0);
    const u = (v >>> 8) / 16777216;
    out[i] = f32ToBf16Bits((2 * u - 1) * bound + offset);
  }
  return out;
}

export function tensorSpecs(spec: TinySpec, vocab: number): [string, number[], Kind][] {
  const H = spec.hidden_size;
  const I = spec.intermediate_size;
  const q = spec.num_attention_heads * spec.head_dim;
  const kv = spec.num_key_value_heads * spec.head_dim;
  const out: [string, number[], Kind][] = [['model.embed_tokens.weight', [vocab, H], 'embed_tokens']];
  for (let i = 0; i < spec.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    out.push(
      [p + 'input_layernorm.weight', [H], 'norm'],
      [p + 'self_attn.q_proj.weight', [q, H], 'linear'],
      [p + 'self_attn.k_proj.weight', [kv, H], 'linear'],
      [p + 'self_attn.v_proj.weight', [kv, H], 'linear'],
      [p + 'self_attn.o_proj.weight', [H, q], 'linear'],
      [p + 'self_attn.q_norm.weight', [spec.head_dim], 'norm'],
      [p + 'self_attn.k_norm.weight', [spec.head_dim], 'norm'],
      [p + 'post_attention_layernorm.weight', [H], 'norm'],
    );
    if (isSparseLayer(spec, i)) {
      const { num_experts: E, moe_intermediate_size: Im } = spec.moe!;
      out.push([p + 'mlp.gate.weight', [E, H], 'router']);
      for (let e = 0; e < E; e++) {
        const q = `${p}mlp.experts.${e}.`;
        out.push([q + 'gate_proj.weight', [Im, H], 'linear'], [q + 'up_proj.weight', [Im, H], 'linear'], [q + 'down_proj.weight', [H, Im], 'linear']);
      }
    } else {
      out.push([p + 'mlp.gate_proj.weight', [I, H], 'linear'], [p + 'mlp.up_proj.weight', [I, H], 'linear'], [p + 'mlp.down_proj.weight', [H, I], 'linear']);
    }
  }
  out.push(['model.norm.weight', [H], 'norm']);
  if (!spec.tie_word_embeddings) out.push(['lm_head.weight', [vocab, H], 'lm_head']);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export interface TinyTensor {
  name: string;
  shape: number[];
  bf16: Uint16Array;
}

export function makeTensors(spec: TinySpec, vocab: number, init: TinyInit): TinyTensor[] {
  return tensorSpecs(spec, vocab).map(([name, shape, kind]) => {
    const rule = init[kind] ?? init.linear;
    const count = shape.reduce((a, b) => a * b, 1);
    const bound = rule.bound_times_sqrt_fan_in !== undefined ? rule.bound_times_sqrt_fan_in / Math.sqrt(shape[1]) : rule.bound!;
    return { name, shape, bf16: tensorValues(spec.seed, name, count, bound, rule.offset) };
  });
}

/** The digest scripts/make_fixtures.py records: sha256 over (name, shape JSON, bf16 bytes) in name order. */
export function weightsDigest(tensors: TinyTensor[]): string {
  const h = createHash('sha256');
  for (const t of [...tensors].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    h.update(t.name);
    h.update(JSON.stringify(t.shape).replaceAll(',', ', '));
    h.update(new Uint8Array(t.bf16.buffer, t.bf16.byteOffset, t.bf16.byteLength));
  }
  return h.digest('hex');
}

export function configJson(spec: TinySpec, vocab: number): Record<string, unknown> {
  return {
    architectures: ['Qwen3ForCausalLM'],
    model_type: 'qwen3',
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: 151643,
    eos_token_id: 151645,
    hidden_act: 'silu',
    hidden_size: spec.hidden_size,
    initializer_range: 0.02,
    intermediate_size: spec.intermediate_size,
    max_position_embeddings: spec.max_position_embeddings,
    max_window_layers: spec.num_hidden_layers,
    num_attention_heads: spec.num_attention_heads,
    num_hidden_layers: spec.num_hidden_layers,
    num_key_value_heads: spec.num_key_value_heads,
    head_dim: spec.head_dim,
    rms_norm_eps: spec.rms_norm_eps,
    rope_scaling: spec.rope_scaling,
    rope_theta: spec.rope_theta,
    sliding_window: null,
    tie_word_embeddings: spec.tie_word_embeddings,
    torch_dtype: 'bfloat16',
    use_cache: true,
    use_sliding_window: false,
    vocab_size: vocab,
    ...(spec.moe
      ? {
          architectures: ['Qwen3MoeForCausalLM'],
          model_type: 'qwen3_moe',
          ...spec.moe,
          output_router_logits: false,
          router_aux_loss_coef: 0.001,
        }
      : {}),
  };
}

/** Source dtypes the loader accepts; the values stay the same bf16 numbers (fp16/fp32 hold them exactly). */
export type SourceDtype = 'bfloat16' | 'float16' | 'float32';

function encode(t: TinyTensor, dtype: SourceDtype): TensorToWrite {
  const data = new Uint8Array(t.bf16.buffer, t.bf16.byteOffset, t.bf16.byteLength);
  if (dtype === 'bfloat16') return { name: t.name, dtype: 'BF16', shape: t.shape, data };
  const st = dtype === 'float32' ? 'F32' : 'F16';
  return { name: t.name, dtype: st, shape: t.shape, data: encodeFloats(decodeFloats(data, 'BF16'), st) };
}

export interface WriteTinyOptions {
  /** Folder holding tokenizer.json and tokenizer_config.json to copy in. */
  tokenizerDir: string;
  dtype?: SourceDtype;
  /** Override the spec's shard count. */
  shards?: number;
}

/** Writes a complete checkpoint folder (atomically: a temporary folder renamed at the end) and returns the weights digest. */
export function writeTinyCheckpoint(outDir: string, spec: TinySpec, vocab: number, init: TinyInit, opts: WriteTinyOptions): string {
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const tensors = makeTensors(spec, vocab, init);
  const dtype = opts.dtype ?? 'bfloat16';
  const shards = opts.shards ?? spec.shards;
  const names = tensors.map((t) => t.name);
  const byName = new Map(tensors.map((t) => [t.name, t]));
  if (shards === 1) {
    writeSafetensors(join(tmp, 'model.safetensors'), tensors.map((t) => encode(t, dtype)));
  } else {
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let k = 0; k < shards; k++) {
      const group = names.filter((_, i) => i % shards === k).sort();
      const fname = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const encoded = group.map((n) => encode(byName.get(n)!, dtype));
      writeSafetensors(join(tmp, fname), encoded);
      for (const e of encoded) {
        weightMap[e.name] = fname;
        total += e.data.byteLength;
      }
    }
    const sorted = Object.fromEntries(Object.entries(weightMap).sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2));
  }
  const config = configJson(spec, vocab);
  if (dtype !== 'bfloat16') config.torch_dtype = dtype;
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2));
  writeFileSync(
    join(tmp, 'generation_config.json'),
    JSON.stringify({ bos_token_id: 151643, eos_token_id: [151645, 151643], pad_token_id: 151643 }, null, 2),
  );
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(opts.tokenizerDir, f), join(tmp, f));
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return weightsDigest(tensors);
}
