// The product's CLI as child processes for the GPU benchmarks (bench/gpu-tp.ts,
// bench/gpu-engines.ts): their folders and the CLI they run, and `grpst serve`: confs written for
// one engine, the process started with a port file, ready when /health answers, stopped with
// SIGTERM (the server drains, then exits).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BenchFolders {
  checkpoint: string;
  work: string;
  outDir: string;
  /** The CLI the benchmark runs. */
  grpst: string;
  /** The builds' held-out text, where the working tree has it. */
  heldout?: string;
}

/** The folders a CLI benchmark works in (work and out created), from its arguments. */
export function benchFolders(args: { checkpoint?: string; work?: string; out?: string; grpst?: string }, usage: string): BenchFolders {
  if (!args.checkpoint) throw new Error(usage);
  const work = resolve(args.work!);
  const outDir = resolve(args.out!);
  mkdirSync(work, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const root = join(fileURLToPath(import.meta.url), '..', '..');
  return {
    checkpoint: resolve(args.checkpoint),
    work,
    outDir,
    // bin/grpst.js in a built checkout; the GPU machine runs the bundled one, the tests
    // src/cli/main.ts under this process's loader (--grpst; children get this process's execArgv).
    grpst: resolve(args.grpst ?? join(root, 'bin', 'grpst.js')),
    // By its path in the working tree: a bundled CLI cannot find its own copy.
    heldout: [join(root, 'data', 'heldout.txt'), resolve('data', 'heldout.txt')].find((f) => existsSync(f)),
  };
}

export interface ServeTarget {
  /** Folder for the confs, the port file and the server's logs. */
  dir: string;
  /** The engine folder (or a checkpoint served as it is). */
  engine: string;
  tokenizer: string;
  device: string;
  maxSeqLen: number;
}

function writeConfs(t: ServeTarget): { inference: string; server: string } {
  mkdirSync(t.dir, { recursive: true });
  const inference = join(t.dir, 'inference.yml');
  const server = join(t.dir, 'server.yml');
  writeFileSync(inference, `models:
  - name: qwen3
    version: 1.0.0
    device: ${t.device}
    inferer_args:
      llm_style: qwen3
      served_model_name: qwen3
      tokenizer_path: ${t.tokenizer}
      gpt_model_path: ${t.engine}
      device: ${t.device}
      max_batch_size: 64
      max_num_tokens: 8192
      max_seq_len: ${t.maxSeqLen}
      kv_cache_free_gpu_mem_fraction: 0.9
`);
  writeFileSync(server, `interface:
  framework: http
  host: 127.0.0.1
  port: 0
max_concurrency: 128
max_queue: 1024
web_ui: false
log:
  log_dir: ${join(t.dir, 'logs')}
`);
  return { inference, server };
}

async function waitReady(child: ChildProcess, portFile: string, log: string): Promise<string> {
  const deadline = Date.now() + 15 * 60_000;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`grpst serve exited before it was ready (log: ${log})`);
    if (existsSync(portFile)) {
      const url = `http://127.0.0.1:${readFileSync(portFile, 'utf8').trim()}`;
      const ok = await fetch(`${url}/health`).then((r) => r.status === 200, () => false);
      if (ok) return url;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`grpst serve was not ready in 15 minutes (log: ${log})`);
}

export interface Served {
  url: string;
  child: ChildProcess;
  /** Seconds from the spawn until /health answered 200. */
  loadSeconds: number;
}

/**
 * Starts `grpst serve` (the CLI at `grpst`, under this process's loader) on the target, its output
 * in `log`; extra arguments after the confs (--mpi_np N). In this process group, so a `timeout`
 * that ends the benchmark ends the server too.
 */
export async function startServe(grpst: string, t: ServeTarget, log: string, extra: string[] = []): Promise<Served> {
  const { inference, server } = writeConfs(t);
  const portFile = join(t.dir, 'port');
  rmSync(portFile, { force: true });
  const fd = openSync(log, 'w');
  const t0 = performance.now();
  const child = spawn(process.execPath, [...process.execArgv, grpst, 'serve', '--inference_conf', inference, '--server_conf', server, ...extra, '--port_file', portFile],
    { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  try {
    const url = await waitReady(child, portFile, log);
    return { url, child, loadSeconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    await stopServe(child);
    throw e;
  }
}

export async function stopServe(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  // A rank left behind exits when rank 0's pipe to it closes (src/daemon/tp-launch.ts).
  const late = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await gone;
  clearTimeout(late);
}
