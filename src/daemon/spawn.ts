// Launches `grpst serve` as a daemon: its own session and process group (so `stop` can signal
// everything it started), stdout and stderr appended to the deploy's log, no terminal. The API
// key travels in the confs or the environment, never in argv (ps shows argv to every user).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeFolders } from '../util/folders.js';

/** The CLI module this code belongs to (dist/cli/main.js, or src/cli/main.ts under tsx). */
export function cliEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), '..', 'cli', `main${path.extname(here)}`);
}

export interface DaemonSpawn {
  serveArgs: string[];
  cwd: string;
  logFile: string;
  env?: NodeJS.ProcessEnv;
}

export function spawnDaemon(opts: DaemonSpawn): number {
  makeFolders(path.dirname(opts.logFile));
  const fd = fs.openSync(opts.logFile, 'a', 0o640);
  try {
    // execArgv carries loaders (tsx) the current process runs under, so the daemon runs the same code.
    const child = spawn(process.execPath, [...process.execArgv, cliEntry(), 'serve', ...opts.serveArgs], {
      cwd: opts.cwd,
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...(opts.env ?? process.env), GRPST_DAEMON: '1' },
    });
    child.unref();
    if (child.pid === undefined) throw new Error('the server process could not be spawned');
    return child.pid;
  } finally {
    fs.closeSync(fd);
  }
}
