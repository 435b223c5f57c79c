// Qwen3-MoE on the CUDA backend (bf16 experts; quantized ones: moe-quant-checks.ts), through the real runtime: the tiny MoE fixtures
// (tiny-moe: top 2 of 8 experts renormalised, a dense layer between sparse ones; tiny-moe-b: top
// 3 of 6 not renormalised, every second layer sparse, untied head) take the dense fixtures'
// checks (parity-checks.ts: prompt logprobs against transformers within the bf16 tolerance, greedy
// tokens equal to transformers' and the CPU backend's until a near-tie, CUDA graphs on = off,
// GPU-drawn = host-drawn, batched = one by one); device "auto" takes the GPU for them; the
// tensor-core expert tiles that steps of many tokens take (moe_experts_wide) give the prompts the
// tile kernel's logprobs and, taken for every step, its greedy tokens; int8_wo, int4_awq, fp8 and
// int8_sq engines match the CPU backend (moe-quant-checks.ts); and calibration on the GPU matches
// the CPU's, experts included (moe-calibration-checks.ts).
// Shared by model-parity.test.ts and scripts/gpu/parity.ts.
import { loadEngine } from '../../src/engine/load.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { moeCalibrationChecks } from './moe-calibration-checks.js';
import { moeQuantChecks } from './moe-quant-checks.js';
import {
  checkRecorder, distance, equalPrefix, gpuParityChecks, nearTie, routerNearTies, run, TOL_MAX_LOGPROB, TOL_MEAN_LOGPROB,
  withEnv, withoutPositions, type CheckOutcome,
} from './parity-checks.js';

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

  // The expert path by step size (GRPST_CUDA_MOE_WIDE_MIN_TOKENS, read when an engine loads): the
  // default (wide tiles from kMoeWideMinTokens = 64 tokens), the tile kernel for every step (0),
  // the wide tiles for every step (1). The prompts' prefill takes the wide tiles by default where
  // they are 64 tokens or more; logprobs compared as the transformers check compares them.
  for (const name of MOE) {
    const engines = [];
    try {
      for (const v of [undefined, '0', '1']) engines.push(await withEnv('GRPST_CUDA_MOE_WIDE_MIN_TOKENS', v, () =>
        loadEngine(checkpoint(name), { ...limits, device: 'cuda' })));
      const [byDefault, tiles, wide] = engines;
      const prompts = refs(name).prompts;
      add(`${name} a prompt reaches the wide tiles (64 tokens or more)`, prompts.some((p) => p.prompt_ids.length >= 64),
        `prompt lengths ${prompts.map((p) => p.prompt_ids.length).join(', ')}`);
      for (const p of prompts) {
        const req: SubmitRequest = { tokens: p.prompt_ids, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 16,
          logprobs: 2, promptLogprobs: true };
        const [d, t, w] = [await run(byDefault, req), await run(tiles, req), await run(wide, req)];
        const nearTies = routerNearTies(p);
        const all = distance(d.promptLogprobs, t.promptLogprobs);
        const kept = distance(...withoutPositions(d.promptLogprobs, t.promptLogprobs, nearTies));
        add(`${name}/${p.name} prompt logprobs: wide tiles = tile kernel`,
          all.n > 0 && kept.max <= TOL_MAX_LOGPROB && all.mean <= TOL_MEAN_LOGPROB,
          `max ${kept.max.toFixed(4)} over ${kept.n} positions (${nearTies.size} router near-ties left out; with them ${all.max.toFixed(4)}), mean ${all.mean.toFixed(4)}`);
        const n = Math.min(nearTie(t.margins), nearTie(w.margins));
        add(`${name}/${p.name} greedy tokens: wide tiles for every step = tile kernel`, equalPrefix(w.tokens, t.tokens, n),
          `${n} tokens before a near-tie`);
      }
    } catch (err) {
      add(`${name} wide tiles against the tile kernel`, false, err instanceof Error ? err.message : String(err));
    } finally {
      for (const e of engines) await e.close();
    }
  }

  for (const qformat of ['int8_wo', 'int4_awq', 'fp8', 'int8_sq'] as const) out.push(...(await moeQuantChecks(qformat, log)));
  out.push(...(await moeCalibrationChecks(log)));
  return out;
}

