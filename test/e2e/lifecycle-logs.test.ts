// Daemon logs: daily copy-and-truncate rotation that keeps writers' O_APPEND descriptors valid,
// log_backup_count copies kept, and `grpst logs -f` following across a rotation until the
// server stops; `-n 0` prints no old line, as `tail -n 0`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { dayStamp, pruneBackups, rotateLog, scheduleDailyRotation, tailLines } from '../../src/daemon/log-file.js';
import { showLogs } from '../../src/daemon/logs.js';
import { runServe } from '../../src/daemon/serve.js';
import { procStartTime } from '../../src/daemon/processes.js';
import { drainMarkerOf, portFileOf, writeState } from '../../src/daemon/state.js';
import { lifecyclePaths } from '../../src/config/paths.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-logs-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('log rotation', () => {
  it('copies the day out and truncates in place: an appending writer goes on at the start of the file', () => {
    const file = path.join(tmp, 'a.log');
    const fd = fs.openSync(file, 'a');
    fs.writeSync(fd, 'monday 1\nmonday 2\n');
    rotateLog(file, '2030-01-07', 7);
    fs.writeSync(fd, 'tuesday 1\n');
    fs.closeSync(fd);
    expect(fs.readFileSync(file, 'utf8')).toBe('tuesday 1\n');
    expect(fs.readFileSync(`${file}.2030-01-07`, 'utf8')).toBe('monday 1\nmonday 2\n');
    expect(tailLines(file, 5)).toEqual(['tuesday 1']);
  });

  it('keeps log_backup_count dated copies and nothing else is touched', () => {
    const dir = path.join(tmp, 'prune');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'grpst_server.log');
    fs.writeFileSync(file, 'live\n');
    for (const day of ['2030-01-01', '2030-01-02', '2030-01-03', '2030-01-04']) fs.writeFileSync(`${file}.${day}`, day);
    fs.writeFileSync(path.join(dir, 'grpst_server.log.keep-me'), 'x');
    pruneBackups(file, 2);
    expect(fs.readdirSync(dir).sort()).toEqual(['grpst_server.log', 'grpst_server.log.2030-01-03', 'grpst_server.log.2030-01-04', 'grpst_server.log.keep-me']);
  });

  it('a log left from an earlier day is rotated when the server starts, and again at midnight', async () => {
    const file = path.join(tmp, 'sched.log');
    fs.writeFileSync(file, 'old day\n');
    const yesterday = new Date(Date.now() - 36 * 3600 * 1000);
    fs.utimesSync(file, yesterday, yesterday);
    // A clock 100 ms before midnight: the midnight rotation fires almost at once.
    const late = new Date();
    late.setHours(23, 59, 59, 900);
    const stop = scheduleDailyRotation(file, 3, () => late);
    expect(fs.readFileSync(`${file}.${dayStamp(yesterday)}`, 'utf8')).toBe('old day\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
    fs.appendFileSync(file, 'late line\n');
    await new Promise((r) => setTimeout(r, 400));
    stop();
    expect(fs.readFileSync(`${file}.${dayStamp(late)}`, 'utf8')).toBe('late line\n');
    expect(fs.readFileSync(file, 'utf8')).toBe('');
  });
});

describe('a server restarted on a later day', () => {
  it("rotates the earlier day's log before its first line, and keeps log_backup_count copies from the start", async () => {
    const dir = path.join(tmp, 'restart');
    fs.mkdirSync(dir);
    const file = path.join(dir, 'grpst_server.log');
    for (const day of ['2020-01-01', '2020-01-02', '2020-01-03']) fs.writeFileSync(`${file}.${day}`, day);
    fs.writeFileSync(file, 'old day\n');
    const yesterday = new Date(Date.now() - 36 * 3600 * 1000);
    fs.utimesSync(file, yesterday, yesterday);
    const log = { info: (l: string) => fs.appendFileSync(file, `${l}\n`), warn: (l: string) => fs.appendFileSync(file, `${l}\n`), error: (l: string) => fs.appendFileSync(file, `${l}\n`) };
    // A serve whose conf is missing: it logs its first line, then fails reading the conf.
    await expect(runServe({ inferenceConf: path.join(dir, 'missing.yml'), deployPath: dir, logFile: file }, log)).rejects.toThrow();
    expect(fs.readFileSync(`${file}.${dayStamp(yesterday)}`, 'utf8')).toBe('old day\n');
    expect(fs.readFileSync(file, 'utf8')).toMatch(/^grpst serve \(pid \d+\)/);
    // Once the conf is read, its count applies at once, not only at the next midnight.
    scheduleDailyRotation(file, 2)();
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('grpst_server.log.')).sort()).toEqual(['grpst_server.log.2020-01-03', `grpst_server.log.${dayStamp(yesterday)}`].sort());
  });
});

