// sha256 of whole files, large ones on worker threads so that several hash at once and the main
// thread stays free: a Qwen3-32B checkpoint is 65 GB, which one thread hashes in about two minutes
// (570 MB/s on a Zen 4 core), time the build and `grpst start` used to wait on.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { eachLimited } from './each-limited.js';

/** Files smaller than this are hashed on the calling thread (a worker costs a few ms to start). */
const WORKER_MIN_BYTES = 64 * 2 ** 20;
const CHUNK = 8 * 2 ** 20;

// The worker's body as CommonJS source (eval: true), so it needs no file of its own next to the
// compiled or bundled module (a bundler may rename this module's imports; the source is literal).
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { closeSync, openSync, readSync } = require('node:fs');
try {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(workerData.chunk);
  const fd = openSync(workerData.file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(n === buf.length ? buf : buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  parentPort.postMessage({ hex: h.digest('hex') });
} catch (e) {
  parentPort.postMessage({ error: e && e.message ? e.message : String(e) });
}
`;

function hashOnWorker(file: string, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const worker = new Worker(workerSource, { eval: true, workerData: { file, chunk: CHUNK } });
    // Stopped when the caller gives up (a failed build), so the process need not wait for it to exit.
    const stop = () => void worker.terminate();
    signal?.addEventListener('abort', stop, { once: true });
    const settle = () => signal?.removeEventListener('abort', stop);
    worker.once('message', (m: { hex?: string; error?: string }) => {
      settle();
      if (m.hex) resolve(m.hex);
      else reject(new Error(`${file}: ${m.error}`));
    });
    worker.once('error', (e) => (settle(), reject(e)));
    worker.once('exit', (code) => (settle(), reject(signal?.aborted ? signal.reason : new Error(`hashing ${file}: worker exited with ${code}`))));
  });
}

/** sha256 (hex) of one file. */
export function sha256File(file: string): Promise<string> {
  return sha256Files([file]).then(([hex]) => hex);
}

/**
 * sha256 (hex) of each file, in the order given. Files of 64 MiB or more hash on worker threads,
 * up to `parallel` at once (default: the cores less one, at most 8); `signal` stops them.
 */
export async function sha256Files(
  files: readonly string[],
  opts: { parallel?: number; signal?: AbortSignal } = {},
): Promise<string[]> {
  const parallel = opts.parallel ?? Math.min(8, Math.max(1, availableParallelism() - 1));
  const out = new Array<string>(files.length);
  const large: number[] = [];
  files.forEach((f, i) => {
    if (statSync(f).size < WORKER_MIN_BYTES) out[i] = createHash('sha256').update(readFileSync(f)).digest('hex');
    else large.push(i);
  });
  await eachLimited(large.length, parallel, async (k) => {
    out[large[k]] = await hashOnWorker(files[large[k]], opts.signal);
  });
  return out;
}
