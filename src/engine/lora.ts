// LoRA adapters in PEFT's format (adapter_config.json + adapter_model.safetensors), read for the
// native runtime: each adapted projection of each layer becomes a delta {rank, scale, A, B} in
// fp32, and the runtime adds scale * B (A x) to that projection's output for the requests that
// name the adapter (vLLM's multi-LoRA serving). The base weights are never touched, so one engine
// serves the base model and any number of adapters side by side.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { ModelConfig } from '../model/config.js';
import { readSafetensorsHeader, type TensorInfo } from '../model/safetensors.js';
import { readTensorBytes, readTensorBytesAsync } from '../model/tensor-data.js';
import { decodeFloats } from '../quant/numeric.js';
import { badInput, notFound } from '../util/errors.js';

/** PEFT's module names of the projections the runtime adapts, in the native LoraTarget order. */
export const loraTargets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type LoraTargetName = (typeof loraTargets)[number];
const mlpTargets = new Set<LoraTargetName>(['gate_proj', 'up_proj', 'down_proj']);

/** The shapes an adapter must fit (the native LoraShape). */
export interface LoraShape {
  numLayers: number;
  hidden: number;
  intermediate: number;
  qDim: number;
  kvDim: number;
}

export function loraShapeOf(model: ModelConfig): LoraShape {
  return {
    numLayers: model.numLayers,
    hidden: model.hiddenSize,
    intermediate: model.intermediateSize,
    qDim: model.numHeads * model.headDim,
    kvDim: model.numKvHeads * model.headDim,
  };
}

/** One adapted projection in fp32 (the build's --merge_lora): a is [rank, in], b is [out, rank]. */
export interface LoraDelta {
  layer: number;
  /** Index into loraTargets. */
  target: number;
  rank: number;
  scale: number;
  a: Float32Array;
  b: Float32Array;
}

export interface LoraAdapterData {
  /** The adapter's folder, absolute. */
  path: string;
  /** The largest rank of its projections. */
  rank: number;
  /** The projections it adapts (PEFT's names), in loraTargets' order. */
  targets: LoraTargetName[];
  deltas: LoraDelta[];
}

// Only the fields the runtime acts on, plus the ones whose values it cannot honour; PEFT writes many more.
const peftConfigSchema = z
  .object({
    peft_type: z.string(),
    r: z.number().int().positive(),
    lora_alpha: z.number(),
    use_rslora: z.boolean().optional(),
    use_dora: z.boolean().optional(),
    fan_in_fan_out: z.boolean().optional(),
    bias: z.string().optional(),
    lora_bias: z.boolean().optional(),
    modules_to_save: z.array(z.string()).nullable().optional(),
    rank_pattern: z.record(z.string(), z.number().int().positive()).nullable().optional(),
    alpha_pattern: z.record(z.string(), z.number()).nullable().optional(),
    layer_replication: z.unknown().optional(),
  })
  .passthrough();
type PeftConfig = z.infer<typeof peftConfigSchema>;

const tensorKey =
  /^(?:base_model\.model\.)?model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)(?:\.default)?\.weight$/;

const mergeFix = 'merge the adapter into the base weights (PEFT: model.merge_and_unload()) and build that checkpoint';

/**
 * The pattern key of rank_pattern / alpha_pattern that names `moduleKey`, as PEFT matches them: the
 * first key that matches a dotted suffix of the module's name, the key read as a regular expression.
 */
export function patternKey(patterns: Record<string, unknown>, moduleKey: string): string | undefined {
  return Object.keys(patterns).find((key) => new RegExp(`^(.*\\.)?(${key})$`).test(moduleKey));
}

function readConfig(dir: string): PeftConfig {
  const file = join(dir, 'adapter_config.json');
  if (!existsSync(file)) throw notFound(`${dir} has no adapter_config.json`, 'point at a PEFT LoRA adapter folder (adapter_config.json and adapter_model.safetensors)');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw badInput(`${file} is not JSON: ${(e as Error).message}`, 'fix or replace the adapter folder');
  }
  const parsed = peftConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput(`${file}: ${issue.path.join('.') || 'the file'}: ${issue.message}`, 'a PEFT LoRA adapter_config.json needs peft_type, r and lora_alpha');
  }
  const c = parsed.data;
  if (c.peft_type !== 'LORA') throw badInput(`${file}: peft_type is ${JSON.stringify(c.peft_type)}; only LoRA adapters ("LORA") are served`, mergeFix);
  if (c.use_dora) throw badInput(`${file}: a DoRA adapter (use_dora) is not served: its magnitude vectors rescale the base weights`, mergeFix);
  if (c.bias && c.bias !== 'none') throw badInput(`${file}: bias "${c.bias}" trains the base model's biases, which Qwen3's projections do not have`, mergeFix);
  if (c.lora_bias) throw badInput(`${file}: lora_bias adds a bias to lora_B, which is not served`, mergeFix);
  if (c.modules_to_save && c.modules_to_save.length > 0)
    throw badInput(`${file}: modules_to_save (${c.modules_to_save.join(', ')}) replaces whole base modules, which is not served`, mergeFix);
  if (c.fan_in_fan_out) throw badInput(`${file}: fan_in_fan_out is for GPT-2-style Conv1D layers, not Qwen3's linears`, 'train the adapter on a Qwen3 model');
  if (c.layer_replication != null) throw badInput(`${file}: layer_replication changes the model's layers, which is not served`, mergeFix);
  return c;
}

