// Qwen3-MoE on the CUDA backend (bf16 experts), through the real runtime: the tiny MoE fixtures
// (tiny-moe: top 2 of 8 experts renormalised, a dense layer between sparse ones; tiny-moe-b: top
// 3 of 6 not renormalised, every second layer sparse, untied head) take the dense fixtures'
// checks (parity-checks.ts: prompt logprobs against transformers within the bf16 tolerance, greedy
// tokens equal to transformers' and the CPU backend's until a near-tie, CUDA graphs on = off,
// GPU-drawn = host-drawn, batched = one by one); device "auto" takes the GPU for them; and a
// quantized MoE engine on device "cuda" is refused, naming its format and where it runs.
// Shared by model-parity.test.ts and scripts/gpu/parity.ts.
import { loadAddon } from '../../src/engine/addon.js';
import { Engine } from '../../src/engine/engine.js';
import { loadEngine, nativeOptions } from '../../src/engine/load.js';
import { checkpointTensorTable } from '../../src/engine/tensor-table.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { checkpoint, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, gpuParityChecks, type CheckOutcome } from './parity-checks.js';

const MOE: CheckpointName[] = ['tiny-moe', 'tiny-moe-b'];
const limits = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };

export async function moeChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  out.push(...(await gpuParityChecks(log, MOE)));

  for (const name of MOE) {
    try {
      const e = await loadEngine(checkpoint(name), { ...limits, device: 'auto' });
      add(`${name} device "auto" takes the GPU`, e.info.device === 'cuda', `device ${e.info.device}`);
      await e.close();
    } catch (err) {
      add(`${name} device "auto" takes the GPU`, false, err instanceof Error ? err.message : String(err));
    }
  }

  // An engine folder's quantization reaches the runner's choice as it does here: the refusal comes
  // before any weight is read, so the bf16 checkpoint's tensors stand in for the engine's.
  const dir = checkpoint('tiny-moe');
  const ckpt = openCheckpoint(dir);
  for (const scheme of ['int8_wo', 'int4_awq', 'fp8', 'int8_sq']) {
    let message = '';
    try {
      const e = await Engine.create(loadAddon(), ckpt.model, checkpointTensorTable(ckpt),
        nativeOptions({ ...limits, device: 'cuda' }, scheme), dir);
      await e.close();
    } catch (err) {
      message = err instanceof Error ? err.message : String(err);
    }
    const pass = message.includes(`quantized (${scheme})`) && message.includes('bf16 Qwen3-MoE engines run on CUDA') &&
      message.includes('CPU backend');
    add(`a ${scheme} Qwen3-MoE engine on device "cuda" is refused by name`, pass, message || 'loaded');
  }
  return out;
}
