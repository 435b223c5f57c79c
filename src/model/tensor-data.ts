// One tensor's bytes read from its safetensors file, for the few readers that need values in the
// JS heap (an engine build, one tensor at a time; LoRA adapters); the runtime maps weights itself.
import { closeSync, openSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { badInput } from '../util/errors.js';
import type { TensorInfo } from './safetensors.js';

const truncated = (t: TensorInfo) => badInput(`${t.file} ended inside tensor ${t.name}`, 'the file is truncated; copy it again');

export function readTensorBytes(t: TensorInfo): Uint8Array {
  const buf = Buffer.allocUnsafe(t.nbytes);
  const fd = openSync(t.file, 'r');
  try {
    let done = 0;
    while (done < t.nbytes) {
      const n = readSync(fd, buf, done, t.nbytes - done, t.offset + done);
      if (n === 0) throw truncated(t);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** readTensorBytes without blocking the event loop, through `file`, an open handle of t.file. */
export async function readTensorBytesAsync(t: TensorInfo, file: FileHandle): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafeSlow(t.nbytes);
  let done = 0;
  while (done < t.nbytes) {
    const { bytesRead } = await file.read(buf, done, t.nbytes - done, t.offset + done);
    if (bytesRead === 0) throw truncated(t);
    done += bytesRead;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