type FloatDtype = 'BF16' | 'F16' | 'F32';

export interface ReadLoraOptions {
  /** vLLM's max_lora_rank: adapters of a higher rank are refused. */
  maxRank?: number;
}

/** An adapter folder checked against a model's shape, its tensors not read yet. */
export interface LoraPlan {
  path: string;
  rank: number;
  targets: LoraTargetName[];
  deltas: { layer: number; target: number; rank: number; scale: number; a: TensorInfo & { dtype: FloatDtype }; b: TensorInfo & { dtype: FloatDtype } }[];
}

/** One delta as createLoraAdapterAsync takes it: the tensors' bytes as the file stores them. */
export interface LoraRawDelta {
  layer: number;
  target: number;
  rank: number;
  scale: number;
  a: Uint8Array;
  aDtype: FloatDtype;
  b: Uint8Array;
  bDtype: FloatDtype;
}

function floatTensor(t: TensorInfo): TensorInfo & { dtype: FloatDtype } {
  if (t.dtype !== 'BF16' && t.dtype !== 'F16' && t.dtype !== 'F32')
    throw badInput(`${t.file}: ${t.name} is ${t.dtype}; LoRA weights must be BF16, F16 or F32`, 'save the adapter in a float dtype');
  return t as TensorInfo & { dtype: FloatDtype };
}

/** Reads and checks a PEFT LoRA adapter folder for a model of `shape`: its deltas in fp32. */
export function readLoraAdapter(dir: string, shape: LoraShape, opts: ReadLoraOptions = {}): LoraAdapterData {
  const plan = planLoraAdapter(dir, shape, opts);
  const deltas = plan.deltas.map((d) => ({ ...d, a: decodeFloats(readTensorBytes(d.a), d.a.dtype), b: decodeFloats(readTensorBytes(d.b), d.b.dtype) }));
  return { path: plan.path, rank: plan.rank, targets: plan.targets, deltas };
}

/** The plan's tensors read without blocking the event loop, as stored (the runtime decodes them). */
export async function readLoraRawDeltas(plan: LoraPlan): Promise<LoraRawDelta[]> {
  const files = new Map<string, FileHandle>();
  try {
    const bytesOf = async (t: TensorInfo): Promise<Uint8Array> => {
      let fh = files.get(t.file);
      if (!fh) files.set(t.file, (fh = await open(t.file, 'r')));
      return readTensorBytesAsync(t, fh);
    };
    const out: LoraRawDelta[] = [];
    for (const d of plan.deltas)
      out.push({ layer: d.layer, target: d.target, rank: d.rank, scale: d.scale, a: await bytesOf(d.a), aDtype: d.a.dtype, b: await bytesOf(d.b), bDtype: d.b.dtype });
    return out;
  } finally {
    for (const fh of files.values()) await fh.close();
  }
}

