// The quantized-format CPU kernels at every instruction-set level this CPU runs (AVX-512, AVX2,
// scalar) give the same distributions on real engines: each level is its own code path.
// Measured here: weight-only formats agree to ~3e-5 in every logprob; fp8 to ~3e-4.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/build/index.js';
import { resolveSettings } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { loadAddon } from '../../src/engine/addon.js';
import { writeTinyCheckpoint } from '../../src/model/tiny-checkpoint.js';
import { checkpoint, specFile, tokenizerDir } from '../helpers/fixtures.js';

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-kernels-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function logprobs(dir: string, level: string, tokens: Int32Array): Promise<Float32Array> {
  const saved = process.env.GRPST_CPU_KERNELS;
  process.env.GRPST_CPU_KERNELS = level;
  try {
    const scorer = await (await loadRuntimeBridge()).openScorer(dir);
    let rows: Float32Array = new Float32Array(0);
    await scorer.logprobs(tokens, (_, r) => (rows = r));
    await scorer.close();
    return rows;
  } finally {
    if (saved === undefined) delete process.env.GRPST_CPU_KERNELS;
    else process.env.GRPST_CPU_KERNELS = saved;
  }
}

describe('quantized kernels at every CPU level', () => {
  const levels = (loadAddon() as unknown as { probe(): { cpuKernels: string[] } }).probe().cpuKernels;

  // The first level's logprobs against every other level's on the engine in `out`.
  async function expectLevelsAgree(out: string, qformat: string): Promise<void> {
    const tokens = Int32Array.from({ length: 40 }, (_, i) => 1000 + ((i * 7919) % 5000));
    const best = await logprobs(out, levels[0], tokens);
    for (const level of levels.slice(1)) {
      const other = await logprobs(out, level, tokens);
      let worst = 0;
      let sum = 0;
      let n = 0;
      for (let i = 0; i < best.length; i++) {
        if (best[i] <= -20) continue;
        const d = Math.abs(best[i] - other[i]);
        worst = Math.max(worst, d);
        sum += d;
        n++;
      }
      const what = `${qformat} ${levels[0]} vs ${level}`;
      if (qformat === 'int8_sq') {
        // Per-token int8 activations are a step function: the other levels' float kernels
        // (norms, attention) differ in the last bits, so a value next to a rounding boundary can
        // land one step apart. That moves a few logprobs visibly and the mean hardly at all; a
        // wrong kernel moves every one.
        expect(sum / n, what).toBeLessThan(2e-3);
        expect(worst, what).toBeLessThan(0.5);
      } else {
        expect(worst, what).toBeLessThan(2e-3);
      }
    }
  }

  it.each(['int8_wo', 'int4_awq', 'fp8', 'int8_sq'])('%s: the levels agree', async (qformat) => {
    const out = join(work, qformat);
    const s = resolveSettings({}, { model_dir: checkpoint('tiny-b'), output_dir: out, qformat: qformat as 'int8_wo', awq_block_size: 16, eval_tokens: 2 });
    await runBuild(s, { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
    await expectLevelsAgree(out, qformat);
  });

  it.each([128, 64])('int4_awq in groups of %i (the nibbles\' order on AVX-512): the levels agree', async (group) => {
    // Every projection's input a multiple of 128 wide: hidden 128, intermediate 384, 2 x 64 heads.
    const model = join(work, `ckpt-${group}`);
    const spec = {
      ...specFile().checkpoints['tiny-a'], seed: 7, hidden_size: 128, intermediate_size: 384,
      num_attention_heads: 2, num_key_value_heads: 1, head_dim: 64,
    };
    writeTinyCheckpoint(model, spec, specFile().vocab_size, specFile().init, { tokenizerDir });
    const out = join(work, `int4_awq-${group}`);
    const s = resolveSettings({}, { model_dir: model, output_dir: out, qformat: 'int4_awq', awq_block_size: group, eval_tokens: 2 });
    await runBuild(s, { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
    await expectLevelsAgree(out, 'int4_awq');
  });
});
