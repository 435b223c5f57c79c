// An int8_wo Qwen3-MoE engine on the CUDA backend: tiny-moe built as `grpst build --qformat
// int8_wo` makes it (experts int8 with per-channel scales, routers bf16), loaded with device cuda
// and with device cpu. Per prompt, the GPU's prompt logprobs against the CPU backend on the same
// engine within the bounds of the dense int8_wo engines (quant-checks.ts), and greedy tokens equal
// until a near-tie; device "auto" takes the GPU for it. Run by moe-checks.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../../src/engine/engine.js';
import { loadEngine } from '../../src/engine/load.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, showDistance, within, type CheckOutcome } from './parity-checks.js';
import { buildForChecks } from './quant-build.js';
import { BOUND, compare, NEAR_TIE } from './quant-checks.js';

const limits: LoadOptions = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
const greedy = { ...defaultSampling, temperature: 0 };
const STEPS = 24;

export async function moeInt8Checks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const work = mkdtempSync(join(tmpdir(), 'grpst-moe-int8-'));
  const tag = 'tiny-moe int8_wo';
  const opened: Engine[] = [];
  try {
    const dir = join(work, 'engine');
    // Calibration-free format; the report and the engine's bytes do not depend on the build's device.
    await buildForChecks({ model_dir: checkpoint('tiny-moe'), output_dir: dir, qformat: 'int8_wo', eval_tokens: 64, max_batch_size: 8, device: 'cpu' }, 'moe-int8-checks');
    const gpu = await loadEngine(dir, { ...limits, device: 'cuda' });
    opened.push(gpu);
    const cpu = await loadEngine(dir, { ...limits, device: 'cpu' });
    opened.push(cpu);
    add(`${tag}: the GPU engine runs it`, gpu.info.device === 'cuda', `${gpu.info.device}: ${gpu.info.kernels}`);
    const auto = await loadEngine(dir, { ...limits, device: 'auto' });
    opened.push(auto);
    add(`${tag}: device "auto" takes the GPU`, auto.info.device === 'cuda', `device ${auto.info.device}`);
    const b = BOUND.int8_wo;
    for (const p of refs('tiny-moe').prompts) {
      const req: SubmitRequest = { tokens: p.prompt_ids, sampling: greedy, maxTokens: STEPS, logprobs: 2, promptLogprobs: true, ignoreEos: true };
      const g = await run(gpu, req);
      const h = await run(cpu, req);
      const d = compare(g, h);
      add(`${tag} ${p.name} prompt logprobs vs the CPU backend`, d.prompt.n > 0 && within(d.prompt, b), `${d.prompt.n} positions, ${showDistance(d.prompt, b)}`);
      const n = Math.min(nearTie(g.margins, NEAR_TIE.int8_wo), nearTie(h.margins, NEAR_TIE.int8_wo));
      add(`${tag} ${p.name} greedy tokens vs the CPU backend`, g.tokens.length === STEPS && equalPrefix(g.tokens, h.tokens, n), `${n} tokens before a near-tie`);
    }
  } catch (err) {
    add(`${tag} ran`, false, err instanceof Error ? err.message : String(err));
  } finally {
    for (const e of opened) await e.close();
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
