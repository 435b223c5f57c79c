// A full disk under a running server or a start: a server whose log cannot be written (its stdout
// on /dev/full, where every write fails with ENOSPC) goes on serving, and `grpst start` on a full
// GRPST_HOME (a small tmpfs, mounted where the tests may mount one) exits 4 naming the disk and the
// fix, leaving no lock, temp file or server behind.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyEngine } from '../../bench/soak-daemon.js';
import { freePort } from '../../src/daemon/ports.js';
import { repoRoot } from '../helpers/fixtures.js';
import { cliArgv, makeCli } from '../helpers/grpst-cli.js';

let tmp: string;
let engine: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-full-disk-'));
  engine = await tinyEngine(makeCli());
}, 600_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  fs.rmSync(tmp, { recursive: true, force: true });
});

function project(dir: string, port: number): string {
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'conf', 'inference_tiny.yml'), fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engine));
  fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), `interface:\n  host: 127.0.0.1\n  port: ${port}\nweb_ui: false\n`);
  return dir;
}

const chat = (url: string, content: string) =>
  fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content }], max_tokens: 4 }) });

describe('a log on a full disk', () => {
  it.skipIf(!fs.existsSync('/dev/full'))('every log line fails with ENOSPC: the server answers on, then drains and exits 0', async () => {
    const port = await freePort('127.0.0.1');
    const dir = project(path.join(tmp, 'log'), port);
    const cli = makeCli();
    cleanups.push(() => fs.rmSync(cli.home, { recursive: true, force: true }));
    // The descriptor itself goes to the server, as a daemon's log does (execa would pipe through this process).
    const full = fs.openSync('/dev/full', 'w');
    const child = spawn(process.execPath, [...cliArgv, 'serve', '--inference_conf', 'conf/inference_tiny.yml', '--server_conf', 'conf/server.yml'], { cwd: dir, env: cli.env, stdio: ['ignore', full, full] });
    fs.closeSync(full);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    cleanups.push(() => void child.kill('SIGKILL'));
    const url = `http://127.0.0.1:${port}`;
    let health = 0;
    for (let i = 0; i < 600 && health !== 200 && child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 100));
      health = await fetch(`${url}/health`).then((r) => r.status, () => 0);
    }
    expect(health).toBe(200);
    // Each answer writes an access line (and the first request a few more): all of them are lost.
    for (let i = 0; i < 5; i++) expect((await chat(url, `hello ${i}`)).status).toBe(200);
    expect(child.exitCode).toBeNull();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

/** Whether this process may mount a tmpfs (root, and a container that grants mounts). */
function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    fs.rmSync(probe, { recursive: true, force: true });
  }
}

describe('grpst start on a full GRPST_HOME', () => {
  it.skipIf(!canMountTmpfs())('exit 4 naming the disk and the fix; no lock, temp file, deploy or server is left', async () => {
    const mount = path.join(tmp, 'small');
    fs.mkdirSync(mount);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount]);
    cleanups.push(() => void execFileSync('umount', ['-l', mount]));
    const home = path.join(mount, 'home');
    const cli = makeCli({ env: { GRPST_HOME: home } });
    const dir = project(path.join(tmp, 'start'), await freePort('127.0.0.1'));
    expect((await cli.run(['archive', '.'], { cwd: dir })).code).toBe(0);
    fs.mkdirSync(path.join(home, '.run'), { recursive: true });
    // The filler takes every free block: the first byte start writes fails.
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${path.join(mount, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
    } catch {
      // dd exits 1 once the disk is full, which is the point.
    }
    const r = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'full'], { cwd: dir });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`error: the disk of GRPST_HOME ${home} is full (ENOSPC)`);
    expect(r.stderr).toContain('fix: free space on that disk, or set GRPST_HOME to a folder on a larger disk');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(fs.readdirSync(path.join(home, '.run'))).toEqual([]);
    expect(fs.readdirSync(home)).toEqual(['.run']);
    expect((await cli.run(['ps', '--json'])).stdout.trim()).toBe('[]');
  });
});
