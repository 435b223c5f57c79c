// Pre-quantized FP8 checkpoints with block scales (quantization_config.quant_method "fp8" with a
// weight_block_size, as Qwen/Qwen3-*-FP8 and DeepSeek-V3 ship them; the layout is in
// src/quant/fp8-block.ts). A build reads every e4m3 weight dequantized to fp32, one tensor at a
// time, and then treats the model like an unquantized one: any --qformat applies.
import type { Checkpoint } from '../../model/checkpoint.js';
import { expectedShapes } from '../../model/checkpoint.js';
import type { TensorInfo } from '../../model/safetensors.js';
import { dequantizeFp8Block, NonFiniteFp8, scaleGridShape, type BlockSize } from '../../quant/fp8-block.js';
import { decodeFloats } from '../../quant/numeric.js';
import { badInput } from '../../util/errors.js';

export interface Fp8BlockSource {
  /** weight_block_size: [rows, cols] of the weight one scale covers. */
  block: BlockSize;
  /** Tensors stored as e4m3 with a weight_scale_inv grid; every other tensor is float. */
  quantized: Set<string>;
}

const floatTypes = new Set(['BF16', 'F16', 'F32']);

/** Reads and checks quantization_config of an "fp8" checkpoint; returns its block size. */
export function fp8BlockConfig(dir: string, qc: Record<string, unknown>): BlockSize {
  const where = `${dir}/config.json: quantization_config`;
  const fmt = qc.fmt === undefined ? 'e4m3' : String(qc.fmt);
  if (fmt !== 'e4m3') {
    throw badInput(`${where}.fmt "${fmt}" is not supported (e4m3 only)`, 'use an e4m3 FP8 checkpoint (Qwen/Qwen3-*-FP8 are), or start from the unquantized model');
  }
  const scheme = qc.activation_scheme === undefined ? 'dynamic' : String(qc.activation_scheme);
  if (scheme !== 'dynamic') {
    throw badInput(
      `${where}.activation_scheme "${scheme}" is not supported: grpst reads block-scaled FP8 weights with dynamic activation scaling, and static input scales would be dropped`,
      'use a checkpoint with "activation_scheme": "dynamic" (Qwen/Qwen3-*-FP8 are), or start from the unquantized model',
    );
  }
  const bs = qc.weight_block_size;
  if (bs === undefined || bs === null) {
    throw badInput(
      `${where} has no weight_block_size: per-tensor FP8 checkpoints are not supported`,
      'use a block-scaled FP8 checkpoint ("weight_block_size": [128, 128], as Qwen/Qwen3-*-FP8), or start from the unquantized model',
    );
  }
  if (!Array.isArray(bs) || bs.length !== 2 || !bs.every((v) => Number.isInteger(v) && v > 0)) {
    throw badInput(`${where}.weight_block_size is ${JSON.stringify(bs)}; it must be two positive integers [rows, cols]`, 'fix config.json (Qwen/Qwen3-*-FP8 use [128, 128])');
  }
  return [bs[0], bs[1]];
}

/**
 * Checks every tensor the model needs: float ones as in an unquantized checkpoint, e4m3 ones with a
 * float weight_scale_inv of the grid shape. Returns the e4m3 tensors.
 */
export function checkFp8Tensors(ck: Checkpoint, block: BlockSize): Set<string> {
  const quantized = new Set<string>();
  const fix = 'the FP8 checkpoint is incomplete or damaged: download it again';
  for (const [name, shape] of expectedShapes(ck.model)) {
    const t = ck.tensors.get(name);
    if (!t) throw badInput(`${ck.dir}: tensor ${name} is missing`, 'the checkpoint is incomplete, or its config.json does not describe its tensors');
    if (t.shape.join(',') !== shape.join(',')) throw badInput(`${t.file}: tensor ${name} has shape [${t.shape}] but config.json implies [${shape}]`);
    const scaleName = scaleOf(name);
    const scale = ck.tensors.get(scaleName);
    if (floatTypes.has(t.dtype)) {
      if (scale) throw badInput(`${scale.file}: ${scaleName} scales ${name}, but that tensor is ${t.dtype}, not F8_E4M3`, fix);
      continue;
    }
    if (t.dtype !== 'F8_E4M3' || shape.length !== 2) {
      throw badInput(`${t.file}: tensor ${name} is ${t.dtype}; an FP8 checkpoint stores its linear weights as F8_E4M3 and the rest as bf16, fp16 or fp32`, fix);
    }
    const grid = scaleGridShape(shape[0], shape[1], block);
    if (!scale) throw badInput(`${ck.dir}: ${name} is F8_E4M3 but ${scaleName} is missing`, fix);
    if (!floatTypes.has(scale.dtype) || scale.shape.join(',') !== grid.join(',')) {
      throw badInput(
        `${scale.file}: ${scaleName} is ${scale.dtype} [${scale.shape}], expected a float tensor [${grid}]: one scale per [${block}] block of the [${shape}] weight (weight_block_size [${block}], partial blocks at the edges)`,
        "check quantization_config.weight_block_size in config.json against the checkpoint's scales; if they agree, the checkpoint is damaged: download it again",
      );
    }
    quantized.add(name);
  }
  return quantized;
}

/** The float tensor a quantized weight's scales sit in: x.weight -> x.weight_scale_inv. */
export function scaleOf(weightName: string): string {
  return `${weightName}_scale_inv`;
}

/** An e4m3 weight and its scales (bytes as read) -> fp32 [rows, cols]; NaN codes are refused by position. */
export function dequantizeTensor(weight: TensorInfo, codes: Uint8Array, scale: TensorInfo, scaleBytes: Uint8Array, block: BlockSize): Float32Array {
  try {
    return dequantizeFp8Block({ codes, scaleInv: decodeFloats(scaleBytes, scale.dtype as 'BF16' | 'F16' | 'F32'), rows: weight.shape[0], cols: weight.shape[1], block });
  } catch (e) {
    if (!(e instanceof NonFiniteFp8)) throw e;
    const tensor = e.what === 'code' ? `${weight.name} holds an e4m3 NaN code at [${e.row}, ${e.col}]` : `${scale.name} holds a non-finite scale for the block at [${e.row}, ${e.col}]`;
    throw badInput(`${weight.file}: ${tensor}`, 'the checkpoint is damaged: download or convert it again (nothing was written)');
  }
}
