// A Hugging Face Qwen3 checkpoint written as a GGUF file for llama.cpp, with the tensor names,
// metadata and tokenizer fields llama.cpp's own converter gives a Qwen3 model: the peer then runs
// the very weights our runtime runs. Matrices in bf16, Q8_0 or Q4_0 (ggml's reference
// quantizers, below); norms in f32 as the converter writes them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, type TensorInfo } from '../../src/model/safetensors.js';
import { readTensorBytes } from '../../src/model/tensor-data.js';
import { decodeFloats, f32ToF16Bits } from '../../src/quant/numeric.js';
import { GgmlType, tensorBytes, writeGguf, type GgmlTypeId, type GgufTensor, type GgufValue } from './gguf-writer.js';

export type PeerFormat = 'bf16' | 'q8_0' | 'q4_0';

/** llama.cpp's token types (llama-vocab.h). */
const TOKEN_NORMAL = 1;
const TOKEN_CONTROL = 3;
const TOKEN_USER_DEFINED = 4;
const TOKEN_UNUSED = 5;

/** ggml's quantize_row_q8_0_ref: per 32 values an f16 scale amax/127 and 32 rounded int8. */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[b * 32 + j]! * id);
      // roundf: halves away from zero.
      view.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
  return out;
}

/** ggml's quantize_row_q4_0_ref: per 32 values an f16 scale max/-8 (max: the signed value of largest magnitude) and 32 nibbles, value j and j+16 in one byte. */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * 18);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j]!;
      if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(b * 18, f32ToF16Bits(d), true);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b * 32 + j]! * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[b * 32 + 16 + j]! * id) + 8.5)));
      out[b * 18 + 2 + j] = q0 | (q1 << 4);
    }
  }
  return out;
}

/** Our tensor name -> llama.cpp's (its converter's Qwen3 table). */
function ggufName(hf: string): string | undefined {
  const top: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (top[hf]) return top[hf];
  const m = /^model\.layers\.(\d+)\.(.+)\.weight$/.exec(hf);
  if (!m) return undefined;
  const part: Record<string, string> = {
    input_layernorm: 'attn_norm',
    'self_attn.q_proj': 'attn_q',
    'self_attn.k_proj': 'attn_k',
    'self_attn.v_proj': 'attn_v',
    'self_attn.o_proj': 'attn_output',
    'self_attn.q_norm': 'attn_q_norm',
    'self_attn.k_norm': 'attn_k_norm',
    post_attention_layernorm: 'ffn_norm',
    'mlp.gate_proj': 'ffn_gate',
    'mlp.up_proj': 'ffn_up',
    'mlp.down_proj': 'ffn_down',
  };
  const p = part[m[2]!];
  return p ? `blk.${m[1]}.${p}.weight` : undefined;
}

/**
 * The type each tensor gets. Matrices take the format; the embedding (also the LM head when tied)
 * stays Q8_0 under Q4_0, as llama.cpp's quantizer keeps the output matrix at higher precision.
 */
function typeFor(name: string, dims: number[], format: PeerFormat): GgmlTypeId {
  if (dims.length === 1) return GgmlType.F32;
  if (format === 'bf16') return GgmlType.BF16;
  if (format === 'q8_0' || name === 'token_embd.weight' || name === 'output.weight') return GgmlType.Q8_0;
  return GgmlType.Q4_0;
}

function tensorData(t: TensorInfo, type: GgmlTypeId): () => Uint8Array {
  return () => {
    if (t.dtype !== 'BF16') throw new Error(`${t.name} is ${t.dtype}; this writer takes bf16 checkpoints`);
    const raw = readTensorBytes(t);
    if (type === GgmlType.BF16) return raw;
    const values = decodeFloats(raw, 'BF16');
    if (type === GgmlType.F32) return new Uint8Array(values.buffer);
    return type === GgmlType.Q8_0 ? quantizeQ8_0(values) : quantizeQ4_0(values);
  };
}

interface HfConfig {
  num_hidden_layers: number;
  hidden_size: number;
  intermediate_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  vocab_size: number;
  bos_token_id?: number;
  eos_token_id?: number;
}

interface HfTokenizer {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
}

