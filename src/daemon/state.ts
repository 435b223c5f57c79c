// State files of running servers: $GRPST_HOME/.run/<name>.json (what ps shows and stop needs)
// and <name>.pid, written atomically; a lock file keeps two `start`s of one name apart.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { envVars, lifecyclePaths, runDirOf, type LifecyclePaths } from '../config/paths.js';
import { isDiskFull } from '../util/disk-full.js';
import { badInput, failed, type GrpstError } from '../util/errors.js';
import { makeFolders } from '../util/folders.js';
import { pidAlive } from './processes.js';
import { recoverState } from './state-recovery.js';

export const serverStateSchema = z.object({
  name: z.string(),
  /** The server process (`grpst serve`), leader of its own process group. */
  pid: z.number().int(),
  pgid: z.number().int(),
  /** /proc start time of pid: tells our process from a later one that reused the pid. */
  procStart: z.string().optional(),
  deployPath: z.string(),
  host: z.string(),
  httpPort: z.number().int(),
  rpcPort: z.number().int().optional(),
  backend: z.enum(['native', 'trtllm']),
  logFile: z.string(),
  inferenceConf: z.string(),
  serverConf: z.string().optional(),
  startedAt: z.string(),
  /** /health needs the API key (server.yml auth.health); probes then accept 401 as "answering". */
  authHealth: z.boolean().default(false),
  /** The server's drain limit in seconds (GRPST_DRAIN_TIMEOUT_S of its environment): stop waits that long by default. */
  drainTimeoutS: z.number().positive().optional(),
  /** Set only on a state rebuilt from the process because the file did not parse: why it did not. */
  unreadable: z.string().optional(),
});
export type ServerState = z.output<typeof serverStateSchema>;

