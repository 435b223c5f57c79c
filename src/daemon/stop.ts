// `grpst stop`: SIGTERM to the server's process group (the server drains: no new requests,
// in-flight ones finish), SIGKILL to the group after the timeout, then the state is removed.
import fs from 'node:fs';
import { drainTimeoutS, lifecyclePaths } from '../config/paths.js';
import { notFound } from '../util/errors.js';
import { tailLines } from './log-file.js';
import { groupMembers, pidAlive, procStartTime, signalGroup, waitGroupGone } from './processes.js';
import { stoppedLogOf } from './logs.js';
import { listStates, readState, removeState, type ServerState } from './state.js';

export interface StopResult {
  state: ServerState;
  /** false: it had already died; only its state (and any stray processes) were cleaned. */
  wasRunning: boolean;
  /** true: it did not drain within the timeout and was killed. */
  killed: boolean;
  /** The seconds stop waited for (or would have waited for) the drain. */
  timeoutS: number;
}

/**
 * How long stop waits before the kill when --timeout is not given: the drain limit the server
 * itself runs with (recorded at start, from its environment, not the stopping shell's), plus 30 s
 * for it to cancel what is left and exit.
 */
export function defaultStopTimeoutS(state: ServerState, env: NodeJS.ProcessEnv = process.env): number {
  return (state.drainTimeoutS ?? drainTimeoutS(env)) + 30;
}

/** For a server that is not running but was started here (its deploy folder and log remain): when its log was last written. */
export function stoppedAt(name: string, home: string): string | undefined {
  lifecyclePaths(name, home);
  if (readState(name, home)) return undefined;
  const log = stoppedLogOf(name, home);
  return log ? lastWritten(log) : undefined;
}

export function requireState(name: string, home: string): ServerState {
  lifecyclePaths(name, home);
  const state = readState(name, home);
  if (!state) {
    const known = listStates(home).map((s) => s.name);
    const others = known.length > 0 ? `running servers: ${known.join(', ')} (see \`grpst ps\`)` : undefined;
    // Stopped, its deploy folder and log still there (docker's "is not running", not "no such container").
    const at = stoppedAt(name, home);
    if (at) {
      throw notFound(`${name} is not running (it stopped at ${at}; \`grpst logs ${name}\` shows why)`, others ?? `\`grpst start SERVER.mar --name ${name}\` starts it again`);
    }
    throw notFound(`no server named ${name}`, others ?? 'no server is running; start one with `grpst start ./server.mar --inference_conf=...`');
  }
  return state;
}

export async function stopServer(name: string, home: string, timeout: number | undefined, onDrain: (s: ServerState) => void = () => undefined): Promise<StopResult> {
  const state = requireState(name, home);
  const timeoutS = timeout ?? defaultStopTimeoutS(state);
  const alive = pidAlive(state.pid, state.procStart);
  // A pid that now belongs to another process (after a reboot or a long time) is not ours to signal.
  const current = procStartTime(state.pid);
  const reused = !alive && state.procStart !== undefined && current !== undefined && current !== state.procStart;
  if (!alive) {
    if (!reused && groupMembers(state.pgid).length > 0) {
      signalGroup(state.pgid, 'SIGKILL');
      await waitGroupGone(state.pgid, 5000);
    }
    removeState(name, home);
    return { state, wasRunning: false, killed: false, timeoutS };
  }
  onDrain(state);
  signalGroup(state.pgid, 'SIGTERM');
  let killed = false;
  if (!(await waitGroupGone(state.pgid, timeoutS * 1000))) {
    killed = true;
    signalGroup(state.pgid, 'SIGKILL');
    // The server cannot log its own SIGKILL: say it in its log, where `grpst logs` shows it.
    try {
      fs.appendFileSync(state.logFile, `${new Date().toISOString()} ERROR grpst stop: the drain did not finish within ${timeoutS} s; the server was killed (SIGKILL)\n`);
    } catch {
      // The deploy folder may be gone; the CLI says it was killed either way.
    }
    await waitGroupGone(state.pgid, 10_000);
  }
  removeState(name, home);
  return { state, wasRunning: true, killed, timeoutS };
}

/** The time of the log's last line (its timestamp; the file's change time when the line has none), in the log's own format. */
function lastWritten(log: string): string {
  const last = tailLines(log, 1)[0] ?? '';
  const stamp = /^(\d{4}-\d{2}-\d{2}T[\d:.]+Z)\s/.exec(last)?.[1];
  return stamp ?? fs.statSync(log).mtime.toISOString();
}
