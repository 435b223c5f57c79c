// How many GPUs `--mpi_np` may use: what nvidia-smi lists, narrowed by CUDA_VISIBLE_DEVICES.
import { execFileSync } from 'node:child_process';
import { badInput } from '../util/errors.js';

export interface GpuCount {
  count: number;
  /** How the count was found, for the error message. */
  source: string;
}

export function countGpus(env: NodeJS.ProcessEnv = process.env): GpuCount {
  let listed: number;
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    listed = out.split('\n').filter((l) => l.startsWith('GPU ')).length;
  } catch {
    return { count: 0, source: 'nvidia-smi is not installed or found no GPU' };
  }
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) {
    const n = visible.trim() === '' ? 0 : visible.split(',').filter((d) => d.trim() !== '' && d.trim() !== '-1').length;
    return { count: Math.min(n, listed), source: `nvidia-smi lists ${listed}, CUDA_VISIBLE_DEVICES=${visible}` };
  }
  return { count: listed, source: `nvidia-smi lists ${listed}` };
}

/** --mpi_np N: one process per GPU. 1 (the default) runs one process on whatever device the conf picks. */
export function checkMpiNp(n: number, gpus: () => GpuCount = countGpus): void {
  if (!Number.isInteger(n) || n < 1) throw badInput(`--mpi_np ${n} is not a process count`, 'pass --mpi_np 1 (one process) or the number of GPUs to split the model across');
  if (n === 1) return;
  const found = gpus();
  if (n > found.count) {
    throw badInput(
      `--mpi_np ${n} needs ${n} GPUs, but ${found.count} ${found.count === 1 ? 'is' : 'are'} available (${found.source})`,
      found.count === 0 ? 'drop --mpi_np (one process serves on the CPU or one GPU)' : `pass --mpi_np ${found.count} or less`,
    );
  }
}
