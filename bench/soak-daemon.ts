// A real grpst daemon on the tiny model for the soak and the fault tests: the engine built from
// the tiny-a fixture with `grpst build` (once, cached), a project archived with `grpst archive`,
// started with `grpst start` under a temporary GRPST_HOME, on a free loopback port.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../src/daemon/ports.js';
import { cacheDir, checkpoint, repoRoot } from '../test/helpers/fixtures.js';
import { makeCli, type Cli, type CliResult } from '../test/helpers/grpst-cli.js';

export interface DaemonOptions {
  name?: string;
  maxConcurrency?: number;
  maxQueue?: number;
  /** Handed to the daemon as GRPST_API_KEY (never in argv or a file). */
  apiKey?: string;
  /** An existing GRPST_HOME (to start a name again); default a new temporary one. */
  cli?: Cli;
}

export interface Daemon {
  name: string;
  cli: Cli;
  url: string;
  port: number;
  pid: number;
  pgid: number;
  apiKey?: string;
  logFile: string;
  projectDir: string;
  stop(timeoutS?: number): Promise<CliResult>;
}

/**
 * The tiny-a engine as `grpst build` writes it, built once into the fixture cache. Test files that
 * run at the same time may both find it missing: each builds a folder of its own and renames it
 * into place, and the one that comes second keeps the first one's.
 */
export async function tinyEngine(cli: Cli): Promise<string> {
  const dir = path.join(cacheDir, 'tiny-a-engine');
  if (fs.existsSync(path.join(dir, 'engine.json'))) return dir;
  const own = `${dir}.build-${process.pid}-${Date.now()}`;
  const built = await cli.run(['build', '--model_dir', checkpoint('tiny-a'), '--output_dir', own], { timeoutMs: 600_000 });
  if (built.code !== 0) throw new Error(`grpst build failed:\n${built.stderr}`);
  try {
    fs.renameSync(own, dir);
  } catch (e) {
    if (!fs.existsSync(path.join(dir, 'engine.json'))) throw e;
    fs.rmSync(own, { recursive: true, force: true });
  }
  return dir;
}

export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const cli = opts.cli ?? makeCli();
  const name = opts.name ?? 'soak';
  const engine = await tinyEngine(cli);
  const port = await freePort('127.0.0.1');
  const projectDir = fs.mkdtempSync(path.join(os.tmpdir(), `grpst-${name}-`));
  fs.mkdirSync(path.join(projectDir, 'conf'));
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engine);
  fs.writeFileSync(path.join(projectDir, 'conf', 'inference_tiny.yml'), conf);
  fs.writeFileSync(
    path.join(projectDir, 'conf', 'server.yml'),
    [
      'interface:',
      '  host: 127.0.0.1',
      `  port: ${port}`,
      'max_connections: 2000',
      `max_concurrency: ${opts.maxConcurrency ?? 32}`,
      `max_queue: ${opts.maxQueue ?? 256}`,
      'web_ui: false',
      'log:',
      '  log_dir: ./logs',
      '',
    ].join('\n'),
  );
  const archived = await cli.run(['archive', '.'], { cwd: projectDir });
  if (archived.code !== 0) throw new Error(`grpst archive failed:\n${archived.stderr}`);
  const env = opts.apiKey ? { GRPST_API_KEY: opts.apiKey } : {};
  const started = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', name], { cwd: projectDir, env, timeoutMs: 300_000 });
  if (started.code !== 0) throw new Error(`grpst start failed (${started.code}):\n${started.stderr}`);
  const state = JSON.parse(fs.readFileSync(path.join(cli.home, '.run', `${name}.json`), 'utf8')) as { pid: number; pgid: number; logFile: string };
  return {
    name,
    cli,
    url: `http://127.0.0.1:${port}`,
    port,
    pid: state.pid,
    pgid: state.pgid,
    apiKey: opts.apiKey,
    logFile: state.logFile,
    projectDir,
    stop: (timeoutS = 120) => cli.run(['stop', name, '--timeout', String(timeoutS)], { timeoutMs: (timeoutS + 30) * 1000 }),
  };
}

/** Resident memory of a process in MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}
