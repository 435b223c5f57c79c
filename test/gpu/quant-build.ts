// What the GPU checks of quantized engines share: a random checkpoint shaped for the GPU's paths
// (hidden 128 and intermediate 384: int4 groups of 64, which the streaming GEMV takes; head_dim 64:
// the tensor-core decode attention), and `grpst build` run on it in-process.
import { join } from 'node:path';
import { runBuild, type BuildSummary } from '../../src/build/index.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { writeTinyCheckpoint } from '../../src/model/tiny-checkpoint.js';
import { repoRoot, specFile, tokenizerDir } from '../helpers/fixtures.js';

export function writeGpuShapedCheckpoint(dir: string, seed: number): void {
  const spec = {
    ...specFile().checkpoints['tiny-a'], seed, hidden_size: 128, intermediate_size: 384,
    num_attention_heads: 2, num_key_value_heads: 1, head_dim: 64, tie_word_embeddings: false,
  };
  writeTinyCheckpoint(dir, spec, specFile().vocab_size, specFile().init, { tokenizerDir });
}

/** `grpst build` with `settings` (groups of 64 unless given), reporting to memory. */
export async function buildForChecks(settings: BuildSettingsInput, version: string): Promise<BuildSummary> {
  // The calibration and held-out texts by their paths in the working tree: a bundled copy of this
  // file cannot find the build's shipped ones relative to itself.
  const s = resolveSettings({}, {
    awq_block_size: 64,
    calib_dataset: join(repoRoot, 'data', 'calibration.txt'),
    eval_dataset: join(repoRoot, 'data', 'heldout.txt'),
    ...settings,
  });
  return runBuild(s, { reporter: new MemoryReporter(), version, bridge: loadRuntimeBridge });
}
