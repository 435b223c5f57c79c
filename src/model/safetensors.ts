// safetensors headers, read and written without touching tensor data: the runtime maps the
// data itself (mmap), so weights never pass through the JS heap.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { badInput, unreadableFile } from '../util/errors.js';

export type SafetensorsDtype = 'BF16' | 'F16' | 'F32' | 'F64' | 'I8' | 'U8' | 'I16' | 'I32' | 'I64' | 'F8_E4M3' | 'BOOL';

export const dtypeBytes: Record<SafetensorsDtype, number> = {
  BF16: 2, F16: 2, F32: 4, F64: 8, I8: 1, U8: 1, I16: 2, I32: 4, I64: 8, F8_E4M3: 1, BOOL: 1,
};

export interface TensorInfo {
  name: string;
  /** Absolute path of the file that holds the data. */
  file: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte offset of the data from the start of the file. */
  offset: number;
  nbytes: number;
}

const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Reads and checks one file's header: every tensor must lie inside the file and match its shape. */
export function readSafetensorsHeader(file: string): { tensors: TensorInfo[]; metadata: Record<string, string> } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw unreadableFile(e, file) ?? badInput(`cannot open ${file}: ${(e as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const problem = (what: string) =>
      badInput(`${file} is not a valid safetensors file: ${what}`, 'the file is corrupt or truncated; download or copy it again');
    if (size < 8) throw problem(`only ${size} bytes long`);
    const lenBuf = Buffer.alloc(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw problem(`header length ${headerLen} does not fit in a ${size}-byte file`);
    }
    const headerBuf = Buffer.alloc(headerLen);
    readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      throw problem(`header is not JSON (${(e as Error).message})`);
    }
    const dataStart = 8 + headerLen;
    const tensors: TensorInfo[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const t = raw as { dtype?: string; shape?: unknown; data_offsets?: unknown };
      if (!t || typeof t.dtype !== 'string' || !(t.dtype in dtypeBytes)) {
        throw problem(`tensor ${name} has unknown dtype ${JSON.stringify(t?.dtype)}`);
      }
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw problem(`tensor ${name} has an invalid shape`);
      }
      const offs = t.data_offsets as number[];
      if (!Array.isArray(offs) || offs.length !== 2 || !(offs[0] <= offs[1])) {
        throw problem(`tensor ${name} has invalid data_offsets`);
      }
      const dtype = t.dtype as SafetensorsDtype;
      const expected = (t.shape as number[]).reduce((a, b) => a * b, 1) * dtypeBytes[dtype];
      if (offs[1] - offs[0] !== expected) {
        throw problem(`tensor ${name} holds ${offs[1] - offs[0]} bytes but its shape needs ${expected}`);
      }
      if (dataStart + offs[1] > size) {
        throw problem(`tensor ${name} ends at byte ${dataStart + offs[1]} but the file has ${size} bytes (truncated?)`);
      }
      tensors.push({ name, file, dtype, shape: t.shape as number[], offset: dataStart + offs[0], nbytes: expected });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}

/**
 * The bytes before the data of tensors laid out in the order given: the header's length, then the
 * header, padded with spaces so the data starts 8-byte aligned (as the reference writer does).
 */
export function safetensorsHeader(tensors: { name: string; dtype: SafetensorsDtype; shape: number[]; nbytes: number }[], metadata: Record<string, string> = { format: 'pt' }): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.nbytes] };
    offset += t.nbytes;
  }
  header.__metadata__ = metadata;
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8')]);
}

/** Writes tensors in the order given (safetensorsHeader, then their data). */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = { format: 'pt' }): void {
  const header = safetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, nbytes: t.data.byteLength })), metadata);
  const fd = openSync(file, 'w');
  try {
    writeAll(fd, header);
    for (const t of tensors) writeAll(fd, t.data);
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) done += writeSync(fd, data, done, data.byteLength - done);
}
