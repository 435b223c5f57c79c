// Sizes as the CLI prints them (archive, build, pull, list, rm): binary units, one decimal.
import { describe, expect, it } from 'vitest';
import { formatBytes } from '../../src/util/format-bytes.js';

describe('formatBytes', () => {
  it('prints bytes under 1 KiB as they are and larger sizes in the largest binary unit under 1024', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(16 * 2 ** 30 + 2 ** 29)).toBe('16.5 GiB');
    expect(formatBytes(3 * 2 ** 50)).toBe('3072.0 TiB');
  });
});
