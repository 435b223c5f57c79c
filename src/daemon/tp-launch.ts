// One process per GPU for a tensor-parallel engine. `grpst serve` is rank 0: it makes NCCL's
// unique id, starts ranks 1..N-1 as child processes of its own (same process group, so `grpst
// stop` and `ps` treat the group as one server) with the id in their environment, then joins the
// group itself while loading its engine. Rank 0 serves HTTP and broadcasts each step's batch to
// the others over NCCL (native/src/runtime/tp_runner.h). Each worker's stdin is a pipe from rank 0:
// when rank 0 dies, the pipe closes and the worker exits instead of waiting in NCCL forever.
// NVLink multicast stays off in every process: NCCL_NVLS_ENABLE=0 (and the PyTorch / NVSHMEM
// switches, for anything else these processes load).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readManifest } from '../build/manifest.js';
import type { LoadOptions } from '../engine/types.js';
import { badInput } from '../util/errors.js';
import { countGpus, type GpuCount } from './gpus.js';

export const multicastOffEnv = {
  NCCL_NVLS_ENABLE: '0',
  TORCH_SYMM_MEM_DISABLE_MULTICAST: '1',
  NVSHMEM_DISABLE_NVLS: '1',
} as const;

/** Where rank 0 puts the NCCL id for the workers. */
export const ncclIdEnv = 'GRPST_TP_NCCL_ID';
/** The load options (JSON) every rank uses, so their buffers and limits agree. */
export const loadOptionsEnv = 'GRPST_TP_LOAD_OPTIONS';

/**
 * The processes an engine needs: its engine.json tp_size. `--mpi_np` 1 (the default) follows the
 * engine; any other value must equal it.
 */
export function tensorParallelSize(enginePath: string, mpiNp: number): number {
  const isEngine = existsSync(path.join(enginePath, 'engine.json'));
  const tp = isEngine ? readManifest(enginePath).mapping.tp_size : 1;
  if (mpiNp > 1 && tp !== mpiNp) {
    throw badInput(
      isEngine
        ? `--mpi_np ${mpiNp} does not match the engine: ${enginePath} was built with tp_size ${tp}`
        : `--mpi_np ${mpiNp} splits a model across GPUs, but ${enginePath} is a checkpoint, not an engine built for ${mpiNp} ranks`,
      isEngine ? `pass --mpi_np ${tp} (or drop it), or rebuild the engine with --tp_size ${mpiNp}` : `build one with \`grpst build --model_dir ${enginePath} --output_dir DIR --tp_size ${mpiNp}\` and serve that`,
    );
  }
  return tp;
}

/**
 * Everything a tensor-parallel start needs, checked before anything starts: enough GPUs, and a
 * runtime built with CUDA and NCCL. `tp` is the engine's tp_size (tensorParallelSize), which
 * --mpi_np may only repeat, so a shortfall is the engine's to explain, not the flag's.
 * `unavailable` is tensorParallelUnavailable() (the addon probe).
 */
export function checkTensorParallelHost(tp: number, unavailable: () => string | undefined, gpus: () => GpuCount = countGpus): void {
  if (tp <= 1) return;
  const found = gpus();
  if (tp > found.count) {
    throw badInput(
      `the engine was built with --tp_size ${tp}: it runs one process per GPU and needs ${tp} GPUs, but ${found.count} ${found.count === 1 ? 'is' : 'are'} available (${found.source})`,
      `serve it where ${tp} GPUs are, or rebuild it for this machine: \`grpst build ... --tp_size ${Math.max(1, found.count)}\`${found.count <= 1 ? ' (one GPU or the CPU)' : ' or less'}`,
    );
  }
  const why = unavailable();
  if (why) {
    throw badInput(
      `a tensor-parallel engine of ${tp} ranks runs one process per GPU over NCCL, but ${why}`,
      'rebuild the runtime on the GPU machine with the CUDA toolkit and NCCL (nccl.h and libnccl, e.g. apt-get install libnccl-dev, or NCCL_HOME) installed: npm run build:native',
    );
  }
}

/** The worker's module (dist/daemon/tp-worker.js, or src/daemon/tp-worker.ts under tsx). */
function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  return path.join(path.dirname(here), `tp-worker${path.extname(here)}`);
}

export interface TensorParallelGroup {
  size: number;
  ncclId: string;
  /** Resolves with a message when a worker exits before the group was stopped. */
  failed: Promise<string>;
  /** After rank 0 closed its engine (the workers' cue to exit): waits for them, killing stragglers. */
  stop(timeoutMs?: number): Promise<void>;
  /** Ends every worker at once (rank 0 failed). */
  kill(): void;
}

export interface LaunchLog {
  info(line: string): void;
  error(line: string): void;
}

/** Starts ranks 1..tp-1 of the engine at `enginePath`; rank 0 is the caller, which joins with `ncclId`. */
export function launchTensorParallelWorkers(enginePath: string, tp: number, ncclId: string, load: LoadOptions, log: LaunchLog): TensorParallelGroup {
  Object.assign(process.env, multicastOffEnv);
  const workers: ChildProcess[] = [];
  let stopping = false;
  let reportFailure: (why: string) => void = () => undefined;
  const failed = new Promise<string>((resolve) => (reportFailure = resolve));
  const env = { ...process.env, ...multicastOffEnv, [ncclIdEnv]: ncclId, [loadOptionsEnv]: JSON.stringify(load) };
  for (let rank = 1; rank < tp; rank++) {
    // execArgv carries loaders (tsx) this process runs under, so the worker runs the same code.
    const child = spawn(process.execPath, [...process.execArgv, workerEntry(), enginePath, String(rank)], { stdio: ['pipe', 'inherit', 'inherit'], env });
    child.stdin?.on('error', () => undefined);
    child.on('error', (err) => reportFailure(`tensor parallel rank ${rank} could not be started: ${err.message}`));
    child.on('exit', (code, signal) => {
      if (!stopping || code !== 0) {
        const why = `tensor parallel rank ${rank} (pid ${child.pid}) exited (${signal ?? `code ${code}`})`;
        if (stopping) log.error(why);
        else reportFailure(why);
      }
    });
    workers.push(child);
  }
  log.info(`tensor parallel: ${tp} ranks, workers ${workers.map((w) => w.pid).join(', ')} (NCCL_NVLS_ENABLE=0)`);
  const alive = () => workers.filter((w) => w.exitCode === null && w.signalCode === null);
  const kill = () => {
    stopping = true;
    for (const w of alive()) w.kill('SIGKILL');
  };
  return {
    size: tp,
    ncclId,
    failed,
    kill,
    async stop(timeoutMs = 30_000) {
      stopping = true;
      const deadline = Date.now() + timeoutMs;
      while (alive().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      kill();
    },
  };
}
