// A Hugging Face Qwen3 checkpoint folder: config.json, one or more safetensors files, tokenizer
// files. Reads headers only and checks every tensor the model needs is there with its shape.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { badInput, unreadableFile } from '../util/errors.js';
import { expertModules, expertShape, isSparseLayer, routerModule } from './moe-tensors.js';
import { readHfConfig, type HfConfig, type ModelConfig } from './config.js';
import { readSafetensorsHeader, type TensorInfo } from './safetensors.js';

export interface Checkpoint {
  dir: string;
  hf: HfConfig;
  model: ModelConfig;
  tensors: Map<string, TensorInfo>;
  /** The safetensors files, in index order. */
  files: string[];
  /**
   * A base model's save (Qwen3Model, as Qwen3-Embedding checkpoints ship): its tensors are named
   * without `model.` (renamed here) and it has no lm_head.weight, so the embedding table stands in
   * for the head (tied) and the model serves embeddings, not generation.
   */
  headless?: boolean;
}

export function checkpointFiles(dir: string): string[] {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let weightMap: Record<string, string>;
    try {
      weightMap = JSON.parse(readFileSync(index, 'utf8')).weight_map;
    } catch (e) {
      const refused = unreadableFile(e, index);
      if (refused) throw refused;
      throw badInput(`${index} is not valid JSON: ${(e as Error).message}`, 'copy model.safetensors.index.json again from the checkpoint');
    }
    if (!weightMap || typeof weightMap !== 'object') throw badInput(`${index} has no weight_map`);
    const files = [...new Set(Object.values(weightMap))];
    for (const f of files) {
      if (f.includes('/') || f.includes('\\')) throw badInput(`${index} names a shard outside the folder: ${f}`);
      if (!existsSync(join(dir, f))) throw badInput(`${index} names ${f}, which is missing from ${dir}`, 'copy every shard of the checkpoint');
    }
    return files.map((f) => join(dir, f));
  }
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  throw badInput(
    `${dir} holds no model.safetensors or model.safetensors.index.json`,
    'point --model_dir at a Hugging Face checkpoint in safetensors format',
  );
}

/** Shapes the model needs, by tensor name ([out, in] for projections, as Hugging Face stores them). */
export function expectedShapes(m: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  const H = m.hiddenSize;
  const q = m.numHeads * m.headDim;
  const kv = m.numKvHeads * m.headDim;
  shapes.set('model.embed_tokens.weight', [m.vocabSize, H]);
  for (let i = 0; i < m.numLayers; i++) {
    const p = `model.layers.${i}.`;
    shapes.set(p + 'input_layernorm.weight', [H]);
    shapes.set(p + 'self_attn.q_proj.weight', [q, H]);
    shapes.set(p + 'self_attn.k_proj.weight', [kv, H]);
    shapes.set(p + 'self_attn.v_proj.weight', [kv, H]);
    shapes.set(p + 'self_attn.o_proj.weight', [H, q]);
    shapes.set(p + 'self_attn.q_norm.weight', [m.headDim]);
    shapes.set(p + 'self_attn.k_norm.weight', [m.headDim]);
    shapes.set(p + 'post_attention_layernorm.weight', [H]);
    if (isSparseLayer(m, i)) {
      // Qwen3-MoE: the router and each expert's SwiGLU projections (the Hub's per-expert names)
      shapes.set(`${routerModule(i)}.weight`, [m.moe!.numExperts, H]);
      for (const { module, projection } of expertModules(m, i)) shapes.set(`${module}.weight`, expertShape(m, projection));
    } else {
      shapes.set(p + 'mlp.gate_proj.weight', [m.intermediateSize, H]);
      shapes.set(p + 'mlp.up_proj.weight', [m.intermediateSize, H]);
      shapes.set(p + 'mlp.down_proj.weight', [H, m.intermediateSize]);
    }
  }
  shapes.set('model.norm.weight', [H]);
  if (!m.tieWordEmbeddings) shapes.set('lm_head.weight', [m.vocabSize, H]);
  return shapes;
}

