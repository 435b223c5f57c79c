// The CUDA backend against transformers and the CPU backend (test/gpu/parity-checks.ts), with
// bf16 and quantized KV caches (test/gpu/kv-checks.ts), real head sizes (wide-head-checks.ts) and
// quantized engines (quant-checks.ts). Runs
// where the addon was built with CUDA and a GPU is visible (scripts/gpu/run.sh runs the same
// checks on the GPU machine); skipped everywhere else, including CI, which has no GPU.
import { describe, expect, it } from 'vitest';
import { loadEngine, probeAddon } from '../../src/engine/index.js';
import { checkpoint } from '../helpers/fixtures.js';
import { kvCacheChecks } from './kv-checks.js';
import { gpuParityChecks } from './parity-checks.js';
import { quantizedEngineChecks } from './quant-checks.js';
import { wideHeadChecks } from './wide-head-checks.js';

async function gpuAvailable(): Promise<boolean> {
  try {
    if (!probeAddon().cuda) return false;
  } catch {
    return false;
  }
  try {
    const e = await loadEngine(checkpoint('tiny-a'), { device: 'cuda', maxSeqLen: 64, maxTokensInPagedKvCache: 256 });
    await e.close();
    return true;
  } catch (err) {
    // Only "no GPU here" skips; any other failure of the CUDA backend must fail the test.
    if (err instanceof Error && err.message.includes('device "cuda" is not available')) return false;
    throw err;
  }
}
const hasGpu = await gpuAvailable();

describe.skipIf(!hasGpu)('CUDA backend parity', () => {
  it('matches transformers and the CPU backend on the tiny fixtures', async () => {
    const failed = (await gpuParityChecks()).filter((c) => !c.pass);
    expect(failed).toEqual([]);
  }, 600_000);

  it('runs fp8 and int8 KV caches like the CPU backend with the same scales', async () => {
    const failed = (await kvCacheChecks()).filter((c) => !c.pass);
    expect(failed).toEqual([]);
  }, 600_000);

  it('runs real head sizes (64, 128) and long contexts like the CPU backend', async () => {
    const failed = (await wideHeadChecks()).filter((c) => !c.pass);
    expect(failed).toEqual([]);
  }, 600_000);

  it('runs int8_wo, int4_awq, fp8 and int8_sq engines like the CPU backend, alone and in a batch of 24', async () => {
    const failed = (await quantizedEngineChecks()).filter((c) => !c.pass);
    expect(failed).toEqual([]);
  }, 600_000);
});
