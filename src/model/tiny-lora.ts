// Random PEFT LoRA adapters for the tiny checkpoints (test/fixtures/lora-adapters.json): lora_A
// and lora_B come from tiny-checkpoint.ts's generator, keyed by the adapter's seed and PEFT's own
// key names, so the tests rewrite bit for bit the adapters that scripts/make_lora_fixture.py ran
// through transformers + peft, and check the digest it recorded.
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loraModuleName, loraTargets, patternKey, projectionDims, type LoraShape } from '../engine/lora.js';
import { writeSafetensors } from './safetensors.js';
import { tensorValues, weightsDigest, type InitRule, type TinySpec, type TinyTensor } from './tiny-checkpoint.js';

export interface TinyLoraSpec {
  /** Name of the base checkpoint (adapter_config.json's base_model_name_or_path). */
  base: string;
  seed: number;
  r: number;
  lora_alpha: number;
  use_rslora: boolean;
  /** Module names, matched as PEFT matches a list: the whole name or its last dotted parts. */
  target_modules: string[];
  /** PEFT's per-module overrides of r and lora_alpha, keys matched as regexes on the name's tail. */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  /** lora_A is [r, in_features] and lora_B [out_features, r]: fan-in is the second dimension of each. */
  init: { lora_A: InitRule; lora_B: InitRule };
}

/** One adapted linear: its module name in the base model, its shape and its (pattern-resolved) rank and alpha. */
export interface LoraModule {
  module: string;
  inFeatures: number;
  outFeatures: number;
  r: number;
  alpha: number;
  /** What PEFT multiplies B @ A by: alpha / sqrt(r) with rsLoRA, alpha / r without. */
  scaling: number;
}

/** PEFT's get_pattern_key (the runtime's reader matches the same way): the pattern's value, else `fallback`. */
function patternValue(pattern: Record<string, number>, module: string, fallback: number): number {
  const key = patternKey(pattern, module);
  return key !== undefined ? pattern[key]! : fallback;
}

/** The linears the adapter targets, in the base model's layer order. */
export function loraModules(spec: TinyLoraSpec, base: TinySpec): LoraModule[] {
  const shape: LoraShape = {
    numLayers: base.num_hidden_layers,
    hidden: base.hidden_size,
    intermediate: base.intermediate_size,
    qDim: base.num_attention_heads * base.head_dim,
    kvDim: base.num_key_value_heads * base.head_dim,
  };
  const out: LoraModule[] = [];
  for (let i = 0; i < base.num_hidden_layers; i++) {
    for (const target of loraTargets) {
      const module = loraModuleName(i, target);
      const [inFeatures, outFeatures] = projectionDims(shape, target);
      if (!spec.target_modules.some((t) => module === t || module.endsWith(`.${t}`))) continue;
      const r = patternValue(spec.rank_pattern, module, spec.r);
      const alpha = patternValue(spec.alpha_pattern, module, spec.lora_alpha);
      out.push({ module, inFeatures, outFeatures, r, alpha, scaling: spec.use_rslora ? alpha / Math.sqrt(r) : alpha / r });
    }
  }
  return out;
}

function values(seed: number, name: string, shape: number[], rule: InitRule): TinyTensor {
  const bound = rule.bound_times_sqrt_fan_in !== undefined ? rule.bound_times_sqrt_fan_in / Math.sqrt(shape[1]) : rule.bound!;
  return { name, shape, bf16: tensorValues(seed, name, shape[0] * shape[1], bound, rule.offset) };
}

/** lora_A and lora_B of every targeted module, under the names PEFT saves (PeftModel wraps the causal LM as base_model.model). */
export function loraTensors(spec: TinyLoraSpec, base: TinySpec): TinyTensor[] {
  const out: TinyTensor[] = [];
  for (const m of loraModules(spec, base)) {
    const p = `base_model.model.${m.module}`;
    out.push(values(spec.seed, `${p}.lora_A.weight`, [m.r, m.inFeatures], spec.init.lora_A));
    out.push(values(spec.seed, `${p}.lora_B.weight`, [m.outFeatures, m.r], spec.init.lora_B));
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** adapter_config.json as PEFT's save_pretrained writes it for a plain inference LoRA (keys sorted, as it sorts them). */
export function adapterConfigJson(spec: TinyLoraSpec): Record<string, unknown> {
  return {
    alpha_pattern: spec.alpha_pattern,
    base_model_name_or_path: spec.base,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    lora_alpha: spec.lora_alpha,
    lora_dropout: 0.0,
    modules_to_save: null,
    peft_type: 'LORA',
    r: spec.r,
    rank_pattern: spec.rank_pattern,
    target_modules: spec.target_modules,
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: spec.use_rslora,
  };
}

/** Writes the adapter folder (atomically: a temporary folder renamed at the end); returns the tensors' digest (weightsDigest). */
export function writeTinyLoraAdapter(outDir: string, spec: TinyLoraSpec, baseSpec: TinySpec): string {
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const tensors = loraTensors(spec, baseSpec);
  writeSafetensors(
    join(tmp, 'adapter_model.safetensors'),
    tensors.map((t) => ({ name: t.name, dtype: 'BF16', shape: t.shape, data: new Uint8Array(t.bf16.buffer, t.bf16.byteOffset, t.bf16.byteLength) })),
  );
  writeFileSync(join(tmp, 'adapter_config.json'), JSON.stringify(adapterConfigJson(spec), null, 2));
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return weightsDigest(tensors);
}