export interface OpenCheckpointOptions {
  /** Skip the shape check (pre-quantized checkpoints store other tensors). */
  allowQuantized?: boolean;
}

export function openCheckpoint(dirArg: string, opts: OpenCheckpointOptions = {}): Checkpoint {
  const dir = resolve(dirArg);
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw badInput(`${dir} is a file, not a model folder`, `pass the folder that holds it and the safetensors files: ${dirname(dir)}`);
  }
  if (!existsSync(dir)) {
    throw badInput(`model folder ${dir} does not exist`, 'pass the folder that holds config.json and the safetensors files');
  }
  let { hf, model } = readHfConfig(join(dir, 'config.json'));
  const files = checkpointFiles(dir);
  let tensors = new Map<string, TensorInfo>();
  for (const f of files) {
    for (const t of readSafetensorsHeader(f).tensors) {
      if (tensors.has(t.name)) throw badInput(`tensor ${t.name} appears in two files (${tensors.get(t.name)!.file} and ${f})`);
      tensors.set(t.name, t);
    }
  }
  const base = baseModelTensors(tensors);
  let headless = false;
  if (base) {
    tensors = base;
    // No head (every Qwen3-Embedding; the 8B even says tie_word_embeddings false): the table
    // stands in so that the runtime loads, and only embeddings are served.
    if (!tensors.has('lm_head.weight')) {
      headless = true;
      hf = { ...hf, tie_word_embeddings: true };
      model = { ...model, tieWordEmbeddings: true };
    }
  }
  if (!opts.allowQuantized) {
    // The runtime maps float tensors as they lie; AWQ and FP8 weights need a build to convert them.
    const method = (hf.quantization_config as { quant_method?: unknown } | undefined)?.quant_method;
    if (hf.quantization_config) {
      throw badInput(
        `${dir} is a quantized checkpoint (quantization_config.quant_method "${String(method ?? '')}"): only bf16, fp16 and fp32 checkpoints load directly; build an engine from it with grpst build`,
        `grpst build --model_dir ${dir} --output_dir ${dir}-engine, then load that folder`,
      );
    }
    checkShapes(dir, model, tensors);
  }
  return { dir, hf, model, tensors, files, ...(headless ? { headless } : {}) };
}

/**
 * A base model's tensors (`embed_tokens.weight`, `layers.N...`, `norm.weight`: Qwen3Model's
 * save_pretrained, the layout Qwen3-Embedding checkpoints ship) under the causal LM's names
 * (`model.` added); undefined for a causal LM's own layout.
 */
function baseModelTensors(tensors: Map<string, TensorInfo>): Map<string, TensorInfo> | undefined {
  if (tensors.has('model.embed_tokens.weight') || !tensors.has('embed_tokens.weight')) return undefined;
  const renamed = new Map<string, TensorInfo>();
  for (const [name, t] of tensors) {
    const to = name.startsWith('lm_head.') ? name : `model.${name}`;
    renamed.set(to, { ...t, name: to });
  }
  return renamed;
}

function checkShapes(dir: string, model: ModelConfig, tensors: Map<string, TensorInfo>): void {
  for (const [name, shape] of expectedShapes(model)) {
    const t = tensors.get(name);
    if (!t) throw badInput(`${dir}: tensor ${name} is missing`, 'the checkpoint is incomplete, or its config.json does not describe its tensors');
    if (t.shape.join(',') !== shape.join(',')) {
      throw badInput(`${t.file}: tensor ${name} has shape [${t.shape}] but config.json implies [${shape}]`);
    }
    if (t.dtype !== 'BF16' && t.dtype !== 'F16' && t.dtype !== 'F32') {
      throw badInput(`${t.file}: tensor ${name} is ${t.dtype}; only bf16, fp16 and fp32 checkpoints load directly`, 'build an engine with grpst build for quantized checkpoints');
    }
  }
}
