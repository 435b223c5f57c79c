// A block-scaled FP8 checkpoint has no float model on disk, nor has a checkpoint with a LoRA adapter
// merged (--merge_lora), yet calibration and the accuracy report run the float model in the runtime,
// which maps a checkpoint's tensors where they lie. This writes that model: the checkpoint
// dequantized (and merged) into the build's dtype, as a plain safetensors checkpoint
// inside the staging folder (one file per layer, so only one layer is held at a time). The build
// removes it before the engine is committed; it costs a second float copy of the model on disk
// while the build runs (Qwen3-8B: 16 GB in bf16).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectedShapes } from '../../model/checkpoint.js';
import { writeSafetensors, type TensorToWrite } from '../../model/safetensors.js';
import { encodeFloats } from '../../quant/numeric.js';
import type { Dtype } from '../options.js';
import type { Reporter } from '../progress.js';
import type { Staging } from '../staging.js';
import { copiedAsIs, readBytes, readFloat, type SourceModel } from './source.js';

/** The folder inside the staging folder that holds it. */
export const DEQUANTIZED_DIR = '.dequantized';

const safetensorsDtype = { bfloat16: 'BF16', float16: 'F16', float32: 'F32' } as const;

/** Writes the dequantized checkpoint under the staging folder; returns its folder. */
export async function writeDequantizedCheckpoint(src: SourceModel, dtype: Dtype, staging: Staging, reporter: Reporter, signal?: AbortSignal): Promise<string> {
  const dir = staging.path(DEQUANTIZED_DIR);
  mkdirSync(dir);
  const dt = safetensorsDtype[dtype];
  const ck = src.checkpoint;
  // Tensors grouped as the runtime reads them: embeddings, one group per layer, then the rest.
  const groups: string[][] = [[], ...Array.from({ length: ck.model.numLayers }, () => []), []];
  for (const name of expectedShapes(ck.model).keys()) {
    const layer = /^model\.layers\.(\d+)\./.exec(name);
    groups[layer ? Number(layer[1]) + 1 : name === 'model.embed_tokens.weight' ? 0 : groups.length - 1].push(name);
  }
  const tensor = (name: string): TensorToWrite => {
    const t = ck.tensors.get(name)!;
    // A float tensor already in the build's dtype is copied as it is; the rest is converted.
    if (copiedAsIs(src, name, dt)) return { name, dtype: dt, shape: t.shape, data: readBytes(t) };
    return { name, dtype: dt, shape: t.shape, data: encodeFloats(readFloat(src, name), dt) };
  };
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [k, names] of groups.entries()) {
    await new Promise((r) => setImmediate(r)); // signals and the spinner run between files
    signal?.throwIfAborted();
    reporter.progress(k / groups.length, k === 0 ? 'embeddings' : k <= ck.model.numLayers ? `layer ${k}/${ck.model.numLayers}` : 'final norm and lm_head');
    const file = `model-${String(k + 1).padStart(5, '0')}-of-${String(groups.length).padStart(5, '0')}.safetensors`;
    const tensors = names.map(tensor);
    const bytes = tensors.reduce((a, t) => a + t.data.byteLength, 0);
    staging.account(bytes);
    writeSafetensors(join(dir, file), tensors);
    for (const n of names) weightMap[n] = file;
    total += bytes;
  }
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  const { quantization_config: _dropped, ...config } = ck.hf as Record<string, unknown>;
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, torch_dtype: dtype }, null, 2));
  return dir;
}
