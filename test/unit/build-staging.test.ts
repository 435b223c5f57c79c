import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diskLimitEnv, explainWriteError, Staging } from '../../src/build/staging.js';
import { GrpstError } from '../../src/util/errors.js';

const root = mkdtempSync(join(tmpdir(), 'grpst-staging-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('staging folder', () => {
  it('builds beside the output and renames it into place', () => {
    const out = join(root, 'a', 'engine');
    const s = Staging.begin(out, false);
    expect(s.tmp.startsWith(join(root, 'a', '.engine.tmp-'))).toBe(true);
    writeFileSync(s.path('x'), 'hello');
    expect(existsSync(out)).toBe(false);
    s.commit(false);
    expect(readFileSync(join(out, 'x'), 'utf8')).toBe('hello');
    expect(readdirSync(join(root, 'a'))).toEqual(['engine']);
  });

  it('refuses an existing output without --force and replaces it with --force', () => {
    const out = join(root, 'b');
    mkdirSync(out);
    writeFileSync(join(out, 'old'), '1');
    expect(() => Staging.begin(out, false)).toThrow(/already exists/);
    const s = Staging.begin(out, true);
    writeFileSync(s.path('new'), '2');
    s.commit(true);
    expect(readdirSync(out)).toEqual(['new']);
    expect(readdirSync(root).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('leaves nothing behind on abort, and removes staging folders of dead builds', () => {
    const out = join(root, 'c');
    const s = Staging.begin(out, false);
    writeFileSync(s.path('partial'), 'x');
    s.abort();
    expect(existsSync(s.tmp)).toBe(false);
    const stale = join(root, '.c.tmp-999999999');
    mkdirSync(stale);
    Staging.begin(out, false).abort();
    expect(existsSync(stale)).toBe(false);
  });

  it('turns ENOSPC from the test hook into a clear build failure', () => {
    process.env[diskLimitEnv] = '10';
    try {
      const s = Staging.begin(join(root, 'd'), false);
      let err: unknown;
      try {
        s.account(11);
      } catch (e) {
        err = explainWriteError(e, s.output);
      }
      s.abort();
      expect(err).toBeInstanceOf(GrpstError);
      expect((err as GrpstError).exitCode).toBe(4);
      expect((err as GrpstError).message).toMatch(/disk is full .*\(ENOSPC\)/);
    } finally {
      delete process.env[diskLimitEnv];
    }
  });
});
