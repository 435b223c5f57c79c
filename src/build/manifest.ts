// engine.json: everything the runtime needs to load an engine folder, and nothing it must guess
// from file names. Written last by `grpst build` (it holds the sha256 of every other file), read by
// the runtime's engine-folder loader and by `grpst run`. Byte layouts of the weight formats:
// src/quant/LAYOUTS.md.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { badInput } from '../util/errors.js';

export const ENGINE_FORMAT = 'grpst-engine';
export const ENGINE_FORMAT_VERSION = 1;
export const MANIFEST_FILE = 'engine.json';

const tensorSchema = z.object({
  /** safetensors dtype names: BF16 F16 F32 I8 U8 I32 F8_E4M3. */
  dtype: z.enum(['BF16', 'F16', 'F32', 'I8', 'U8', 'I32', 'F8_E4M3']),
  shape: z.array(z.number().int().nonnegative()),
  /** Byte offset in the rank's weight file (64-byte aligned). */
  offset: z.number().int().nonnegative(),
  nbytes: z.number().int().nonnegative(),
});

const linearSchema = z.object({
  /** float: the engine dtype, unquantized; the others: src/quant/LAYOUTS.md. */
  format: z.enum(['float', 'int8_wo', 'int4', 'fp8', 'int8_sq']),
  out_features: z.number().int().positive(),
  in_features: z.number().int().positive(),
  /** Role (weight, scales, zeros, weight_scale, input_scale) -> tensor name in the rank's table. */
  tensors: z.record(z.string(), z.string()),
  group_size: z.number().int().positive().optional(),
  activation: z.enum(['per_token_dynamic', 'per_tensor_static']).optional(),
});

const rankSchema = z.object({
  rank: z.number().int().nonnegative(),
  /** The weight file of this rank, relative to the engine folder. */
  file: z.string(),
  tensors: z.record(z.string(), tensorSchema),
  /** Every linear layer by its Hugging Face module name (model.layers.0.self_attn.q_proj, lm_head). */
  linears: z.record(z.string(), linearSchema),
  /**
   * Engines of tp_size > 1: what this rank's shard holds (src/build/shard.ts). Its query heads,
   * KV heads and MLP channels are the rank-th equal slice; its vocabulary rows [vocab_start, vocab_end).
   */
  shard: z
    .object({
      num_heads: z.number().int().positive(),
      num_kv_heads: z.number().int().positive(),
      intermediate_size: z.number().int().positive(),
      vocab_start: z.number().int().nonnegative(),
      vocab_end: z.number().int().positive(),
    })
    .optional(),
});

const accuracySchema = z.object({
  /** What the quantized engine was compared with: the source checkpoint, unquantized. */
  reference: z.string(),
  tokens: z.number().int().nonnegative(),
  top1_agreement: z.number(),
  mean_kl: z.number(),
  perplexity_reference: z.number(),
  perplexity: z.number(),
});

