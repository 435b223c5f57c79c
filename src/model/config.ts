// Qwen3's config.json, validated with zod and reduced to the numbers the runtime needs.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { badInput, unreadableFile } from '../util/errors.js';
import { ropeTables } from './rope.js';

const ropeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive().optional(),
    original_max_position_embeddings: z.number().int().positive().optional(),
    beta_fast: z.number().optional(),
    beta_slow: z.number().optional(),
    attention_factor: z.number().optional(),
    mscale: z.number().optional(),
    mscale_all_dim: z.number().optional(),
    truncate: z.boolean().optional(),
    rope_theta: z.number().positive().optional(),
  })
  .passthrough();

export const hfConfigSchema = z
  .object({
    model_type: z.string(),
    architectures: z.array(z.string()).optional(),
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive().optional(),
    head_dim: z.number().int().positive().optional(),
    vocab_size: z.number().int().positive(),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().optional(),
    rope_scaling: ropeScalingSchema.nullable().optional(),
    /** transformers 5 writes rope_theta and rope_scaling together under this key. */
    rope_parameters: ropeScalingSchema.nullable().optional(),
    tie_word_embeddings: z.boolean().default(false),
    max_position_embeddings: z.number().int().positive().default(40960),
    attention_bias: z.boolean().default(false),
    hidden_act: z.string().default('silu'),
    torch_dtype: z.string().optional(),
    dtype: z.string().optional(),
    bos_token_id: z.number().int().nullable().optional(),
    eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullable().optional(),
    use_sliding_window: z.boolean().optional(),
    quantization_config: z.record(z.string(), z.unknown()).optional(),
    // Qwen3-MoE (Qwen3MoeForCausalLM: Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen3-Coder-30B-A3B)
    num_experts: z.number().int().nonnegative().optional(),
    /** transformers 5 writes num_experts under this name. */
    num_local_experts: z.number().int().nonnegative().optional(),
    num_experts_per_tok: z.number().int().positive().optional(),
    moe_intermediate_size: z.number().int().positive().optional(),
    norm_topk_prob: z.boolean().optional(),
    decoder_sparse_step: z.number().int().positive().optional(),
    mlp_only_layers: z.array(z.number().int().nonnegative()).optional(),
  })
  .passthrough();

export type HfConfig = z.infer<typeof hfConfigSchema>;

/**
 * A Qwen3-MoE model's sparse MLP: each sparse layer routes every token to numExpertsPerTok of
 * numExperts SwiGLU experts (softmax over the router's logits, the top k taken, renormalised to
 * sum 1 when normTopkProb) and adds their outputs weighted by those probabilities.
 */
export interface MoeConfig {
  numExperts: number;
  numExpertsPerTok: number;
  /** Each expert's intermediate size (moe_intermediate_size). */
  intermediateSize: number;
  normTopkProb: boolean;
  /** Per layer: true where the layer's MLP is the experts, false where it is dense (mlp_only_layers, decoder_sparse_step). */
  sparseLayers: boolean[];
}

/** What the native runtime needs to build Qwen3's graph. Field names match the addon's. */
export interface ModelConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** The longest sequence the positions cover: max_position_embeddings, or YaRN's factor x original length where larger (vLLM's rule). */
  maxContext: number;
  ropeTheta: number;
  /** "default" or "yarn". */
  ropeType: string;
  /** inverse frequencies, headDim/2 of them, as transformers computes them (YaRN blended). */
  ropeInvFreq: number[];
  /** multiplies cos and sin (YaRN's attention factor; 1 otherwise). */
  ropeAttentionScaling: number;
  eosTokenIds: number[];
  /** Present for Qwen3-MoE checkpoints only. */
  moe?: MoeConfig;
}

const MOE_ARCHITECTURE = 'Qwen3MoeForCausalLM';

/** The sparse MLP of a qwen3_moe config, as transformers' Qwen3MoeDecoderLayer decides it per layer. */
function moeConfig(hf: HfConfig, file: string): MoeConfig | undefined {
  const isMoe = hf.model_type === 'qwen3_moe' || (hf.architectures ?? []).includes(MOE_ARCHITECTURE);
  if (!isMoe) return undefined;
  const need = (key: string, v: number | undefined): number => {
    if (v === undefined) throw badInput(`${file}: ${key} is missing from a qwen3_moe config`, 'use the checkpoint\'s own config.json');
    return v;
  };
  const numExperts = need('num_experts', hf.num_experts ?? hf.num_local_experts);
  const topK = need('num_experts_per_tok', hf.num_experts_per_tok);
  const intermediateSize = need('moe_intermediate_size', hf.moe_intermediate_size);
  if (numExperts < 1) throw badInput(`${file}: num_experts is 0; a qwen3_moe model needs experts`, 'use a Qwen3 (dense) config for a model without experts');
  if (topK > numExperts) throw badInput(`${file}: num_experts_per_tok ${topK} is more than num_experts ${numExperts}`);
  const step = hf.decoder_sparse_step ?? 1;
  const dense = new Set(hf.mlp_only_layers ?? []);
  const sparseLayers = Array.from({ length: hf.num_hidden_layers }, (_, i) => !dense.has(i) && (i + 1) % step === 0);
  // transformers' Qwen3MoeConfig defaults norm_topk_prob to false; the released models set it true.
  return { numExperts, numExpertsPerTok: topK, intermediateSize, normTopkProb: hf.norm_topk_prob ?? false, sparseLayers };
}

