// A Hugging Face checkpoint's tensors as the runtime's tensor table (byte ranges of the mapped
// safetensors files): what loadEngine hands the runtime for the model, and speculative.ts for a
// draft model.
import type { Checkpoint } from '../model/checkpoint.js';
import type { NativeTensorEntry } from './native.js';

export function checkpointTensorTable(ckpt: Checkpoint): NativeTensorEntry[] {
  return [...ckpt.tensors.values()].map((t) => ({ name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
}