export const manifestSchema = z.object({
  format: z.literal(ENGINE_FORMAT),
  format_version: z.number().int().positive(),
  /** native: this runtime maps the weights; trtllm: a TensorRT-LLM engine (rank*.engine) built by its tools. */
  backend: z.enum(['native', 'trtllm']),
  /** Version of grpst that wrote it (no timestamp: the same inputs give the same bytes). */
  created_by: z.string(),
  source: z.object({
    /** Folder name of the checkpoint (its path is not recorded: engines move between machines). */
    name: z.string(),
    /** sha256 of config.json and of each safetensors file of the checkpoint, by file name. */
    sha256: z.record(z.string(), z.string()),
    /** How the checkpoint came quantized: "awq" (AutoAWQ GEMM tensors) or "fp8" (e4m3 in scaled blocks, dequantized by the build). */
    quantized: z.string().optional(),
    /** A base model without an LM head (Qwen3-Embedding's layout): the engine serves embeddings only. */
    embedding_only: z.boolean().optional(),
    /** grpst build --merge_lora: the PEFT adapter merged into the weights (its files' hashes are in sha256, under its name). */
    merged_lora: z.object({ name: z.string(), rank: z.number().int().positive(), targets: z.array(z.string()) }).optional(),
  }),
  /** The checkpoint's config.json, as read (quantization_config removed): the runtime parses it like a checkpoint's. */
  model_config: z.record(z.string(), z.unknown()),
  /** Float type of everything not quantized (embeddings, lm_head, norms, float linears). */
  dtype: z.enum(['bfloat16', 'float16', 'float32']),
  quantization: z.object({
    /** full_prec, int8_wo, int4_awq, fp8, int8_sq (TensorRT-LLM's names). */
    qformat: z.enum(['full_prec', 'int8_wo', 'int4_awq', 'fp8', 'int8_sq']),
    /** int4_awq: elements per scale group along the input dimension. */
    awq_block_size: z.number().int().positive().optional(),
    smoothquant_alpha: z.number().optional(),
    /** Linears left in the float dtype. */
    excluded: z.array(z.string()),
    calibration: z
      .object({
        /** "builtin" or the dataset file's name. */
        dataset: z.string(),
        sha256: z.string(),
        samples: z.number().int().nonnegative(),
        tokens: z.number().int().nonnegative(),
        /** Where the statistics were taken ("CPU (avx2)", "NVIDIA H200 (sm_90, cuda)"): their float rounding differs. */
        device: z.string().optional(),
      })
      .optional(),
  }),
  kv_cache: z.object({
    /** bfloat16 / float16 / float32 (the engine dtype), fp8 (e4m3) or int8. */
    dtype: z.enum(['bfloat16', 'float16', 'float32', 'fp8', 'int8']),
    /** fp8 / int8: per layer [k_scale, v_scale], stored value = round(x / scale). */
    scales: z.array(z.tuple([z.number(), z.number()])).optional(),
  }),
  limits: z.object({
    max_batch_size: z.number().int().positive(),
    max_input_len: z.number().int().positive(),
    max_seq_len: z.number().int().positive(),
    max_num_tokens: z.number().int().positive(),
  }),
  /** Tensor and pipeline parallel layout; ranks[r] holds rank r's weights. */
  mapping: z.object({ tp_size: z.number().int().positive(), pp_size: z.number().int().positive() }),
  ranks: z.array(rankSchema),
  /** Tokenizer files copied from the checkpoint, relative to the engine folder. */
  tokenizer_files: z.array(z.string()),
  /** Every file of the folder except engine.json: size and sha256. */
  files: z.record(z.string(), z.object({ bytes: z.number().int().nonnegative(), sha256: z.string() })),
  accuracy: accuracySchema.optional(),
});

export type EngineManifest = z.infer<typeof manifestSchema>;
export type ManifestTensor = z.infer<typeof tensorSchema>;
export type ManifestLinear = z.infer<typeof linearSchema>;
export type ManifestRank = z.infer<typeof rankSchema>;
export type AccuracyReport = z.infer<typeof accuracySchema>;

export function isEngineFolder(dir: string): boolean {
  try {
    readFileSync(join(dir, MANIFEST_FILE));
    return true;
  } catch {
    return false;
  }
}

export function readManifest(dir: string): EngineManifest {
  const file = join(dir, MANIFEST_FILE);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw badInput(
      code === 'ENOENT' ? `${dir} is not an engine folder (no ${MANIFEST_FILE})` : `${file} is not valid JSON: ${(e as Error).message}`,
      'build one with `grpst build --model_dir CHECKPOINT --output_dir DIR`',
    );
  }
  const version = (raw as { format_version?: unknown })?.format_version;
  if ((raw as { backend?: unknown })?.backend === 'trtllm') {
    throw badInput(`${dir} holds a TensorRT-LLM engine (built with --backend trtllm); grpst's runtime loads native engines`, 'serve it with TensorRT-LLM, or build a native engine (the default backend)');
  }
  if (typeof version === 'number' && version > ENGINE_FORMAT_VERSION) {
    throw badInput(`${file} has engine format version ${version}; this grpst reads up to ${ENGINE_FORMAT_VERSION}`, 'upgrade grpst or rebuild the engine with this version');
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badInput(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`, 'the engine folder is damaged; rebuild it with grpst build');
  }
  return parsed.data;
}
