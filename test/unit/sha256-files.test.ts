import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256File, sha256Files } from '../../src/util/sha256-files.js';

const root = mkdtempSync(join(tmpdir(), 'grpst-sha-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const reference = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const write = (name: string, bytes: number) => {
  const file = join(root, name);
  // Random bytes, and a size that is not a multiple of the 8 MiB read chunk: the last read is short.
  writeFileSync(file, randomBytes(bytes));
  return file;
};

describe('sha256 of files', () => {
  // Two files past the 64 MiB line hash on worker threads, the others on this thread.
  const large = [write('a.bin', 64 * 2 ** 20 + 12_345), write('b.bin', 70 * 2 ** 20 + 1)];
  const small = [write('c.bin', 1000), write('d.bin', 0)];

  it('gives every file its own digest, in the order asked, on workers and on this thread', async () => {
    const files = [large[0], small[0], large[1], small[1]];
    const got = await sha256Files(files, { parallel: 2 });
    expect(got).toEqual(files.map(reference));
    expect(got[0]).not.toBe(got[2]);
    expect(await sha256File(large[1])).toBe(reference(large[1]));
  });

  it('names a file it cannot read', async () => {
    await expect(sha256Files([join(root, 'missing.bin')])).rejects.toThrow(/missing\.bin/);
  });

  it('stops its workers when the caller gives up', async () => {
    const abort = new AbortController();
    const pending = sha256Files(large, { signal: abort.signal });
    abort.abort(new Error('build failed'));
    await expect(pending).rejects.toThrow(/build failed/);
  });
});
