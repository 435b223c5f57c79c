// The CUDA backend against transformers and the CPU backend (test/gpu/parity-checks.ts), with
// bf16 and quantized KV caches (test/gpu/kv-checks.ts), real head sizes (wide-head-checks.ts) and
// quantized engines (quant-checks.ts), builds calibrated on the GPU (calibration-checks.ts). Runs
// where the addon was built with CUDA and a GPU is visible (scripts/gpu/run.sh runs the same
// checks on the GPU machine); skipped everywhere else, including CI, which has no GPU.
import { describe, expect, it } from 'vitest';
import { loadEngine, probeAddon } from '../../src/engine/index.js';
import { checkpoint } from '../helpers/fixtures.js';
import { badSequenceChecks } from './bad-sequence-checks.js';
import { calibrationChecks } from './calibration-checks.js';
import { embeddingChecks } from './embedding-checks.js';
import { scoreChecks } from './score-checks.js';
import { penaltyChecks } from './penalty-checks.js';
import { deviceRuleChecks } from './device-rule-checks.js';
import { speculativeChecks } from './speculative-checks.js';
import { kvCacheChecks } from './kv-checks.js';
import { hostCopyChecks } from './host-copy-checks.js';
import { loadCancelChecks } from './load-cancel-checks.js';
import { loraChecks } from './lora-checks.js';
import { moeChecks } from './moe-checks.js';
import { gpuParityChecks, type CheckOutcome } from './parity-checks.js';
import { quantizedEngineChecks } from './quant-checks.js';
import { thinkBudgetChecks } from './think-budget-checks.js';
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

// Each suite returns one outcome per check; a test passes when none failed.
const suites: [string, () => Promise<CheckOutcome[]>][] = [
  ['matches transformers and the CPU backend on the tiny fixtures', () => gpuParityChecks()],
  ['runs Qwen3-MoE (bf16, int8_wo, int4_awq, fp8 and int8_sq experts) like transformers and the CPU backend', () => moeChecks()],
  ['runs fp8 and int8 KV caches like the CPU backend with the same scales', () => kvCacheChecks()],
  ['runs real head sizes (64, 128) and long contexts like the CPU backend', () => wideHeadChecks()],
  ['runs int8_wo, int4_awq, fp8 and int8_sq engines like the CPU backend, alone and in a batch of 24', () => quantizedEngineChecks()],
  ['frees what a cancelled load took', () => loadCancelChecks()],
  ['keeps no host copy of the weights once they are on the GPU', () => hostCopyChecks()],
  ['forces the think block closed at its budget among GPU-sampled rows', () => thinkBudgetChecks()],
  ['bans token sequences among GPU-sampled rows', () => badSequenceChecks()],
  ['returns the final norm rows of embedding requests like the CPU backend', () => embeddingChecks()],
  ['scores like transformers and the CPU backend', () => scoreChecks()],
  ['calibrates and verifies builds like the CPU backend', () => calibrationChecks()],
  ['decodes speculatively like the plain GPU run, drafted rows beside GPU-sampled ones', () => speculativeChecks()],
  ['draws penalized rows on the GPU as the host sampler does, drafted rows included', () => penaltyChecks()],
  ['draws rows with bans, logit bias, min_tokens and grammar masks on the GPU as the host sampler does', () => deviceRuleChecks()],
  ['runs LoRA adapters like transformers + peft and the CPU backend, mixed in one batch with the base model', () => loraChecks()],
];

describe.skipIf(!hasGpu)('CUDA backend parity', () => {
  for (const [name, checks] of suites)
    it(name, async () => {
      const failed = (await checks()).filter((c) => !c.pass);
      expect(failed).toEqual([]);
    }, 600_000);
});
