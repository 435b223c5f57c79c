// The CUDA backend against transformers and the CPU backend (test/gpu/parity-checks.ts). Runs
// where the addon was built with CUDA (a GPU machine: scripts/gpu/run.sh runs the same checks);
// skipped everywhere else, including CI, which has no GPU.
import { describe, expect, it } from 'vitest';
import { probeAddon } from '../../src/engine/index.js';
import { gpuParityChecks } from './parity-checks.js';

const hasCuda = (() => {
  try {
    return probeAddon().cuda;
  } catch {
    return false;
  }
})();

describe.skipIf(!hasCuda)('CUDA backend parity', () => {
  it('matches transformers and the CPU backend on the tiny fixtures', async () => {
    const failed = (await gpuParityChecks()).filter((c) => !c.pass);
    expect(failed).toEqual([]);
  }, 600_000);
});