/** Makes a folder under GRPST_HOME; a home that cannot hold it is bad input named with the fix. */
function makeUnderHome(dir: string, home: string, mode?: number): void {
  try {
    makeFolders(dir, mode);
  } catch (e) {
    throw badInput(`cannot use ${home} as ${envVars.home} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, `set ${envVars.home} to a folder you can write (default ~/.grps)`);
  }
}

/**
 * An error reading or writing GRPST_HOME/.run that this user may not (the servers of another
 * user, a home on a read-only disk) as bad input naming the home and the fix, not a stack; any
 * other error as it is.
 */
function refusedHome(e: unknown, file: string, home: string): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (isDiskFull(e)) return homeDiskFull(e, home);
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return e;
  return badInput(
    `cannot use ${file} (${code}): ${envVars.home} ${home} holds the servers of another user, or is read-only`,
    `run grpst as the user that started them, or set ${envVars.home} to a folder you can write (default ~/.grps)`,
  );
}

/** A write under GRPST_HOME that found its disk full (exit 4), with where to make room. */
export function homeDiskFull(e: unknown, home: string): GrpstError {
  const code = (e as NodeJS.ErrnoException).code;
  return failed(`the disk of ${envVars.home} ${home} is full (${code})`, `free space on that disk, or set ${envVars.home} to a folder on a larger disk`, e);
}

/** GRPST_HOME itself, created when missing. */
export function ensureHome(home: string): void {
  makeUnderHome(home, home);
}

function makeRunDir(runDir: string): void {
  makeUnderHome(runDir, path.dirname(runDir), 0o700);
}

export function writeState(state: ServerState, home?: string): void {
  const p = lifecyclePaths(state.name, home);
  makeRunDir(p.runDir);
  try {
    atomicWrite(p.state, `${JSON.stringify(state, null, 2)}\n`);
    atomicWrite(p.pid, `${state.pid}\n`);
  } catch (e) {
    throw refusedHome(e, p.state, p.home);
  }
}

export function readState(name: string, home?: string): ServerState | undefined {
  const p = lifecyclePaths(name, home);
  let text: string;
  try {
    text = fs.readFileSync(p.state, 'utf8');
  } catch (e) {
    const refused = refusedHome(e, p.state, p.home);
    if (refused !== e) throw refused;
    return undefined;
  }
  const json = safeJson(text);
  const parsed = serverStateSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  const why = json === undefined ? 'not JSON' : `${parsed.error.issues[0]?.path.join('.') || 'the file'}: ${parsed.error.issues[0]?.message ?? 'invalid'}`;
  return recoverState(name, { pid: p.pid, port: portFileOf(p), deploy: p.deploy }, why);
}

export function listStates(home?: string): ServerState[] {
  const dir = runDirOf(home);
  if (!fs.existsSync(dir)) return [];
  let files: string[];
  try {
    files = fs.readdirSync(dir);
  } catch (e) {
    throw refusedHome(e, dir, path.dirname(dir));
  }
  return files
    .filter((f) => f.endsWith('.json') && !f.startsWith('.')) // dot files are grpst's own (names never start with a dot)
    .map((f) => readState(f.slice(0, -'.json'.length), home))
    .filter((s): s is ServerState => s !== undefined)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The running server `grpst start` launched that holds a port, for a refusal of that port to name
 * with how to stop it. An unreadable GRPST_HOME only costs the name.
 */
export function grpstServerOn(port: number, home?: string): ServerState | undefined {
  try {
    return listStates(home).find((s) => s.httpPort === port && pidAlive(s.pid, s.procStart));
  } catch {
    return undefined;
  }
}

export function removeState(name: string, home?: string): void {
  removeStateFiles(portFileOf(lifecyclePaths(name, home)));
}

/** A server's state (.json), pid, port and drain marker: one base name in the run folder, known from its port file. */
function removeStateFiles(portFile: string): void {
  const base = portFile.replace(/\.port$/, '');
  for (const file of [`${base}.json`, `${base}.pid`, portFile, drainMarkerOf(portFile)]) fs.rmSync(file, { force: true });
}

/**
 * Called by a daemon that stopped on request (drained, or told to stop before it listened) as it
 * exits: its state goes with it, so `ps` does not list a server that ended cleanly as dead, also
 * when no `grpst stop` was left waiting to remove it (one interrupted by Ctrl-C, a plain `kill`).
 * Only its own: the name may already belong to a later start. A daemon that crashed keeps its
 * state: ps shows it dead, and `grpst logs` why.
 */
export function removeOwnState(portFile: string, pid: number = process.pid): void {
  const base = portFile.replace(/\.port$/, '');
  try {
    // The pid file, written with the state, tells whose it is (also when the state file is garbled).
    if (Number(fs.readFileSync(`${base}.pid`, 'utf8').trim()) !== pid) return;
    removeStateFiles(portFile);
  } catch {
    // No pid file (a foreground serve given --port_file) or none readable: nothing of ours to remove.
  }
}

/** Where `serve` writes the port it bound (port 0 in server.yml picks a free one). */
export function portFileOf(p: LifecyclePaths): string {
  return path.join(p.runDir, `${path.basename(p.state, '.json')}.port`);
}

/**
 * Written by a daemon when it starts draining (its port is closed by then, so /health cannot
 * say so): `ps` shows "draining" instead of "unhealthy". Holds the time the drain began.
 */
export function drainMarkerOf(portFile: string): string {
  return portFile.replace(/\.port$/, '.draining');
}

/** When the server of this state began draining, or undefined when it is not draining. */
export function drainingSince(name: string, home?: string): string | undefined {
  try {
    return fs.readFileSync(drainMarkerOf(portFileOf(lifecyclePaths(name, home))), 'utf8').trim() || 'now';
  } catch {
    return undefined;
  }
}

/**
 * Takes the start lock of a name, or explains who holds it. A lock whose holder died is stale
 * and taken over. Returns the release function.
 */
export function lockName(name: string, home?: string): () => void {
  const p = lifecyclePaths(name, home);
  makeRunDir(p.runDir);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(p.lock, `${process.pid}\n`, { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(p.lock, 'utf8').trim() === String(process.pid)) fs.rmSync(p.lock, { force: true });
        } catch {
          // Already gone.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        // 'wx' created the file before the write failed (a full disk): an empty lock is no one's.
        // (Other failures made nothing, and a folder closed to this user refuses even the look.)
        if (isDiskFull(err)) fs.rmSync(p.lock, { force: true });
        throw refusedHome(err, p.lock, p.home);
      }
      const holder = Number(fs.readFileSync(p.lock, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && pidAlive(holder)) {
        throw badInput(`another \`grpst start --name ${name}\` is running (pid ${holder})`, `wait for it to finish, or start under another --name`);
      }
      fs.rmSync(p.lock, { force: true });
    }
  }
  throw badInput(`could not take the start lock ${p.lock}`, `remove ${p.lock} if no grpst start is running`);
}

export function atomicWrite(file: string, text: string): void {
  const temp = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(temp, text, { mode: 0o600 });
    fs.renameSync(temp, file);
  } catch (e) {
    // A full disk fails the write after the file was created: no half-written temp is left.
    fs.rmSync(temp, { force: true });
    throw e;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
