// Runs the real grpst command line in a child process (through tsx, so tests need no build
// step), with GRPST_HOME in a temporary folder so nothing touches ~/.grps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { repoRoot } from './fixtures.js';

const loader = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const entry = path.join(repoRoot, 'src', 'cli', 'main.ts');
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
      const result = await execa(process.execPath, ['--import', loader, entry, ...args], {
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