/** Checks a PEFT LoRA adapter folder for a model of `shape` and lists its deltas' tensors. */
export function planLoraAdapter(dir: string, shape: LoraShape, opts: ReadLoraOptions = {}): LoraPlan {
  const path = resolve(dir);
  if (!existsSync(path) || !statSync(path).isDirectory())
    throw notFound(`LoRA adapter folder ${path} does not exist`, 'give the folder a PEFT adapter was saved to (save_pretrained)');
  const config = readConfig(path);
  const weightsFile = join(path, 'adapter_model.safetensors');
  if (!existsSync(weightsFile)) {
    const hint = existsSync(join(path, 'adapter_model.bin'))
      ? 'it has adapter_model.bin (a pickle, which is never loaded): save it again with safe_serialization=True, or convert it with safetensors.torch.save_file'
      : 'save the adapter with PEFT\'s save_pretrained';
    throw notFound(`${path} has no adapter_model.safetensors`, hint);
  }
  const { tensors } = readSafetensorsHeader(weightsFile);
  const pairs = new Map<string, { layer: number; target: number; module: string; a?: TensorInfo; b?: TensorInfo }>();
  for (const t of tensors) {
    const m = tensorKey.exec(t.name);
    const target = m ? loraTargets.indexOf(m[3] as LoraTargetName) : -1;
    if (!m || target < 0 || !t.name.includes(loraModuleName(Number(m[1]), loraTargets[target]!)))
      throw badInput(
        `${weightsFile}: tensor ${t.name} is not a LoRA weight of a Qwen3 projection (${loraTargets.join(', ')})`,
        `adapters of embeddings, the LM head or other modules are not served; ${mergeFix}`,
      );
    const layer = Number(m[1]);
    if (layer >= shape.numLayers) throw badInput(`${weightsFile}: ${t.name} is for layer ${layer}, but the model has ${shape.numLayers} layers`, 'serve the adapter with the base model it was trained on');
    const key = `${layer}.${target}`;
    const entry = pairs.get(key) ?? { layer, target, module: loraModuleName(layer, loraTargets[target]!) };
    entry[m[4] === 'A' ? 'a' : 'b'] = t;
    pairs.set(key, entry);
  }
  if (pairs.size === 0) throw badInput(`${weightsFile} holds no LoRA weights`, 'save the adapter again with PEFT');
  const deltas: LoraPlan['deltas'] = [];
  let maxRank = 0;
  const adapted = new Set<number>();
  for (const p of [...pairs.values()].sort((x, y) => x.layer - y.layer || x.target - y.target)) {
    if (!p.a || !p.b) throw badInput(`${weightsFile}: ${p.module} has lora_${p.a ? 'A' : 'B'} but not lora_${p.a ? 'B' : 'A'}`, 'the adapter file is incomplete; save it again');
    const targetName = loraTargets[p.target]!;
    const [inDim, outDim] = projectionDims(shape, targetName);
    const rank = p.a.shape[0]!;
    if (p.a.shape.length !== 2 || p.a.shape[1] !== inDim || p.b.shape.length !== 2 || p.b.shape[0] !== outDim || p.b.shape[1] !== rank)
      throw badInput(
        `${weightsFile}: ${p.module} has lora_A [${p.a.shape.join(', ')}] and lora_B [${p.b.shape.join(', ')}]; this model needs [r, ${inDim}] and [${outDim}, r]`,
        'serve the adapter with the base model it was trained on',
      );
    const rankKey = config.rank_pattern ? patternKey(config.rank_pattern, p.module) : undefined;
    const expectedRank = rankKey !== undefined ? config.rank_pattern![rankKey]! : config.r;
    if (rank !== expectedRank)
      throw badInput(`${weightsFile}: ${p.module} has rank ${rank} but adapter_config.json gives it ${expectedRank}`, 'the adapter folder mixes two adapters; save it again');
    if (opts.maxRank !== undefined && rank > opts.maxRank)
      throw badInput(`the LoRA adapter ${path} has rank ${rank}, above max_lora_rank ${opts.maxRank}`, `raise max_lora_rank to ${rank} or more`);
    const alphaKey = config.alpha_pattern ? patternKey(config.alpha_pattern, p.module) : undefined;
    const alpha = alphaKey !== undefined ? config.alpha_pattern![alphaKey]! : config.lora_alpha;
    // PEFT's scaling: alpha / r, or alpha / sqrt(r) with rank-stabilized LoRA.
    const scale = config.use_rslora ? alpha / Math.sqrt(rank) : alpha / rank;
    deltas.push({ layer: p.layer, target: p.target, rank, scale, a: floatTensor(p.a), b: floatTensor(p.b) });
    maxRank = Math.max(maxRank, rank);
    adapted.add(p.target);
  }
  return { path, rank: maxRank, targets: loraTargets.filter((_, i) => adapted.has(i)), deltas };
}

/** The checkpoint module a target of a layer is (model.layers.N.self_attn.q_proj, ...mlp.down_proj). */
export function loraModuleName(layer: number, target: LoraTargetName): string {
  return `model.layers.${layer}.${mlpTargets.has(target) ? 'mlp' : 'self_attn'}.${target}`;
}

/** [in_features, out_features] of a target's projection. */
export function projectionDims(s: LoraShape, t: LoraTargetName): [number, number] {
  switch (t) {
    case 'q_proj': return [s.hidden, s.qDim];
    case 'k_proj':
    case 'v_proj': return [s.hidden, s.kvDim];
    case 'o_proj': return [s.qDim, s.hidden];
    case 'gate_proj':
    case 'up_proj': return [s.hidden, s.intermediate];
    case 'down_proj': return [s.intermediate, s.hidden];
  }
}
