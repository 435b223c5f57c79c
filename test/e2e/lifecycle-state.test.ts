// A server's state under $GRPST_HOME/.run is what ps, stop, start and logs go by: a state file
// that no longer parses must not hide a running daemon (found again from its process, stopped by
// name), must never point a signal at an unrelated process, and a log deleted under a running
// server, or a home or log this user may not read, is an error that says so, not silence.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { lifecyclePaths } from '../../src/config/paths.js';
import { verifyEngineFiles } from '../../src/daemon/engine-check.js';
import { pidAlive, procStartTime } from '../../src/daemon/processes.js';
import { portFileOf, writeState, type ServerState } from '../../src/daemon/state.js';
import { execa } from 'execa';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';

let cli: Cli;
const children: ChildProcess[] = [];

beforeAll(() => {
  cli = makeCli();
});
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  fs.rmSync(cli.home, { recursive: true, force: true });
});

/**
 * A stand-in daemon: its own process group, a command line like `grpst serve`'s, its output
 * appended to the log. It exits on SIGTERM, as a drained server does.
 */
function standInDaemon(name: string): { child: ChildProcess; state: ServerState } {
  const paths = lifecyclePaths(name, cli.home);
  const logFile = path.join(paths.deploy, 'logs', 'grpst_server.log');
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  fs.mkdirSync(paths.runDir, { recursive: true });
  const serverConf = path.join(paths.deploy, 'server.yml');
  fs.writeFileSync(serverConf, 'interface:\n  host: 127.0.0.2\n  port: 1\n');
  const fd = fs.openSync(logFile, 'a');
  const script = 'console.log("serving"); setInterval(() => {}, 1000)';
  const args = ['-e', script, 'serve', '--inference_conf', 'conf/x.yml', '--deploy_path', paths.deploy, '--log_file', logFile, '--port_file', portFileOf(paths), '--server_conf', serverConf];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  children.push(child);
  const state: ServerState = { name, pid: child.pid!, pgid: child.pid!, procStart: procStartTime(child.pid!), deployPath: paths.deploy, host: '127.0.0.1', httpPort: 1, backend: 'native', logFile, inferenceConf: 'conf/x.yml', startedAt: new Date().toISOString(), authHealth: false };
  writeState(state, cli.home);
  return { child, state };
}

const psRow = async (name: string) => ((JSON.parse((await cli.run(['ps', '--json'])).stdout) as { name: string; status: string; pid: number; host: string; stateUnreadable: string | null }[]).find((r) => r.name === name));

describe('an unreadable state file', () => {
  it("is found again from the daemon's process: ps lists it, start refuses the name, stop stops it", async () => {
    const { child } = standInDaemon('garbled');
    await new Promise((r) => setTimeout(r, 300));
    fs.writeFileSync(lifecyclePaths('garbled', cli.home).state, '{"name": "garbled", "pid": ');
    // The stand-in never listens: before a daemon writes its port file it is starting...
    const row = await psRow('garbled');
    expect(row).toMatchObject({ pid: child.pid, status: 'starting', stateUnreadable: 'not JSON', host: '127.0.0.2' }); // host from its server conf
    // ...and once it has written one (it listened), silence on the port is a fault.
    fs.writeFileSync(portFileOf(lifecyclePaths('garbled', cli.home)), '1\n');
    expect(await psRow('garbled')).toMatchObject({ pid: child.pid, status: 'unhealthy' });
    expect((await cli.run(['ps'])).stdout).toMatch(/garbled .*unhealthy \(state file unreadable: not JSON; found from its process\)/);
    const again = await cli.run(['start', 'nothing.mar', '--name', 'garbled']);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`garbled is already running (pid ${child.pid}`);
    const stopped = await cli.run(['stop', 'garbled', '--timeout', '10']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('garbled stopped');
    expect(pidAlive(child.pid!)).toBe(false);
    expect(fs.readdirSync(path.join(cli.home, '.run')).filter((f) => f.startsWith('garbled.'))).toEqual([]);
  });

  it('whose pid is some other process: shown dead, removed by stop, and that process is left alone', async () => {
    const paths = lifecyclePaths('stale', cli.home);
    fs.mkdirSync(paths.runDir, { recursive: true });
    // The pid file names this test's own process: not a grpst daemon of that name.
    fs.writeFileSync(paths.pid, `${process.pid}\n`);
    fs.writeFileSync(paths.state, JSON.stringify({ name: 'stale', pid: 'twelve' }));
    expect(await psRow('stale')).toMatchObject({ status: 'dead', stateUnreadable: expect.stringContaining('pid') });
    const stopped = await cli.run(['stop', 'stale']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stderr).toContain('stale was not running; its unreadable state file');
    expect(fs.existsSync(paths.state)).toBe(false);
    expect(pidAlive(process.pid)).toBe(true);
  });

  it('engine hashes grpst remembers live in a dot file: a server named "verified-engines" keeps its state', async () => {
    const { child } = standInDaemon('verified-engines');
    const engine = path.join(cli.home, 'engine');
    fs.mkdirSync(engine, { recursive: true });
    fs.writeFileSync(path.join(engine, 'w.bin'), 'weights');
    const sha256 = createHash('sha256').update('weights').digest('hex');
    fs.writeFileSync(path.join(engine, 'engine.json'), JSON.stringify({ files: { 'w.bin': { bytes: 7, sha256 } } }));
    expect(await verifyEngineFiles(engine, cli.home)).toBe(1); // hashed, and the hash remembered
    expect(await psRow('verified-engines')).toMatchObject({ pid: child.pid, status: 'starting', stateUnreadable: null });
    expect((await cli.run(['stop', 'verified-engines', '--timeout', '10'])).code).toBe(0);
    expect(await verifyEngineFiles(engine, cli.home)).toBe(0); // still remembered
  });
});

