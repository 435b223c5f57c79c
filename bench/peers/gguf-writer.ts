// A GGUF v3 file writer (llama.cpp's model format), enough to hand llama.cpp the same weights
// our runtime benchmarks: typed metadata, tensor descriptions, then the tensor data, each tensor
// aligned to 32 bytes. Tensor data is streamed to the file one tensor at a time, so a 1.2 GB
// model never sits in the JS heap whole.
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';

/** ggml tensor types this writer emits (ggml.h's enum ggml_type). */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeId = (typeof GgmlType)[keyof typeof GgmlType];

/** Bytes of one block and values per block, per type (ggml's type traits). */
const blockLayout: Record<GgmlTypeId, { values: number; bytes: number }> = {
  0: { values: 1, bytes: 4 },
  1: { values: 1, bytes: 2 },
  2: { values: 32, bytes: 18 },
  8: { values: 32, bytes: 34 },
  30: { values: 1, bytes: 2 },
};

export function tensorBytes(type: GgmlTypeId, values: number): number {
  const { values: per, bytes } = blockLayout[type];
  if (values % per) throw new Error(`a ggml type ${type} tensor needs a multiple of ${per} values, got ${values}`);
  return (values / per) * bytes;
}

/** A metadata value with its GGUF type. */
export type GgufValue =
  | { u32: number }
  | { i32: number }
  | { f32: number }
  | { bool: boolean }
  | { str: string }
  | { strs: string[] }
  | { i32s: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** ggml order: ne[0] is the innermost (row length), so an [out, in] matrix is [in, out]. */
  dims: number[];
  type: GgmlTypeId;
  /** The tensor's bytes in `type`'s layout, made when the data section reaches this tensor. */
  data: () => Uint8Array;
}

const ALIGNMENT = 32;
const enum ValueType { U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9 }

/** Little-endian bytes, grown as written. */
class ByteSink {
  private buf = Buffer.alloc(1 << 20);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32LE(v, this.length); this.length += 4; }
  u64(v: number): void { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  f32(v: number): void { this.room(4); this.buf.writeFloatLE(v, this.length); this.length += 4; }
  u8(v: number): void { this.room(1); this.buf[this.length++] = v; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  bytes(): Buffer { return this.buf.subarray(0, this.length); }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  if ('u32' in v) { out.u32(ValueType.U32); out.u32(v.u32); }
  else if ('i32' in v) { out.u32(ValueType.I32); out.i32(v.i32); }
  else if ('f32' in v) { out.u32(ValueType.F32); out.f32(v.f32); }
  else if ('bool' in v) { out.u32(ValueType.BOOL); out.u8(v.bool ? 1 : 0); }
  else if ('str' in v) { out.u32(ValueType.STRING); out.str(v.str); }
  else if ('strs' in v) {
    out.u32(ValueType.ARRAY); out.u32(ValueType.STRING); out.u64(v.strs.length);
    for (const s of v.strs) out.str(s);
  } else {
    out.u32(ValueType.ARRAY); out.u32(ValueType.I32); out.u64(v.i32s.length);
    for (let i = 0; i < v.i32s.length; i++) out.i32(v.i32s[i]!);
  }
}

const padTo = (n: number) => (ALIGNMENT - (n % ALIGNMENT)) % ALIGNMENT;

/**
 * Writes `file` (through a temporary name, renamed at the end: an interrupted write leaves no
 * file llama.cpp would half-read). Returns the bytes of tensor data written.
 */
export function writeGguf(file: string, metadata: Record<string, GgufValue>, tensors: GgufTensor[]): number {
  const head = new ByteSink();
  head.u32(0x46554747); // "GGUF"
  head.u32(3);
  head.u64(tensors.length);
  head.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    head.str(key);
    writeValue(head, value);
  }
  let offset = 0;
  for (const t of tensors) {
    head.str(t.name);
    head.u32(t.dims.length);
    for (const d of t.dims) head.u64(d);
    head.u32(t.type);
    head.u64(offset);
    offset += tensorBytes(t.type, t.dims.reduce((a, b) => a * b, 1));
    offset += padTo(offset);
  }
  const tmp = `${file}.partial`;
  let fd: number | undefined = openSync(tmp, 'w');
  try {
    const h = head.bytes();
    writeSync(fd, h);
    writeSync(fd, Buffer.alloc(padTo(h.length)));
    let written = 0;
    for (const t of tensors) {
      const data = t.data();
      const expected = tensorBytes(t.type, t.dims.reduce((a, b) => a * b, 1));
      if (data.length !== expected) throw new Error(`${t.name}: ${data.length} bytes made, ${expected} expected`);
      writeSync(fd, data);
      written += data.length;
      const pad = padTo(written);
      if (pad) writeSync(fd, Buffer.alloc(pad));
      written += pad;
    }
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
    return written;
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}
