// `grpst logs NAME [-f] [-n N]`: the server's log, followed across daily rotation (the live file is
// truncated in place), ending by itself when the server stops.
import fs from 'node:fs';
import path from 'node:path';
import { lifecyclePaths } from '../config/paths.js';
import { badInput, notFound } from '../util/errors.js';
import { logFileName, tailLines } from './log-file.js';
import { pidAlive, sleep } from './processes.js';
import { drainingSince, readState } from './state.js';

export interface LogsOptions {
  follow: boolean;
  /** Print only the last N lines first, none for 0 (default: the whole current file). */
  lines?: number;
  out?: NodeJS.WritableStream;
  signal?: AbortSignal;
}

/** The log of a running server, or of a stopped one whose deploy folder is still there. */
export function logFileOf(name: string, home: string): { file: string; pid?: number; procStart?: string } {
  const state = readState(name, home);
  if (state?.logFile) return { file: state.logFile, pid: state.pid, procStart: state.procStart };
  const stopped = stoppedLogOf(name, home);
  if (stopped) return { file: stopped };
  throw notFound(`no server named ${name} and no log at ${deployedLog(name, home)}`, 'see `grpst ps` for the servers that run');
}

/** Where the log of a server that ran under this name and was stopped lies, if it is still there. */
export function stoppedLogOf(name: string, home: string): string | undefined {
  const file = deployedLog(name, home);
  return fs.existsSync(file) ? file : undefined;
}

function deployedLog(name: string, home: string): string {
  return path.join(lifecyclePaths(name, home).deploy, 'logs', logFileName);
}

/**
 * How a followed server ended: "stopped" (it drained: grpst stop or a SIGTERM) or "died" (its
 * process went away without draining: killed or crashed, its state left behind). Undefined when
 * not following or the follow was interrupted.
 */
export type LogsEnd = 'stopped' | 'died' | undefined;

export async function showLogs(name: string, home: string, opts: LogsOptions): Promise<LogsEnd> {
  const out = opts.out ?? process.stdout;
  const { file, pid, procStart } = logFileOf(name, home);
  if (!fs.existsSync(file)) {
    const running = pid !== undefined && pidAlive(pid, procStart);
    throw notFound(
      `the log of ${name} (${file}) is gone: its folder was deleted or moved`,
      running ? `the server still runs (pid ${pid}); \`grpst stop ${name}\` and start it again for a new log` : `\`grpst stop ${name}\` clears its entry`,
    );
  }
  // The reads below skip a file they cannot open (a rotation's moment): one this user may never
  // read would print nothing and exit 0.
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'unreadable';
    throw badInput(`cannot read the log of ${name}, ${file} (${code})`, `run grpst logs as the user that started ${name}`);
  }
  let position = 0;
  if (opts.lines !== undefined) {
    // The end is fixed before the tail is read: a line written meanwhile is the follow's to print,
    // once. With -n 0 nothing before it is printed, as `tail -n 0 -f`.
    position = fileSize(file);
    const lines = tailLines(file, opts.lines, 0, position);
    if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
  } else {
    position = copyFrom(file, 0, out);
  }
  if (!opts.follow) return undefined;
  for (;;) {
    if (opts.signal?.aborted) return undefined;
    const running = pid !== undefined && pidAlive(pid, procStart);
    position = copyFrom(file, position, out);
    if (!running) return endedAs(name, home, pid);
    await sleep(250);
  }
}

// A draining server writes its marker before closing its port, and grpst stop removes the state
// only after the process is gone: either means it stopped as asked.
function endedAs(name: string, home: string, pid: number | undefined): LogsEnd {
  if (pid === undefined) return 'stopped';
  const state = readState(name, home);
  if (state?.pid !== pid || drainingSince(name, home) !== undefined) return 'stopped';
  return 'died';
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

// Writes the bytes of file from `position` on and returns the new position; a file that shrank
// was rotated, so it is read again from the start.
function copyFrom(file: string, position: number, out: NodeJS.WritableStream): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return position;
  }
  try {
    const size = fs.fstatSync(fd).size;
    let at = size < position ? 0 : position;
    const buf = Buffer.alloc(64 * 1024);
    while (at < size) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
      if (n <= 0) break;
      out.write(Buffer.from(buf.subarray(0, n)));
      at += n;
    }
    return at;
  } finally {
    fs.closeSync(fd);
  }
}