describe('grpst logs -f', () => {
  it('follows the live log across a rotation and ends when the server stops', async () => {
    const home = path.join(tmp, 'home');
    const file = path.join(home, 'srv', 'logs', 'grpst_server.log');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const fd = fs.openSync(file, 'a');
    // A stand-in server: prints a numbered line every 50 ms to the log, as the daemon's stdout does.
    const child = spawn(process.execPath, ['-e', 'let i = 0; setInterval(() => console.log(`line ${i++}`), 50)'], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    writeState({ name: 'srv', pid: child.pid!, pgid: child.pid!, procStart: procStartTime(child.pid!), deployPath: path.join(home, 'srv'), host: '127.0.0.1', httpPort: 1, backend: 'native', logFile: file, inferenceConf: 'x', startedAt: new Date().toISOString(), authHealth: false }, home);

    let out = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        out += String(chunk);
        done();
      },
    });
    const following = showLogs('srv', home, { follow: true, out: sink });
    await new Promise((r) => setTimeout(r, 700));
    rotateLog(file, '2030-01-01', 2);
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGKILL');
    // Ends by itself once the server is gone; killed without a drain, it is said to have died.
    expect(await following).toBe('died');
    const numbers = out.trim().split('\n').map((l) => Number(l.replace('line ', '')));
    const rotated = fs.readFileSync(`${file}.2030-01-01`, 'utf8').trim().split('\n').length;
    // Everything printed before and after the rotation, in order, nothing twice (lines written in
    // the instant between copy and truncate may be missing).
    expect(numbers.length).toBeGreaterThan(rotated + 5);
    for (let i = 1; i < numbers.length; i++) expect(numbers[i]).toBeGreaterThan(numbers[i - 1]);
  });

  it('a server that drained (grpst stop, SIGTERM) is said to have stopped, not died', async () => {
    const home = path.join(tmp, 'home-drained');
    const file = path.join(home, 'srv', 'logs', 'grpst_server.log');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'loading\n');
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    writeState({ name: 'srv', pid: child.pid!, pgid: child.pid!, procStart: procStartTime(child.pid!), deployPath: path.join(home, 'srv'), host: '127.0.0.1', httpPort: 1, backend: 'native', logFile: file, inferenceConf: 'x', startedAt: new Date().toISOString(), authHealth: false }, home);
    const following = showLogs('srv', home, { follow: true, out: new Writable({ write: (_c, _e, done) => done() }) });
    await new Promise((r) => setTimeout(r, 300));
    // What a daemon does on SIGTERM: the drain marker first, then it exits.
    fs.writeFileSync(drainMarkerOf(portFileOf(lifecyclePaths('srv', home))), new Date().toISOString());
    child.kill('SIGKILL');
    expect(await following).toBe('stopped');
  });
});

describe('grpst logs -n 0', () => {
  function sinkInto(into: { text: string }): Writable {
    return new Writable({
      write(chunk, _enc, done) {
        into.text += String(chunk);
        done();
      },
    });
  }

  it('reads no line, where slice(-0) would give the whole file', () => {
    const file = path.join(tmp, 'zero.log');
    fs.writeFileSync(file, 'one\ntwo\nthree\n');
    expect(tailLines(file, 0)).toEqual([]);
    expect(tailLines(file, 2)).toEqual(['two', 'three']);
    // Bounded by `to`: a line written after the end was fixed is not part of the tail.
    expect(tailLines(file, 2, 0, 'one\ntwo\n'.length)).toEqual(['one', 'two']);
  });

  it('is accepted by the command line and prints nothing of a stopped server\'s log', async () => {
    const home = path.join(tmp, 'home-zero');
    const file = path.join(home, 'srv', 'logs', 'grpst_server.log');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'old 1\nold 2\n');
    const written: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const saved = process.env.GRPST_HOME;
    process.env.GRPST_HOME = home;
    try {
      await buildProgram().parseAsync(['node', 'grpst', 'logs', 'srv', '-n', '0']);
      await buildProgram().parseAsync(['node', 'grpst', 'logs', 'srv', '--lines', '1']);
    } finally {
      write.mockRestore();
      if (saved === undefined) delete process.env.GRPST_HOME;
      else process.env.GRPST_HOME = saved;
    }
    expect(written.join('')).toBe('old 2\n');
  });

  it('with -f prints only the lines written after it started', async () => {
    const home = path.join(tmp, 'home-zero-follow');
    const file = path.join(home, 'srv', 'logs', 'grpst_server.log');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'before 1\nbefore 2\n');
    const fd = fs.openSync(file, 'a');
    const child = spawn(process.execPath, ['-e', 'let i = 0; setInterval(() => console.log(`line ${i++}`), 50)'], { stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    writeState({ name: 'srv', pid: child.pid!, pgid: child.pid!, procStart: procStartTime(child.pid!), deployPath: path.join(home, 'srv'), host: '127.0.0.1', httpPort: 1, backend: 'native', logFile: file, inferenceConf: 'x', startedAt: new Date().toISOString(), authHealth: false }, home);
    // Some lines are old by the time the follow starts.
    while (!fs.readFileSync(file, 'utf8').includes('line 2')) await new Promise((r) => setTimeout(r, 20));
    const old = fs.readFileSync(file, 'utf8').trim().split('\n').length;
    const out = { text: '' };
    const following = showLogs('srv', home, { follow: true, lines: 0, out: sinkInto(out) });
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGKILL');
    expect(await following).toBe('died');
    const printed = out.text.trim().split('\n');
    expect(out.text).not.toContain('before');
    expect(printed.length).toBeGreaterThan(3);
    // Nothing that was in the file when it started: the first line printed is a later one.
    expect(Number(printed[0].replace('line ', ''))).toBeGreaterThanOrEqual(old - 2);
    const all = fs.readFileSync(file, 'utf8');
    expect(all.endsWith(out.text)).toBe(true);
    expect(out.text.length).toBeLessThan(all.length);
  });
});