describe('grpst logs', () => {
  it('a log deleted under a running server is an error naming the file and the fix', async () => {
    const { child, state } = standInDaemon('nolog');
    // Its first line (polled: node's start can take longer than a fixed wait on a loaded machine).
    await vi.waitFor(() => expect(fs.readFileSync(state.logFile, 'utf8')).toContain('serving'), { timeout: 10_000, interval: 20 });
    expect((await cli.run(['logs', 'nolog'])).stdout).toContain('serving');
    fs.rmSync(state.deployPath, { recursive: true, force: true });
    const res = await cli.run(['logs', 'nolog']);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`the log of nolog (${state.logFile}) is gone: its folder was deleted or moved`);
    expect(res.stderr).toContain(`the server still runs (pid ${child.pid})`);
    expect((await cli.run(['stop', 'nolog', '--timeout', '10'])).code).toBe(0);
  });
});

describe('a GRPST_HOME of another user', () => {
  // root reads anything: the commands run as nobody there, and the folders are closed to all.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const runAsUser = async (args: string[]) => {
    const r = await execa(process.execPath, [...cliArgv, ...args], { env: cli.env, cwd: cli.home, reject: false, stdin: 'ignore', ...asUser });
    return { code: r.exitCode, stderr: String(r.stderr) };
  };

  it('ps, stop, logs and start name the home and the fix (exit 2), and nothing is touched', async () => {
    standInDaemon('owned');
    const runDir = lifecyclePaths('owned', cli.home).runDir;
    fs.chmodSync(cli.home, 0o755);
    fs.chmodSync(runDir, 0o000);
    try {
      const fix = 'fix: run grpst as the user that started them, or set GRPST_HOME to a folder you can write';
      for (const args of [['ps'], ['stop', 'owned'], ['logs', 'owned'], ['start', 'server.mar', '--name', 'mine']]) {
        const r = await runAsUser(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(new RegExp(`error: cannot use ${runDir}\\S* \\((EACCES|EPERM)\\): GRPST_HOME ${cli.home} holds the servers of another user, or is read-only`));
        expect(r.stderr).toContain(fix);
        expect(r.stderr).not.toMatch(/\n\s+at /);
      }
    } finally {
      fs.chmodSync(runDir, 0o700);
    }
    expect(await psRow('owned')).toMatchObject({ status: 'starting' });
    expect((await cli.run(['stop', 'owned', '--timeout', '10'])).code).toBe(0);
  });

  it("logs of a stopped server whose log this user may not read: exit 2, not an empty answer", async () => {
    const log = path.join(lifecyclePaths('closed', cli.home).deploy, 'logs', 'grpst_server.log');
    fs.mkdirSync(path.dirname(log), { recursive: true });
    fs.writeFileSync(log, 'a line\n');
    fs.chmodSync(cli.home, 0o755);
    fs.chmodSync(lifecyclePaths('closed', cli.home).runDir, 0o755); // its state files may be read: it has none
    fs.chmodSync(path.dirname(path.dirname(log)), 0o755);
    fs.chmodSync(path.dirname(log), 0o755);
    fs.chmodSync(log, 0o000);
    const r = await runAsUser(['logs', 'closed']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`error: cannot read the log of closed, ${log} (EACCES)`);
    expect(r.stderr).toContain('fix: run grpst logs as the user that started closed');
  });
});
