// The GPU parity checks of test/gpu/parity-checks.ts (bf16 cache), test/gpu/kv-checks.ts
// (fp8 / int8 caches), test/gpu/wide-head-checks.ts (head_dim 64 / 128) and
// test/gpu/quant-checks.ts (int8_wo / int4_awq / fp8 / int8_sq engines) and
// test/gpu/load-cancel-checks.ts (a cancelled load frees its GPU memory) and
// test/gpu/host-copy-checks.ts (no host copy of the weights once they are on the GPU) and
// test/gpu/think-budget-checks.ts (a forced step among GPU-sampled rows) and
// test/gpu/bad-sequence-checks.ts (sequence bans among GPU-sampled rows) and
// test/gpu/embedding-checks.ts (embedding requests: the head's input rows) and
// test/gpu/score-checks.ts (scoring requests: the last logit row) and
// test/gpu/calibration-checks.ts (a build's calibration and report on the GPU) and
// test/gpu/speculative-checks.ts (drafted steps among GPU-sampled rows) and
// test/gpu/penalty-checks.ts (penalties drawn on the GPU) and
// test/gpu/device-rule-checks.ts (bans, biases and grammar masks drawn on the GPU) and
// test/gpu/lora-checks.ts (LoRA adapters) and
// test/gpu/moe-checks.ts (Qwen3-MoE's experts) without vitest (the
// GPU machine has no dev dependencies): prints one line per check, exits 1 when any fails.
//   node .carry/js/gpu-parity.mjs   (bundled by scripts/gpu/pack-node.sh)
import { kvCacheChecks } from '../../test/gpu/kv-checks.js';
import { loadCancelChecks } from '../../test/gpu/load-cancel-checks.js';
import { hostCopyChecks } from '../../test/gpu/host-copy-checks.js';
import { badSequenceChecks } from '../../test/gpu/bad-sequence-checks.js';
import { calibrationChecks } from '../../test/gpu/calibration-checks.js';
import { embeddingChecks } from '../../test/gpu/embedding-checks.js';
import { scoreChecks } from '../../test/gpu/score-checks.js';
import { speculativeChecks } from '../../test/gpu/speculative-checks.js';
import { penaltyChecks } from '../../test/gpu/penalty-checks.js';
import { deviceRuleChecks } from '../../test/gpu/device-rule-checks.js';
import { gpuParityChecks, type CheckOutcome } from '../../test/gpu/parity-checks.js';
import { loraChecks } from '../../test/gpu/lora-checks.js';
import { moeChecks } from '../../test/gpu/moe-checks.js';
import { quantizedEngineChecks } from '../../test/gpu/quant-checks.js';
import { thinkBudgetChecks } from '../../test/gpu/think-budget-checks.js';
import { wideHeadChecks } from '../../test/gpu/wide-head-checks.js';

const log = (l: string) => console.log(l);
// GPU_PARITY_ONLY=moe,kv,...: those groups alone (a shorter device call for one change).
const groups: Record<string, (log: (l: string) => void) => Promise<CheckOutcome[]>> = {
  dense: (l) => gpuParityChecks(l), moe: moeChecks, kv: kvCacheChecks, wideHead: wideHeadChecks, quantized: quantizedEngineChecks,
  loadCancel: loadCancelChecks, hostCopy: hostCopyChecks, thinkBudget: thinkBudgetChecks, badSequence: badSequenceChecks,
  embedding: embeddingChecks, score: scoreChecks, calibration: calibrationChecks, speculative: speculativeChecks,
  penalty: penaltyChecks, deviceRule: (l) => deviceRuleChecks(l), lora: loraChecks,
};
const only = process.env.GPU_PARITY_ONLY?.split(',').filter(Boolean);
const unknown = (only ?? []).filter((g) => !(g in groups));
if (unknown.length) {
  console.error(`GPU_PARITY_ONLY: no group ${unknown.join(', ')} (groups: ${Object.keys(groups).join(', ')})`);
  process.exit(2);
}
const results: CheckOutcome[] = [];
for (const [name, run] of Object.entries(groups)) {
  if (!only || only.includes(name)) results.push(...(await run(log)));
}
const failed = results.filter((r) => !r.pass);
console.log(`${results.length} GPU parity checks, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
