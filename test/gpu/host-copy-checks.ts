// A CUDA engine keeps no host copy of its weights once they are on the GPU: loaded mapped (the
// default), /proc/self/maps no longer lists its weights file, which a CPU load of the same
// checkpoint still maps; loaded with useMmap false, the process's RSS has not grown by the weights'
// size, which the same CPU load's has. use_mlock on the GPU locks nothing and warns of nothing.
// The engine still generates after its host copy is gone. Shared by model-parity.test.ts and
// scripts/gpu/parity.ts.
import { readFileSync, realpathSync } from 'node:fs';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions } from '../../src/engine/types.js';
import { greedy, run } from '../native/helpers.js';
import { bulkyCheckpoint } from './bulky-checkpoint.js';
import { checkRecorder, type CheckOutcome } from './parity-checks.js';

const MiB = 1 << 20;
const limits: LoadOptions = { maxSeqLen: 64, maxTokensInPagedKvCache: 256, maxBatchSize: 1 };

/** Whether this process maps `file` now. */
const mapsFile = (file: string) => readFileSync('/proc/self/maps', 'utf8').split('\n').some((line) => line.endsWith(` ${file}`));
/** Resident memory of this process, in bytes. */
const rss = () => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;

/** The RSS the load of `opts` added, measured with its engine open; `use` runs on it before it closes. */
async function loadGrowth(dir: string, opts: LoadOptions, use: (e: Engine) => Promise<void> = async () => {}): Promise<number> {
  const before = rss();
  const engine = await loadEngine(dir, { ...limits, ...opts });
  try {
    const grown = rss() - before;
    await use(engine);
    return grown;
  } finally {
    await engine.close();
  }
}

export async function hostCopyChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const ckpt = bulkyCheckpoint();
  // /proc/self/maps names the file by its real path.
  const file = realpathSync(ckpt.file);

  const cpu = await loadEngine(ckpt.dir, { ...limits, device: 'cpu' });
  try {
    add('a CPU load maps the weights file (control)', mapsFile(file), `${file} listed: ${mapsFile(file)}, hostCopyReleased ${cpu.info.weights?.hostCopyReleased}`);
  } finally {
    await cpu.close();
  }
  const gpu = await loadEngine(ckpt.dir, { ...limits, device: 'cuda', useMlock: true });
  try {
    const w = gpu.info.weights;
    add('a CUDA load unmaps the weights file once they are uploaded', !mapsFile(file) && w?.hostCopyReleased === true,
      `${file} listed: ${mapsFile(file)}, weights ${JSON.stringify(w)}`);
    add('use_mlock on the GPU locks nothing and warns of nothing', w?.lockAsked === true && !w.locked && w.lockWarning === undefined, JSON.stringify(w));
    const r = await run(gpu, { tokens: [1, 2, 3], sampling: greedy, maxTokens: 4, ignoreEos: true });
    add('a CUDA engine without its host copy generates', r.tokens.length === 4, `${r.tokens.length} tokens`);
  } finally {
    await gpu.close();
  }

  // Read into memory: the CPU runner keeps the bytes (the control shows RSS sees them), the CUDA one
  // lets them go. The CUDA context, whose host memory is not what is measured, exists by now.
  const cpuGrowth = await loadGrowth(ckpt.dir, { device: 'cpu', useMmap: false });
  add('a CPU load with useMmap false holds the weights in RSS (control)', cpuGrowth >= 0.9 * ckpt.bytes, `RSS grew ${mib(cpuGrowth)} for ${mib(ckpt.bytes)} of weights`);
  let released: boolean | undefined;
  const gpuGrowth = await loadGrowth(ckpt.dir, { device: 'cuda', useMmap: false }, async (e) => {
    released = e.info.weights?.hostCopyReleased;
  });
  add('a CUDA load with useMmap false leaves no RSS the size of the weights', gpuGrowth < 0.25 * ckpt.bytes && released === true,
    `RSS grew ${mib(gpuGrowth)} for ${mib(ckpt.bytes)} of weights; hostCopyReleased ${released}`);
  return out;
}
