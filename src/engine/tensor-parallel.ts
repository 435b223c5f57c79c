// Tensor-parallel engines from the runtime's side: the NCCL bootstrap id, the body of a rank > 0
// process (src/daemon/tp-worker.ts), and every rank in this one process on the CPU (tests, and
// checking a sharded build on a machine without GPUs). Rank 0 of a GPU group loads through
// loadEngineFolder(path, opts, { ncclId }).
import { badInput, missingTool } from '../util/errors.js';
import { loadAddon, probeAddon } from './addon.js';
import { Engine } from './engine.js';
import { folderNativeOptions, readEngineFolder } from './engine-folder.js';
import type { LoadOptions } from './types.js';

const ncclHint = 'rebuild the runtime on the GPU machine with NCCL installed (nccl.h and libnccl, e.g. apt-get install libnccl-dev, or NCCL_HOME) and the CUDA toolkit: npm run build:native';

/** Why this runtime cannot run a tensor-parallel engine across GPUs, or undefined when it can. */
export function tensorParallelUnavailable(): string | undefined {
  const p = probeAddon();
  if (!p.cuda) return 'this build of the native runtime has no CUDA backend';
  if (!p.nccl) return 'this build of the native runtime has no NCCL';
  return undefined;
}

/** A new group's NCCL id (hex); rank 0 makes it and hands it to the other ranks. */
export function ncclUniqueId(): string {
  const why = tensorParallelUnavailable();
  const addon = loadAddon();
  if (why || !addon.ncclUniqueId) throw missingTool(`a tensor-parallel engine runs one process per GPU over NCCL, but ${why ?? 'this runtime predates it'}`, ncclHint);
  return addon.ncclUniqueId();
}

/**
 * Rank `rank` (> 0) of the engine at `path`: maps only this rank's shard, joins the group and
 * replays rank 0's steps. Resolves when rank 0 closes its engine.
 */
export async function runTensorParallelRank(path: string, rank: number, ncclId: string, opts: LoadOptions): Promise<void> {
  const folder = readEngineFolder(path);
  if (!Number.isInteger(rank) || rank < 1 || rank >= folder.tpSize) {
    throw badInput(`rank ${rank} is not a worker rank of ${folder.dir} (tp_size ${folder.tpSize})`, `pass a rank from 1 to ${folder.tpSize - 1}`);
  }
  const addon = loadAddon();
  if (!addon.runTensorParallelWorker) throw missingTool('this build of the native runtime predates tensor parallelism', ncclHint);
  await addon.runTensorParallelWorker(folder.model, folder.rankTensors[rank], folderNativeOptions(folder, opts), { rank, size: folder.tpSize, ncclId });
}

/**
 * Every rank of a tensor-parallel engine in this process, on the CPU, joined by an in-process group
 * instead of NCCL: the same sharded forward and the same leader / follower protocol as on GPUs.
 */
export async function loadTensorParallelOnCpu(path: string, opts: LoadOptions = {}): Promise<Engine> {
  const folder = readEngineFolder(path);
  const options = folderNativeOptions(folder, { ...opts, device: 'cpu' });
  options.tensorParallel = { size: folder.tpSize, rankTensors: folder.rankTensors };
  return Engine.create(loadAddon(), folder.model, folder.tensors, options, folder.dir, undefined, { embeddingOnly: folder.manifest.source.embedding_only });
}
