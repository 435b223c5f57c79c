// How far a Qwen3-MoE engine on CUDA reads from the CPU backend on the same engine, by router
// sharpness: tiny-moe's shape with routers 16x-64x the fixtures' bound (two seeds), int8_wo and bf16
// engines, the prompt logprobs of the tiny-moe prompts in one step and in 32-token steps. Prints
// max / mean per prompt and the positions that differ most. Run on the GPU machine after
// scripts/gpu/pack.sh --node: `SCRIPT=moe-flips bash scripts/gpu/run.sh script`
// (bench/results/gpu-h100/moe-int8-flips-h100.txt; what it showed: docs/moe-cuda.md).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEngine } from '../../src/engine/load.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { writeTinyCheckpoint } from '../../src/model/tiny-checkpoint.js';
import { refs, specFile, tokenizerDir } from '../../test/helpers/fixtures.js';
import { distance, run } from '../../test/gpu/parity-checks.js';
import { buildForChecks } from '../../test/gpu/quant-build.js';

const limits = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
const work = mkdtempSync(join(tmpdir(), 'diag-'));
const prompts = refs('tiny-moe').prompts;
const req = (p: { prompt_ids: number[] }): SubmitRequest => ({ tokens: p.prompt_ids, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 2, logprobs: 2, promptLogprobs: true, ignoreEos: true });
for (const scale of [16, 24, 32, 64]) {
  for (const seed of [4004, 5005]) {
    const ck = join(work, `ck${scale}-${seed}`);
    const init = specFile().init;
    writeTinyCheckpoint(ck, { ...specFile().checkpoints['tiny-moe'], seed }, specFile().vocab_size,
      { ...init, router: { ...init.linear, bound_times_sqrt_fan_in: init.linear.bound_times_sqrt_fan_in! * scale } }, { tokenizerDir });
    for (const q of ['int8_wo', 'full_prec']) {
      const dir = join(work, `${q}${scale}-${seed}`);
      await buildForChecks({ model_dir: ck, output_dir: dir, qformat: q, eval_tokens: 64, max_batch_size: 8, device: 'cpu' } as never, 'x');
      const cpu = await loadEngine(dir, { ...limits, device: 'cpu' });
      const base: Record<string, number[]> = {};
      for (const p of prompts) base[p.name] = (await run(cpu, req(p))).promptLogprobs;
      await cpu.close();
      for (const [name, opts] of [['one step', {}], ['32-token steps', { maxNumTokens: 32 }]] as [string, object][]) {
        const e = await loadEngine(dir, { ...limits, device: 'cuda', ...opts } as never);
        const parts = [];
        for (const p of prompts) {
          const g = (await run(e, req(p))).promptLogprobs;
          const b = base[p.name];
          const d = distance(g, b);
          const top = g.map((v, i) => [Math.abs(v - b[i]), i] as [number, number]).sort((x, y) => y[0] - x[0]).slice(0, 3);
          parts.push(`${p.name} ${d.max.toFixed(2)}/${d.mean.toFixed(3)} [${top.map(([v, i]) => `${i}:${v.toFixed(2)}`).join(' ')}]`);
        }
        console.log(`x${scale} seed ${seed} ${q} ${name}: ${parts.join('; ')}`);
        await e.close();
      }
    }
  }
}
