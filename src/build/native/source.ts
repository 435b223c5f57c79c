// The checkpoint a native build reads: an unquantized Qwen3 (bf16 / fp16 / fp32 tensors), an
// AutoAWQ one (int4 qweight / qzeros / scales per linear) or a block-scaled FP8 one (e4m3 weight and
// weight_scale_inv per linear, read dequantized: fp8-source.ts). Tensor data is read on demand, one
// tensor at a time, so a build never holds more than a layer in memory.
import { copyFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { expectedShapes, openCheckpoint, type Checkpoint } from '../../model/checkpoint.js';
import type { TensorInfo } from '../../model/safetensors.js';
import { readTensorBytes } from '../../model/tensor-data.js';
import { awqToInt4, type AwqTensors } from '../../quant/autoawq.js';
import { checkFp8Tensors, dequantizeTensor, fp8BlockConfig, scaleOf, type Fp8BlockSource } from './fp8-source.js';
import type { Int4Weights } from '../../quant/int4.js';
import { decodeFloats } from '../../quant/numeric.js';
import { linearNames } from '../../quant/smoothing.js';
import type { Matrix } from '../../quant/types.js';
import { badInput } from '../../util/errors.js';
import { mergeDelta, readMergedLora, type MergedLora } from './lora-merge.js';
import { repoIdOfSnapshot } from '../../hub/hub-cache.js';

/** Files a tokenizer may need, copied into the engine when the checkpoint has them. */
export const tokenizerFileNames = [
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'special_tokens_map.json',
  'added_tokens.json',
  'chat_template.jinja',
  'generation_config.json',
];

export interface AwqSource {
  group: number;
  /** Linears stored as AutoAWQ int4 (others stay float: modules_to_not_convert). */
  quantized: Set<string>;
}

export interface SourceModel {
  checkpoint: Checkpoint;
  awq?: AwqSource;
  /** A block-scaled FP8 checkpoint: its e4m3 weights read as floats (readFloat dequantizes them). */
  fp8?: Fp8BlockSource;
  tokenizerFiles: string[];
  /** bf16 bytes -> fp32 (default decodeFloats; a build gives the runtime's native twin). */
  decodeBf16?: (bytes: Uint8Array) => Float32Array;
  /** --merge_lora: an adapter merged into the weights as they are read (readFloat). */
  lora?: MergedLora;
}

/** Whether a tensor's bytes can be copied as they are into `dtype` (not converted, dequantized or merged). */
export function copiedAsIs(src: SourceModel, name: string, dtype: string): boolean {
  return src.checkpoint.tensors.get(name)!.dtype === dtype && !src.lora?.deltas.has(name);
}

export function openSource(dir: string, mergeLora?: string): SourceModel {
  const src = openCheckpointSource(dir);
  if (mergeLora === undefined) return src;
  if (src.awq)
    throw badInput(
      `--merge_lora: ${src.checkpoint.dir} is an AWQ checkpoint, whose int4 weights cannot take an adapter's update`,
      'build from the unquantized checkpoint with --merge_lora (and --qformat int4_awq to quantize the merged model)',
    );
  return { ...src, lora: readMergedLora(mergeLora, src.checkpoint) };
}

function openCheckpointSource(dir: string): SourceModel {
  if (!existsSync(dir)) {
    throw badInput(`--model_dir ${dir} does not exist`, 'pass the folder of a Hugging Face Qwen3 checkpoint (config.json, *.safetensors, tokenizer.json)');
  }
  // An engine folder given for its checkpoint (to build it again in another format) would only be
  // told that config.json is missing.
  if (existsSync(join(dir, 'engine.json')) && !existsSync(join(dir, 'config.json'))) {
    throw badInput(`--model_dir ${dir} is an engine folder (engine.json), not a Hugging Face checkpoint`, 'pass the checkpoint folder it was built from (config.json, *.safetensors, tokenizer.json): every format is built from the checkpoint');
  }
  const probe = openCheckpoint(dir, { allowQuantized: true });
  const qc = probe.hf.quantization_config as Record<string, unknown> | undefined;
  const tokenizerFiles = tokenizerFileNames.filter((f) => existsSync(join(probe.dir, f)));
  if (!tokenizerFiles.includes('tokenizer.json')) {
    throw badInput(`${probe.dir} has no tokenizer.json`, 'copy the tokenizer files of the model (tokenizer.json, tokenizer_config.json) into the checkpoint folder');
  }
  if (!qc) return { checkpoint: openCheckpoint(dir), tokenizerFiles };
  const method = String(qc.quant_method ?? '');
  if (method === 'fp8') {
    const block = fp8BlockConfig(probe.dir, qc);
    return { checkpoint: probe, fp8: { block, quantized: checkFp8Tensors(probe, block) }, tokenizerFiles };
  }
  if (method !== 'awq') {
    throw badInput(
      `${probe.dir}/config.json: quantization_config.quant_method "${method}" is not supported`,
      'grpst reads unquantized checkpoints, AutoAWQ ("awq", version "gemm") ones and block-scaled FP8 ("fp8", e4m3) ones; start from the unquantized model',
    );
  }
  const bits = Number(qc.bits ?? qc.w_bit ?? 4);
  const group = Number(qc.group_size ?? qc.q_group_size ?? 128);
  const version = String(qc.version ?? 'gemm').toLowerCase();
  if (bits !== 4) throw badInput(`${probe.dir}: AWQ with ${bits} bits is not supported (4 bits only)`);
  if (version !== 'gemm') throw badInput(`${probe.dir}: AWQ version "${version}" is not supported`, 'use an AutoAWQ checkpoint saved with version "gemm" (the common one)');
  return { checkpoint: probe, awq: { group, quantized: checkAwqShapes(probe, group) }, tokenizerFiles };
}

/** Checks an AWQ checkpoint's tensors; returns the linears that are int4. */
function checkAwqShapes(ck: Checkpoint, group: number): Set<string> {
  const quantized = new Set<string>();
  const need = (name: string, dtype: string, shape: number[]) => {
    const t = ck.tensors.get(name);
    if (!t) throw badInput(`${ck.dir}: tensor ${name} is missing`, 'the AWQ checkpoint is incomplete');
    if (t.dtype !== dtype || t.shape.join(',') !== shape.join(',')) {
      throw badInput(`${t.file}: tensor ${name} is ${t.dtype} [${t.shape}], expected ${dtype} [${shape}] (AutoAWQ GEMM, group ${group})`);
    }
  };
  for (const [name, shape] of expectedShapes(ck.model)) {
    const prefix = name.replace(/\.weight$/, '');
    if (isProjection(prefix) && ck.tensors.has(`${prefix}.qweight`)) {
      const [out, inF] = shape;
      if (inF % group !== 0 || out % 8 !== 0) throw badInput(`${ck.dir}: ${prefix} [${out}, ${inF}] does not fit AWQ group ${group}`);
      need(`${prefix}.qweight`, 'I32', [inF, out / 8]);
      need(`${prefix}.qzeros`, 'I32', [inF / group, out / 8]);
      need(`${prefix}.scales`, 'F16', [inF / group, out]);
      quantized.add(prefix);
      continue;
    }
    const t = ck.tensors.get(name);
    if (!t) throw badInput(`${ck.dir}: tensor ${name} is missing`, 'the checkpoint is incomplete, or its config.json does not describe its tensors');
    if (t.shape.join(',') !== shape.join(',')) throw badInput(`${t.file}: tensor ${name} has shape [${t.shape}] but config.json implies [${shape}]`);
  }
  return quantized;
}

/**
 * A decoder layer's projection (attention, dense MLP, or a Qwen3-MoE expert's), which AutoAWQ may
 * store as int4; a MoE router (mlp.gate) is not one of them and stays float.
 */
function isProjection(prefix: string): boolean {
  return linearNames.some((l) => prefix.endsWith(l)) || /\.mlp\.experts\.\d+\.(gate|up|down)_proj$/.test(prefix);
}

/** A tensor's bytes as the checkpoint stores them. */
export const readBytes = readTensorBytes;

function tensor(src: SourceModel, name: string): TensorInfo {
  const t = src.checkpoint.tensors.get(name);
  if (!t) throw badInput(`${src.checkpoint.dir}: tensor ${name} is missing`);
  return t;
}

/** A float tensor as fp32 values (bf16 / fp16 / fp32 in the checkpoint, or e4m3 with block scales, dequantized). */
export function readFloat(src: SourceModel, name: string): Float32Array {
  const t = tensor(src, name);
  const delta = src.lora?.deltas.get(name);
  const merged = (values: Float32Array) => (delta ? mergeDelta(values, delta) : values);
  if (src.fp8?.quantized.has(name)) {
    const scale = tensor(src, scaleOf(name));
    return merged(dequantizeTensor(t, readBytes(t), scale, readBytes(scale), src.fp8.block));
  }
  if (t.dtype !== 'BF16' && t.dtype !== 'F16' && t.dtype !== 'F32') throw badInput(`${t.file}: tensor ${name} is ${t.dtype}, expected a float type`);
  return merged(t.dtype === 'BF16' && src.decodeBf16 ? src.decodeBf16(readBytes(t)) : decodeFloats(readBytes(t), t.dtype));
}

export function readMatrix(src: SourceModel, name: string): Matrix {
  const t = tensor(src, name);
  return { data: readFloat(src, name), rows: t.shape[0], cols: t.shape.slice(1).reduce((a, b) => a * b, 1) };
}

/** An AutoAWQ linear in the engine's int4 layout. */
export function readAwqLinear(src: SourceModel, prefix: string): Int4Weights {
  const qweight = tensor(src, `${prefix}.qweight`);
  const scales = tensor(src, `${prefix}.scales`);
  const i32 = (t: TensorInfo) => {
    const b = readBytes(t);
    return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  const t: AwqTensors = {
    qweight: i32(qweight),
    qzeros: i32(tensor(src, `${prefix}.qzeros`)),
    scales: decodeFloats(readBytes(scales), 'F16'),
    inFeatures: qweight.shape[0],
    outFeatures: scales.shape[1],
    group: src.awq!.group,
  };
  return awqToInt4(t);
}

export function copyTokenizerFiles(src: SourceModel, dest: (name: string) => string): string[] {
  for (const f of src.tokenizerFiles) copyFileSync(join(src.checkpoint.dir, f), dest(f));
  return src.tokenizerFiles;
}

/** The checkpoint's folder name, or its Hub id when it is a snapshot in the Hugging Face cache. */
export function sourceName(src: SourceModel): string {
  return repoIdOfSnapshot(src.checkpoint.dir) ?? basename(src.checkpoint.dir);
}
