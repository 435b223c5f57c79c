// A Python virtual environment per pinned requirements file, for tests that drive the server with
// real Python clients. Built once with `python3 -m venv` + pip and kept under
// .cache/python-clients/<hash>/, the hash covering the file and the interpreter's version, so an
// edited pin or a new Python gets a fresh one and an unchanged pair costs nothing.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { repoRoot } from './fixtures.js';

/** What the pinned requirements (openai 3's httpx2, numpy 2.4) need. */
export const MIN_PYTHON: readonly [number, number] = [3, 11];

const cacheRoot = path.join(repoRoot, '.cache', 'python-clients');
/** Written last: a folder without it is a half-made environment (an interrupted install). */
const doneMarker = 'installed.json';

export interface PythonVenv {
  /** The environment's interpreter. */
  python: string;
  dir: string;
  /** Seconds spent creating it now; 0 when it came from the cache. */
  installSeconds: number;
}

/** The host's python3 version, or an error saying what the tests need. */
export async function hostPython(): Promise<string> {
  const need = `Python ${MIN_PYTHON.join('.')} or newer (python3 on the PATH, with its venv module, and PyPI reachable)`;
  const r = await execa('python3', ['-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'], { reject: false });
  if (r.failed || r.exitCode !== 0) throw new Error(`The Python client tests need ${need}; running python3 failed: ${r.stderr || r.shortMessage}`);
  const version = String(r.stdout).trim();
  const [major, minor] = version.split('.').map(Number);
  if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) throw new Error(`The Python client tests need ${need}; python3 is ${version}`);
  return version;
}

export async function pythonVenv(requirementsFile: string, pythonVersion: string, installTimeoutMs = 300_000): Promise<PythonVenv> {
  const requirements = fs.readFileSync(requirementsFile);
  const hash = createHash('sha256').update(requirements).update(`\0python ${pythonVersion}`).digest('hex').slice(0, 16);
  const dir = path.join(cacheRoot, hash);
  const python = path.join(dir, 'bin', 'python');
  if (fs.existsSync(path.join(dir, doneMarker))) return { python, dir, installSeconds: 0 };

  const started = performance.now();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(cacheRoot, { recursive: true });
  const venv = await execa('python3', ['-m', 'venv', dir], { reject: false });
  if (venv.exitCode !== 0) throw new Error(`python3 -m venv ${dir} failed (on Debian: apt-get install python3-venv):\n${venv.stderr}`);
  const pip = await execa(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-input', '-r', requirementsFile], {
    reject: false,
    timeout: installTimeoutMs,
    stdin: 'ignore',
  });
  if (pip.exitCode !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`pip install -r ${path.relative(repoRoot, requirementsFile)} failed${pip.timedOut ? ` (timed out after ${installTimeoutMs / 1000} s)` : ''}:\n${pip.stderr}`);
  }
  const installSeconds = (performance.now() - started) / 1000;
  fs.writeFileSync(path.join(dir, doneMarker), JSON.stringify({ requirements: path.relative(repoRoot, requirementsFile), python: pythonVersion, installSeconds }, null, 2));
  return { python, dir, installSeconds };
}
