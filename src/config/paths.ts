// Every path and environment variable grpst's lifecycle uses, resolved in one place so the CLI,
// the daemon and the tests agree on where deploys, state files and logs live.
import os from 'node:os';
import path from 'node:path';
import { positiveEnvNumber } from '../util/env-values.js';
import { badInput } from '../util/errors.js';

export const envVars = {
  /** Root of deploys and state (default ~/.grps, as the seed). */
  home: 'GRPST_HOME',
  /** Overrides server.yml's api_key / api_key_file without writing the key into a file or argv. */
  apiKey: 'GRPST_API_KEY',
  /** Largest total size a .mar may unpack to, in bytes (zip-bomb guard). */
  maxMarBytes: 'GRPST_MAX_MAR_BYTES',
  /** Seconds a stopping server lets in-flight requests run before it cancels them (default 600). */
  drainTimeout: 'GRPST_DRAIN_TIMEOUT_S',
} as const;

/** The drain limit of a stopping server, in seconds (GRPST_DRAIN_TIMEOUT_S; 600 when unset or empty, refused when not a number above 0). */
export function drainTimeoutS(env: NodeJS.ProcessEnv = process.env): number {
  return positiveEnvNumber(env, envVars.drainTimeout, { takes: 'a number of seconds above 0', default: '600 s', example: '120' }) ?? 600;
}

export const defaultName = 'my_grps';
export const defaultPort = 9997;

export function grpstHome(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[envVars.home];
  if (fromEnv && fromEnv.trim() !== '') return path.resolve(expandHome(fromEnv.trim()));
  return path.join(os.homedir(), '.grps');
}

export function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}

// Names become folder and file names under GRPST_HOME: no separators, no leading dot (the
// state folder is hidden), nothing a shell would mangle.
const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function validateName(name: string): string {
  if (!namePattern.test(name) || name.includes('..')) {
    throw badInput(
      `invalid server name "${name}"`,
      'use 1-64 letters, digits, "_", "-" or "." starting with a letter or digit, e.g. --name my_grps',
    );
  }
  return name;
}

export interface LifecyclePaths {
  home: string;
  /** Where `start` extracts the archive: $GRPST_HOME/<name>. */
  deploy: string;
  /** Pid, state and lock files of all servers. */
  runDir: string;
  state: string;
  pid: string;
  lock: string;
}

export function lifecyclePaths(name: string, home: string = grpstHome()): LifecyclePaths {
  validateName(name);
  const runDir = path.join(home, '.run');
  return {
    home,
    deploy: path.join(home, name),
    runDir,
    state: path.join(runDir, `${name}.json`),
    pid: path.join(runDir, `${name}.pid`),
    lock: path.join(runDir, `${name}.lock`),
  };
}

export function runDirOf(home: string = grpstHome()): string {
  return path.join(home, '.run');
}

/**
 * Resolves a path written in a conf. Relative paths belong to `base` (the deploy folder, as the
 * seed resolves log_dir) and may not climb out of it: a conf shipped inside an archive must not
 * reach files elsewhere through `../`. Absolute paths are the user's explicit choice and stay.
 */
export function resolveConfPath(base: string, written: string, where: string): string {
  const expanded = expandHome(written);
  if (path.isAbsolute(expanded)) return path.normalize(expanded);
  const resolved = path.resolve(base, expanded);
  if (!isInside(base, resolved)) {
    throw badInput(
      `${where}: "${written}" leaves the deploy folder ${base}`,
      'write a path inside the project folder, or an absolute path',
    );
  }
  return resolved;
}

export function isInside(base: string, candidate: string): boolean {
  const rel = path.relative(path.resolve(base), path.resolve(candidate));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
