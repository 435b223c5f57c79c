// Appends tensors to a rank's weight file at 64-byte aligned offsets (a cache line, the widest
// SIMD load) and keeps the table engine.json records. The runtime maps the file and reads each
// tensor in place at its offset.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { ManifestTensor } from '../manifest.js';
import type { Staging } from '../staging.js';
import type { PackedTensor } from '../../quant/types.js';
import { dtypeBytes } from '../../model/safetensors.js';

export const TENSOR_ALIGNMENT = 64;

export class WeightFileWriter {
  readonly tensors: Record<string, ManifestTensor> = {};
  private fd: number;
  private offset = 0;
  private readonly hash: Hash = createHash('sha256');
  private closed = false;

  constructor(private readonly staging: Staging, readonly file: string) {
    this.fd = openSync(staging.path(file), 'w');
  }

  add(t: PackedTensor): void {
    if (this.tensors[t.name]) throw new Error(`tensor ${t.name} written twice`);
    const expected = t.shape.reduce((a, b) => a * b, 1) * dtypeBytes[t.dtype];
    if (t.data.byteLength !== expected) throw new Error(`tensor ${t.name}: ${t.data.byteLength} bytes for shape [${t.shape}] ${t.dtype} (${expected} expected)`);
    const pad = (TENSOR_ALIGNMENT - (this.offset % TENSOR_ALIGNMENT)) % TENSOR_ALIGNMENT;
    if (pad) this.write(new Uint8Array(pad));
    this.tensors[t.name] = { dtype: t.dtype as ManifestTensor['dtype'], shape: t.shape, offset: this.offset, nbytes: t.data.byteLength };
    this.write(t.data);
  }

  private write(data: Uint8Array): void {
    this.staging.account(data.byteLength);
    let done = 0;
    while (done < data.byteLength) done += writeSync(this.fd, data, done, data.byteLength - done);
    this.hash.update(data);
    this.offset += data.byteLength;
  }

  /** Closes the file; returns its size and sha256. */
  close(): { bytes: number; sha256: string } {
    if (!this.closed) {
      closeSync(this.fd);
      this.closed = true;
    }
    return { bytes: this.offset, sha256: this.hash.digest('hex') };
  }

  /** Closes without a result (after a failure). */
  discard(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