export function parseHfConfig(raw: unknown, file = 'config.json'): { hf: HfConfig; model: ModelConfig } {
  const parsed = hfConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw badInput(
      `${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`,
      'point --model_dir at a Hugging Face Qwen3 checkpoint folder',
    );
  }
  const hf = parsed.data;
  const archs = hf.architectures ?? [];
  const isQwen3 = hf.model_type === 'qwen3' || hf.model_type === 'qwen3_moe' || archs.includes('Qwen3ForCausalLM') || archs.includes(MOE_ARCHITECTURE);
  if (!isQwen3) {
    throw badInput(
      `${file}: model_type is "${hf.model_type}"${hf.architectures ? ` (${hf.architectures.join(', ')})` : ''}, not qwen3 or qwen3_moe`,
      'grpst builds Qwen3 models (Qwen3-0.6B ... Qwen3-32B, and the Qwen3-MoE ones such as Qwen3-30B-A3B); use a Qwen3 checkpoint',
    );
  }
  const moe = moeConfig(hf, file);
  if (hf.attention_bias) throw badInput(`${file}: attention_bias is true; Qwen3 has no attention bias`, 'use an unmodified Qwen3 config.json');
  if (hf.hidden_act !== 'silu') throw badInput(`${file}: hidden_act "${hf.hidden_act}" is not supported (Qwen3 uses silu)`);
  const numHeads = hf.num_attention_heads;
  const numKvHeads = hf.num_key_value_heads ?? numHeads;
  if (numHeads % numKvHeads !== 0) {
    throw badInput(`${file}: num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  const headDim = hf.head_dim ?? Math.floor(hf.hidden_size / numHeads);
  if (headDim % 2 !== 0) throw badInput(`${file}: head_dim ${headDim} must be even for rotary embeddings`);
  const params = { ...(hf.rope_parameters ?? {}), ...(hf.rope_scaling ?? {}) };
  const ropeTheta = hf.rope_theta ?? params.rope_theta ?? 10000;
  const ropeType = params.rope_type ?? params.type ?? 'default';
  if (ropeType !== 'default' && ropeType !== 'yarn') {
    throw badInput(`${file}: rope_scaling type "${ropeType}" is not supported`, 'Qwen3 uses no rope scaling or YaRN ("rope_type": "yarn")');
  }
  const rope = ropeTables({
    headDim,
    theta: ropeTheta,
    type: ropeType,
    factor: params.factor ?? 1,
    originalMaxPositionEmbeddings: params.original_max_position_embeddings ?? hf.max_position_embeddings,
    betaFast: params.beta_fast,
    betaSlow: params.beta_slow,
    attentionFactor: params.attention_factor,
    mscale: params.mscale,
    mscaleAllDim: params.mscale_all_dim,
    truncate: params.truncate,
  });
  const eos = hf.eos_token_id;
  return {
    hf,
    model: {
      hiddenSize: hf.hidden_size,
      intermediateSize: hf.intermediate_size,
      numLayers: hf.num_hidden_layers,
      numHeads,
      numKvHeads,
      headDim,
      vocabSize: hf.vocab_size,
      rmsNormEps: hf.rms_norm_eps,
      tieWordEmbeddings: hf.tie_word_embeddings,
      maxPositionEmbeddings: hf.max_position_embeddings,
      maxContext:
        ropeType === 'yarn'
          ? Math.max(hf.max_position_embeddings, Math.floor((params.factor ?? 1) * (params.original_max_position_embeddings ?? hf.max_position_embeddings)))
          : hf.max_position_embeddings,
      ropeTheta,
      ropeType,
      ropeInvFreq: rope.invFreq,
      ropeAttentionScaling: rope.attentionScaling,
      eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
      ...(moe ? { moe } : {}),
    },
  };
}

export function readHfConfig(file: string): { hf: HfConfig; model: ModelConfig } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const refused = unreadableFile(e, file);
    if (refused) throw refused;
    throw badInput(`${file} not found`, 'a Hugging Face checkpoint folder holds config.json beside its safetensors files');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw badInput(`${file} is not valid JSON: ${(e as Error).message}`, 'copy config.json again from the checkpoint (a cut-off download or a hand edit leaves it like this)');
  }
  return parseHfConfig(raw, file);
}

/** "N is past the model's M positions (where M comes from)": build and load refuse the same way. */
export function pastContext(what: string, asked: number, model: ModelConfig): string {
  const from = model.ropeType === 'yarn' ? "max_position_embeddings, or YaRN's factor x original_max_position_embeddings" : 'max_position_embeddings';
  return `${what} ${asked} is past the model's ${model.maxContext} positions (config.json: ${from})`;
}
