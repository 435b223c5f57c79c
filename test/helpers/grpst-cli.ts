// Runs the real grpst command line in a child process (the built dist/ when it is current, else
// the sources through tsx: cliArgv), with GRPST_HOME in a temporary folder so nothing touches ~/.grps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { repoRoot } from './fixtures.js';

const loader = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const entry = path.join(repoRoot, 'src', 'cli', 'main.ts');
const builtEntry = path.join(repoRoot, 'dist', 'cli', 'main.js');

function newestChange(dir: string): number {
  let newest = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestChange(p) : fs.statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * What follows `node` to run the grpst command line: the compiled dist/ (what bin/grpst.js runs)
 * when it was built after the last change under src/ (`npm install` and `npm test` build it),
 * else src/ through tsx, so a test run right after an edit still runs the edit. Each CLI call,
 * daemon and worker process of the suite starts in ~0.2 s from dist/ against ~0.7 s through tsx
 * (the daemons inherit the choice: they run `process.execArgv` + the CLI entry beside their own).
 */
export const cliArgv: readonly string[] =
  fs.existsSync(builtEntry) && fs.statSync(builtEntry).mtimeMs >= newestChange(path.join(repoRoot, 'src'))
    ? [builtEntry]
    : ['--import', loader, entry];

export const standInDir = path.join(repoRoot, 'test', 'e2e', 'stand-ins');

/**
 * How long a server sent SIGTERM by a test may drain before execa sends SIGKILL. execa's own
 * default is 5 s: on a loaded machine 16 streams of 200 tokens drain for longer, and the SIGKILL
 * then cut them off mid-stream, which read as a server that dropped its clients.
 */
export const drainGraceMs = 120_000;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Cli {
  home: string;
  env: NodeJS.ProcessEnv;
  run(args: string[], opts?: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }): Promise<CliResult>;
}

export function makeCli(opts: { standIns?: boolean; env?: NodeJS.ProcessEnv } = {}): Cli {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-home-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GRPST_HOME: home,
    PATH: opts.standIns ? `${standInDir}${path.delimiter}${process.env.PATH}` : process.env.PATH,
    ...opts.env,
  };
  return {
    home,
    env,
    async run(args, o = {}) {
      const result = await execa(process.execPath, [...cliArgv, ...args], {
        env: { ...env, ...o.env },
        cwd: o.cwd ?? home,
        reject: false,
        timeout: o.timeoutMs ?? 120_000,
        stdin: 'ignore',
      });
      return { code: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
    },
  };
}
