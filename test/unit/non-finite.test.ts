// The scan that names a checkpoint tensor holding NaN or Inf (src/build/native/non-finite.ts), on
// each float type's bit patterns: all-ones exponents are caught, the largest finite values are not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tensorHasNonFinite } from '../../src/build/native/non-finite.js';
import { readSafetensorsHeader, writeSafetensors, type SafetensorsDtype } from '../../src/model/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'grpst-nonfinite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function scan(dtype: SafetensorsDtype, words: number[]): boolean {
  const width = dtype === 'F32' ? 4 : 2;
  const data = new Uint8Array(words.length * width);
  const view = new DataView(data.buffer);
  words.forEach((w, i) => (width === 4 ? view.setUint32(i * 4, w, true) : view.setUint16(i * 2, w, true)));
  const file = join(dir, `${dtype}-${words.join('-')}.safetensors`);
  writeSafetensors(file, [{ name: 't', dtype, shape: [words.length], data }]);
  return tensorHasNonFinite(readSafetensorsHeader(file).tensors[0]);
}

describe('non-finite tensor scan', () => {
  it('bf16: NaN, +Inf and -Inf are caught; the largest finite values and zeros are not', () => {
    expect(scan('BF16', [0x3f80, 0x7f7f, 0xff7f, 0x0000, 0x8000])).toBe(false);
    expect(scan('BF16', [0x3f80, 0x7fc0])).toBe(true);
    expect(scan('BF16', [0x7f80])).toBe(true);
    expect(scan('BF16', [0x0001, 0xff80])).toBe(true);
  });

  it('fp16 and fp32 by their own exponent fields', () => {
    expect(scan('F16', [0x7bff, 0xfbff, 0x3c00])).toBe(false); // 65504, -65504, 1
    expect(scan('F16', [0x3c00, 0x7c00])).toBe(true);
    expect(scan('F16', [0x7e00])).toBe(true);
    expect(scan('F32', [0x7f7fffff, 0x3f800000])).toBe(false);
    expect(scan('F32', [0x3f800000, 0x7fc00000])).toBe(true);
    expect(scan('F32', [0xff800000])).toBe(true);
  });

  it('integer tensors are not float data', () => {
    expect(scan('I16', [0x7fff, 0xffff])).toBe(false);
  });
});
