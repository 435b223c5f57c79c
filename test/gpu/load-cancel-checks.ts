// A CUDA load stopped through its AbortSignal frees what it took (device memory, stream, cuBLASLt
// workspace, pinned buffers, the weights uploaded so far): repeated cancelled loads, stopped before
// the upload or inside it, leave the GPU's free memory where it was, and the runtime still loads
// and generates after them.
import { defaultSampling } from '../../src/engine/types.js';
import { loadAddon, loadEngine, LoadCancelled } from '../../src/engine/index.js';
import { checkpoint } from '../helpers/fixtures.js';
import { run } from '../native/helpers.js';
import { checkRecorder, type CheckOutcome } from './parity-checks.js';

const MiB = 1 << 20;

export async function loadCancelChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const addon = loadAddon();
  const dir = checkpoint('tiny-b');
  const opts = { device: 'cuda' as const, maxSeqLen: 64, maxTokensInPagedKvCache: 256 };
  // A first load creates the CUDA context; its memory is not what is measured.
  await (await loadEngine(dir, opts)).close();
  const before = addon.gpuFreeMemory(0);
  const rounds = 8;
  let cancelled = 0;
  for (let i = 0; i < rounds; i++) {
    const err = await loadEngine(dir, opts, AbortSignal.abort()).then(() => undefined, (e: unknown) => e);
    if (err instanceof LoadCancelled) cancelled++;
    else add('cancelled load', false, `round ${i}: ${err === undefined ? 'the load finished' : String(err)}`);
  }
  const after = addon.gpuFreeMemory(0);
  // Each leaked runner would hold at least its 64 MiB cuBLASLt workspace.
  add('cancelled CUDA loads', cancelled === rounds, `${cancelled}/${rounds} rejected as LoadCancelled`);
  add('cancelled CUDA loads free their memory', before - after < 32 * MiB, `free ${(before / MiB).toFixed(0)} MiB before, ${(after / MiB).toFixed(0)} MiB after ${rounds} cancelled loads`);

  // Stopped inside the upload: every layer of tiny-b's upload takes layerMs (test hook), the stop
  // comes during its second layer, after the embeddings (29 MB) and a layer are on the GPU.
  const layerMs = 150;
  const uploadRounds = 4;
  let midUpload = 0;
  const elapsed: number[] = [];
  process.env.GRPST_TEST_UPLOAD_LAYER_DELAY_MS = String(layerMs);
  try {
    for (let i = 0; i < uploadRounds; i++) {
      const ctl = new AbortController();
      const t0 = performance.now();
      const timer = setTimeout(() => ctl.abort(), layerMs * 1.6);
      const err = await loadEngine(dir, opts, ctl.signal).then(() => undefined, (e: unknown) => e);
      clearTimeout(timer);
      const ms = performance.now() - t0;
      elapsed.push(Math.round(ms));
      // Rejected before the third layer's delay ended: the upload loop itself saw the flag.
      if (err instanceof LoadCancelled && ms < layerMs * 3) midUpload++;
    }
  } finally {
    delete process.env.GRPST_TEST_UPLOAD_LAYER_DELAY_MS;
  }
  const afterUpload = addon.gpuFreeMemory(0);
  add('loads stopped inside the CUDA upload', midUpload === uploadRounds, `${midUpload}/${uploadRounds} rejected as LoadCancelled within ${layerMs * 3} ms (${elapsed.join(', ')} ms)`);
  add('loads stopped inside the CUDA upload free their memory', before - afterUpload < 32 * MiB, `free ${(before / MiB).toFixed(0)} MiB before, ${(afterUpload / MiB).toFixed(0)} MiB after ${uploadRounds} more`);
  const engine = await loadEngine(dir, opts);
  try {
    const r = await run(engine, { tokens: [1, 2, 3], sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 4, ignoreEos: true });
    add('a load after cancelled ones generates', r.tokens.length === 4 && engine.info.device === 'cuda', `${r.tokens.length} tokens on ${engine.info.device}`);
  } finally {
    await engine.close();
  }
  return out;
}
