// When a build's accuracy report meets NaN or Inf logits, this says why: a checkpoint tensor that
// holds non-finite values (a damaged download or a broken conversion), or else the engine's own
// arithmetic. The scan reads every float tensor, so it runs only after such logits were seen.
import { closeSync, openSync, readSync } from 'node:fs';
import { openCheckpoint } from '../../model/checkpoint.js';
import type { TensorInfo } from '../../model/safetensors.js';
import { badInput, failed } from '../../util/errors.js';

/** Bytes read at a time: a multiple of every float width, small enough for any machine. */
const CHUNK = 64 * 1024 * 1024;

/** Whether a float tensor holds a value whose exponent bits are all ones (NaN or Inf). */
export function tensorHasNonFinite(t: TensorInfo): boolean {
  const width = t.dtype === 'F32' ? 4 : t.dtype === 'BF16' || t.dtype === 'F16' ? 2 : 0;
  if (width === 0) return false; // integer and fp8 tensors: no Inf, and fp8 NaN is not produced by checkpoints we read
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, t.nbytes));
  const fd = openSync(t.file, 'r');
  try {
    for (let done = 0; done < t.nbytes; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, t.nbytes - done), t.offset + done);
      if (n === 0) return false; // truncated: the loader reports that on its own
      const words = n / width;
      if (width === 4) {
        const v = new Uint32Array(buf.buffer, buf.byteOffset, words);
        for (let i = 0; i < words; i++) if ((v[i] & 0x7f800000) === 0x7f800000) return true;
      } else {
        const mask = t.dtype === 'BF16' ? 0x7f80 : 0x7c00;
        const v = new Uint16Array(buf.buffer, buf.byteOffset, words);
        for (let i = 0; i < words; i++) if ((v[i] & mask) === mask) return true;
      }
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return false;
}

/** The first tensor (in file order) of the checkpoint at `dir` holding NaN or Inf, if any. */
export function firstNonFiniteTensor(dir: string): TensorInfo | undefined {
  const ck = openCheckpoint(dir, { allowQuantized: true });
  const ordered = [...ck.tensors.values()].sort((a, b) => a.file.localeCompare(b.file) || a.offset - b.offset);
  return ordered.find(tensorHasNonFinite);
}

/**
 * The error for non-finite logits in the accuracy report: on the reference side, the tensor to
 * blame when there is one (bad input, exit 2); on the engine's side only, the quantization.
 */
export function explainNonFiniteLogits(side: 'reference' | 'engine', referenceDir: string, qformat: string): Error {
  if (side === 'reference') {
    const t = firstNonFiniteTensor(referenceDir);
    if (t) {
      return badInput(
        `${t.file}: tensor ${t.name} holds NaN or Inf values, so the model's own logits are not finite`,
        'the checkpoint is damaged: download or convert it again (nothing was written)',
      );
    }
    return failed(
      `the reference model ${referenceDir} gives NaN or Inf logits on the held-out text, though its weights are all finite`,
      'its activations overflow: check the checkpoint with transformers, whose logits are likely not finite either',
    );
  }
  return failed(
    `the built engine gives NaN or Inf logits where the reference ${referenceDir} does not: the ${qformat} weights overflowed`,
    'build with another --qformat, and report it with the checkpoint\'s name',
  );
}
