import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diskLimitEnv, explainWriteError, Staging, STAGING_MARKER } from '../../src/build/staging.js';
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

  it('refuses an existing output without --force and replaces an engine folder with --force', () => {
    const out = join(root, 'b');
    mkdirSync(out);
    writeFileSync(join(out, 'engine.json'), '{}');
    expect(() => Staging.begin(out, false)).toThrow(/already exists/);
    const s = Staging.begin(out, true);
    writeFileSync(s.path('new'), '2');
    s.commit(true);
    expect(readdirSync(out)).toEqual(['new']);
    expect(readdirSync(root).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('--force never replaces a folder a build did not write, the checkpoint or the current folder', () => {
    const notes = join(root, 'notes');
    mkdirSync(notes);
    writeFileSync(join(notes, 'important.txt'), 'keep');
    expect(() => Staging.begin(notes, true)).toThrow(/not an engine folder \(no engine.json\)/);
    expect(readdirSync(notes)).toEqual(['important.txt']);

    const ckpt = join(root, 'models', 'hf');
    mkdirSync(ckpt, { recursive: true });
    writeFileSync(join(ckpt, 'engine.json'), '{}'); // even one that looks like an engine
    expect(() => Staging.begin(ckpt, true, ckpt)).toThrow(/is the checkpoint folder \(--model_dir\)/);
    expect(() => Staging.begin(join(root, 'models'), true, ckpt)).toThrow(/holds the checkpoint folder/);
    expect(existsSync(join(ckpt, 'engine.json'))).toBe(true);
    Staging.begin(join(ckpt, 'engine'), true, ckpt).abort(); // an engine inside the checkpoint folder is fine

    const cwd = process.cwd();
    process.chdir(notes);
    try {
      expect(() => Staging.begin('.', true)).toThrow(/is the current folder or holds it/);
      expect(() => Staging.begin(root, true)).toThrow(/is the current folder or holds it/);
    } finally {
      process.chdir(cwd);
    }
    expect(readdirSync(notes)).toEqual(['important.txt']);
    expect(readdirSync(root).filter((e) => e.startsWith('.'))).toEqual([]);
  });

  it('a folder the kernel will not create fails at once (Node\'s recursive mkdir spins forever under /proc)', () => {
    expect(() => Staging.begin('/proc/grpst-no-such-folder/engine', false)).toThrow(/cannot create \/proc\/grpst-no-such-folder: ENOENT/);
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

  it('removes marked staging folders of dead builds of any output in the folder, never an unmarked or a live one', () => {
    const parent = join(root, 'sweep');
    mkdirSync(parent);
    const s = Staging.begin(join(parent, 'x'), false);
    expect(readFileSync(join(s.tmp, STAGING_MARKER), 'utf8')).toBe(`${process.pid}\n`);
    s.abort();
    const deadMarked = join(parent, '.other.tmp-999999999'); // another output's, its process gone
    const deadUnmarked = join(parent, '.notes.tmp-999999998'); // a user's folder that only looks like one
    const liveMarked = join(parent, `.busy.tmp-${process.ppid}`); // a build still running
    for (const d of [deadMarked, deadUnmarked, liveMarked]) mkdirSync(d);
    for (const d of [deadMarked, liveMarked]) writeFileSync(join(d, STAGING_MARKER), '1\n');
    writeFileSync(join(deadUnmarked, 'keep.txt'), 'keep');
    const next = Staging.begin(join(parent, 'engine'), false);
    expect(next.removedStale).toEqual([deadMarked]);
    expect([existsSync(deadMarked), existsSync(deadUnmarked), existsSync(liveMarked)]).toEqual([false, true, true]);
    writeFileSync(next.path('w'), '1');
    next.commit(false);
    // The engine folder carries no marker: once renamed into place it is no staging folder.
    expect(readdirSync(join(parent, 'engine'))).toEqual(['w']);
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
