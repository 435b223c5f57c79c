// One tensor's bytes read from its safetensors file, for the few readers that need values in the
// JS heap (an engine build, one tensor at a time; LoRA adapters); the runtime maps weights itself.
import { closeSync, openSync, readSync } from 'node:fs';
import { badInput } from '../util/errors.js';
import type { TensorInfo } from './safetensors.js';

export function readTensorBytes(t: TensorInfo): Uint8Array {
  const buf = Buffer.allocUnsafe(t.nbytes);
  const fd = openSync(t.file, 'r');
  try {
    let done = 0;
    while (done < t.nbytes) {
      const n = readSync(fd, buf, done, t.nbytes - done, t.offset + done);
      if (n === 0) throw badInput(`${t.file} ended inside tensor ${t.name}`, 'the file is truncated; copy it again');
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
