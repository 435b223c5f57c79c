// `grpst archive` when the archive cannot be written: a full disk (grpst build's test hook,
// GRPST_TEST_DISK_LIMIT_BYTES), a folder this user may not write, a write interrupted by a signal,
// and a project part this user may not read. Each is said in words naming what failed (the archive
// asked for, never the temporary file beside it) with a fix; exit 4 and 2 as grpst build answers
// the same; and nothing is left in the folder.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let project: string;

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-archive-cli-'));
  // Readable by the unprivileged user the permission case runs as.
  fs.chmodSync(work, 0o755);
  cli = makeCli();
  project = path.join(work, 'project');
  fs.mkdirSync(path.join(project, 'conf'), { recursive: true });
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', checkpoint('tiny-a'));
  fs.writeFileSync(path.join(project, 'conf', 'inference.yml'), conf);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst archive write failures', () => {
  it('a full disk: exit 4, the archive named with the fix, nothing left', async () => {
    const out = path.join(work, 'full');
    fs.mkdirSync(out);
    const r = await cli.run(['archive', project, '-o', path.join(out, 'server.mar'), '--include_engine'], { env: { GRPST_TEST_DISK_LIMIT_BYTES: '100000' } });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`error: the disk is full while writing ${path.join(out, 'server.mar')} (ENOSPC); nothing was left behind`);
    expect(r.stderr).toContain(`fix: free space on the disk of ${out}, or pass -o with a path on a larger disk`);
    expect(r.stderr).not.toContain('.tmp-');
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it('a folder this user may not write: exit 2, the archive named with the fix, nothing left', async () => {
    const out = path.join(work, 'locked');
    fs.mkdirSync(out, { mode: 0o555 });
    fs.chmodSync(out, 0o555);
    // root writes anywhere: the command runs as nobody there.
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const r = await execa(process.execPath, [...cliArgv, 'archive', project, '-o', path.join(out, 'server.mar')], { env: cli.env, cwd: work, reject: false, stdin: 'ignore', ...asUser });
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(r.stderr).toContain(`error: cannot write ${path.join(out, 'server.mar')}: ${out} is not writable by this user (EACCES); nothing was left behind`);
    expect(r.stderr).toContain('fix: pass -o with a path in a folder you can write');
    expect(r.stderr).not.toContain('.tmp-');
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe('grpst archive of a project with parts this user may not read', () => {
  // root reads anything: the command runs as nobody there.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};

  it.each([
    ['folder', 'secrets/', (p: string) => fs.chmodSync(path.join(p, 'secrets'), 0o000), 'chmod -R u+rX'],
    ['file', 'secrets/key.pem', (p: string) => fs.chmodSync(path.join(p, 'secrets', 'key.pem'), 0o000), 'chmod u+r'],
  ] as const)('a %s: exit 2 naming it with the fix, before anything is written', async (what, shown, lock, chmod) => {
    const dir = path.join(work, `unreadable-${what}`);
    fs.mkdirSync(path.join(dir, 'secrets'), { recursive: true });
    fs.cpSync(path.join(project, 'conf'), path.join(dir, 'conf'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'secrets', 'key.pem'), 'not for everyone\n');
    fs.chmodSync(dir, 0o755);
    lock(dir);
    const out = path.join(work, `unreadable-${what}-out`);
    fs.mkdirSync(out, { mode: 0o777 });
    fs.chmodSync(out, 0o777);
    const r = await execa(process.execPath, [...cliArgv, 'archive', dir, '-o', path.join(out, 'server.mar')], { env: cli.env, cwd: work, reject: false, stdin: 'ignore', ...asUser });
    const real = path.join(dir, shown.replace(/\/$/, ''));
    expect(r.exitCode, String(r.stderr)).toBe(2);
    expect(r.stderr).toContain(`error: cannot read ${shown} in the project (${real}, EACCES)`);
    expect(r.stderr).toContain(`fix: make it readable (${chmod} ${real}), or move it out of the project folder`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(fs.readdirSync(out)).toEqual([]);
  });
});

describe('grpst archive interrupted while writing', () => {
  let big: string;

  beforeAll(() => {
    // Random bytes deflate slowly: the write lasts long enough to be interrupted in the middle.
    big = path.join(work, 'big-project');
    fs.mkdirSync(path.join(big, 'conf'), { recursive: true });
    fs.copyFileSync(path.join(project, 'conf', 'inference.yml'), path.join(big, 'conf', 'inference.yml'));
    fs.writeFileSync(path.join(big, 'data.bin'), randomBytes(48 * 1024 * 1024));
  });

  /** `grpst archive big -o out`, sent `sig` once its temporary file appears beside `out`. */
  async function signalledArchive(out: string, sig: NodeJS.Signals) {
    const child = execa(process.execPath, [...cliArgv, 'archive', big, '-o', out], { env: cli.env, cwd: work, reject: false, stdin: 'ignore', timeout: 120_000 });
    const temp = `${out}.tmp-${child.pid}`;
    let sent = false;
    const poll = setInterval(() => {
      if (!sent && fs.existsSync(temp)) {
        sent = true;
        child.kill(sig);
      }
    }, 5);
    const r = await child.finally(() => clearInterval(poll));
    return { sent, exitCode: r.exitCode, stderr: String(r.stderr), temp };
  }

  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)('%s: exit %i, the partial archive removed and the earlier one untouched', async (sig, code) => {
    const out = path.join(work, `interrupted-${sig}`);
    fs.mkdirSync(out);
    const mar = path.join(out, 'server.mar');
    expect((await cli.run(['archive', project, '-o', mar])).code).toBe(0);
    const before = fs.readFileSync(mar);
    const r = await signalledArchive(mar, sig);
    expect(r.sent, r.stderr).toBe(true);
    expect(r.exitCode, r.stderr).toBe(code);
    expect(r.stderr).toContain(`${sig}: archive interrupted; nothing was written (${mar} is unchanged)`);
    expect(fs.readdirSync(out)).toEqual(['server.mar']);
    expect(fs.readFileSync(mar).equals(before)).toBe(true);
  });

  it('SIGKILL leaves the partial archive, which the next archive to that path removes and names', async () => {
    const out = path.join(work, 'killed');
    fs.mkdirSync(out);
    const mar = path.join(out, 'server.mar');
    const killed = await signalledArchive(mar, 'SIGKILL');
    expect(killed.sent).toBe(true);
    expect(fs.readdirSync(out)).toEqual([path.basename(killed.temp)]);
    const r = await cli.run(['archive', project, '-o', mar]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`note: removed ${killed.temp}, left by an interrupted grpst archive`);
    expect(fs.readdirSync(out)).toEqual(['server.mar']);
  });
});