/** The tokenizer fields: llama.cpp checks the vocabulary's length against the embedding's rows. */
function tokenizerMetadata(dir: string, vocabRows: number, cfg: HfConfig): Record<string, GgufValue> {
  const tok = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as HfTokenizer;
  const tokens: string[] = Array.from({ length: vocabRows }, (_, i) => `[PAD${i}]`);
  const types = new Int32Array(vocabRows).fill(TOKEN_UNUSED);
  for (const [text, id] of Object.entries(tok.model.vocab)) {
    tokens[id] = text;
    types[id] = TOKEN_NORMAL;
  }
  for (const a of tok.added_tokens) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
  }
  const merges = tok.model.merges.map((m) => (typeof m === 'string' ? m : `${m[0]} ${m[1]}`));
  const eos = cfg.eos_token_id ?? 151645;
  return {
    'tokenizer.ggml.model': { str: 'gpt2' },
    'tokenizer.ggml.pre': { str: 'qwen2' },
    'tokenizer.ggml.tokens': { strs: tokens },
    'tokenizer.ggml.token_type': { i32s: types },
    'tokenizer.ggml.merges': { strs: merges },
    'tokenizer.ggml.eos_token_id': { u32: eos },
    'tokenizer.ggml.padding_token_id': { u32: cfg.bos_token_id ?? 151643 },
    'tokenizer.ggml.bos_token_id': { u32: cfg.bos_token_id ?? 151643 },
    'tokenizer.ggml.add_bos_token': { bool: false },
  };
}

function checkpointConfig(dir: string): HfConfig {
  return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as HfConfig;
}

/** The checkpoint's tensors under llama.cpp's names and the format's types, data made on demand. */
function ggufTensors(dir: string, format: PeerFormat): GgufTensor[] {
  const file = join(dir, 'model.safetensors');
  if (!existsSync(file)) throw new Error(`${file} not found: the GGUF writer takes single-file checkpoints`);
  return readSafetensorsHeader(file).tensors.map((t) => {
    const name = ggufName(t.name);
    if (!name) throw new Error(`${t.name} has no llama.cpp name`);
    const dims = [...t.shape].reverse();
    const type = typeFor(name, dims, format);
    return { name, dims, type, data: tensorData(t, type) };
  });
}

/** Bytes of every tensor the GGUF file holds: what a one-row step reads (the tied embedding is the head). */
export function qwen3GgufTensorBytes(dir: string, format: PeerFormat): number {
  return ggufTensors(dir, format).reduce((a, t) => a + tensorBytes(t.type, t.dims.reduce((x, y) => x * y, 1)), 0);
}

/** Writes `out` from the checkpoint in `dir` (one model.safetensors file). Returns its tensor bytes. */
export function writeQwen3Gguf(dir: string, out: string, format: PeerFormat): number {
  const cfg = checkpointConfig(dir);
  const tensors = ggufTensors(dir, format);
  const vocabRows = tensors.find((t) => t.name === 'token_embd.weight')?.dims[1] ?? cfg.vocab_size;
  const headDim = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
  const fileType = { bf16: 32, q8_0: 7, q4_0: 2 }[format]; // llama_ftype: MOSTLY_BF16, MOSTLY_Q8_0, MOSTLY_Q4_0
  const metadata: Record<string, GgufValue> = {
    'general.architecture': { str: 'qwen3' },
    'general.name': { str: 'grpst benchmark checkpoint' },
    'general.file_type': { u32: fileType },
    'qwen3.block_count': { u32: cfg.num_hidden_layers },
    'qwen3.context_length': { u32: cfg.max_position_embeddings },
    'qwen3.embedding_length': { u32: cfg.hidden_size },
    'qwen3.feed_forward_length': { u32: cfg.intermediate_size },
    'qwen3.attention.head_count': { u32: cfg.num_attention_heads },
    'qwen3.attention.head_count_kv': { u32: cfg.num_key_value_heads },
    'qwen3.attention.key_length': { u32: headDim },
    'qwen3.attention.value_length': { u32: headDim },
    'qwen3.rope.freq_base': { f32: cfg.rope_theta },
    'qwen3.attention.layer_norm_rms_epsilon': { f32: cfg.rms_norm_eps },
    ...tokenizerMetadata(dir, vocabRows, cfg),
  };
  return writeGguf(out, metadata, tensors);
}
