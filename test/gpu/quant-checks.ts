// Quantized engines (int8_wo, int4_awq, fp8 and int8_sq weights; each with its lm_head in bf16 and,
// as --quantize_lm_head makes it, in the same format) on the GPU through the real
// runtime: each built by the build pipeline, as `grpst build --qformat X` makes it, from a random
// checkpoint shaped for the GPU's paths (hidden 128 and intermediate 384: int4 groups of 64, which
// the streaming GEMV takes; head_dim 64: the tensor-core decode attention), then loaded with device
// cuda and with device cpu. Per prompt, the GPU's prompt logprobs against
// the CPU backend on the same engine and greedy tokens until a near-tie; then 24 requests at once
// against the same requests one by one. The batch puts 24 decode rows in a step (past the skinny
// kernel's 16 rows: the dequantized-weight and fp8 cuBLASLt GEMMs) and the 299-token prompt's
// prefill through the same GEMM paths; one request at a time takes the streaming GEMV.
// Shared by model-parity.test.ts and scripts/gpu/parity.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QFormat } from '../../src/build/options.js';
import type { Engine } from '../../src/engine/engine.js';
import { loadEngine } from '../../src/engine/load.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { refs } from '../helpers/fixtures.js';
import { buildForChecks, writeGpuShapedCheckpoint } from './quant-build.js';
import { checkRecorder, distance, equalPrefix, nearTie, run, showDistance, within, type Bound, type CheckOutcome, type Distance, type Outcome } from './parity-checks.js';

// GPU against CPU on the same quantized engine. Both dequantize the same codes; they differ in
// where bf16 rounding happens (the GPU keeps activations in bf16 as transformers does, the CPU in
// fp32), and for fp8 / int8_sq the activations are quantized too, where such a difference can move
// a value one code step. The weight-only formats take the wide-head checks' bounds, int8_sq those
// of the quantized KV caches (random-weight models with logits near |20|). Measured on an H200
// (worst prompt, max / mean): int8_wo 0.20 / 0.056, int4_awq 0.27 / 0.059, int8_sq 0.68 / 0.145.
// fp8 measured 1.76 / 0.43, and its three implementations are as far from one another: with
// prompts of up to 64 tokens prefilled by the skinny kernel instead of cuBLASLt, 1.04 / 0.43
// against the CPU and 1.08 / 0.34 against cuBLASLt's prefill: e4m3 activations (3 mantissa bits)
// turn any difference in rounding or summation order into code steps on these models. A wrong
// scale, group or layout moves logprobs by whole units.
export const BOUND: Record<Exclude<QFormat, 'full_prec'>, { max: number; mean: number }> = {
  int8_wo: { max: 0.6, mean: 0.15 },
  int4_awq: { max: 0.6, mean: 0.15 },
  fp8: { max: 3, mean: 0.6 },
  int8_sq: { max: 1.5, mean: 0.3 },
};
export const NEAR_TIE = { int8_wo: 0.25, int4_awq: 0.25, fp8: 0.5, int8_sq: 0.5 } as const;
const BATCH = 24;

const limits: LoadOptions = { maxSeqLen: 1024, maxTokensInPagedKvCache: 16384, maxBatchSize: 32 };
const greedy = { ...defaultSampling, temperature: 0 };

/** Prompt logprobs, and the top token's logprob at the decode steps both sides generated alike. */
export function compare(a: Outcome, b: Outcome): { prompt: Distance; decode: Distance } {
  let same = 0;
  while (same < a.tokens.length && same < b.tokens.length && a.tokens[same] === b.tokens[same]) same++;
  return { prompt: distance(a.promptLogprobs, b.promptLogprobs, a.promptLogprobs.length), decode: distance(a.chosen, b.chosen, same) };
}
const inBound = (d: Distance, b: Bound) => d.n > 0 && within(d, b);
const show = (d: Distance, b: Bound) => `${d.n} positions, ${showDistance(d, b)}`;

async function build(model: string, qformat: QFormat, out: string, quantizeLmHead: boolean): Promise<void> {
  await buildForChecks({
    model_dir: model, output_dir: out, qformat, calib_size: 16, eval_tokens: 64, quantize_lm_head: quantizeLmHead,
    // BATCH concurrent requests load with maxBatchSize 32: the engine must be built for it.
    max_batch_size: 32,
    // Calibrated on the CPU as these bounds were measured: the engine under test stays the same
    // bytes whichever device builds it (GPU calibration has its own checks, calibration-checks.ts).
    device: 'cpu',
  }, 'quant-checks');
}

export async function quantizedEngineChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const work = mkdtempSync(join(tmpdir(), 'grpst-quant-checks-'));
  try {
    const model = join(work, 'checkpoint');
    writeGpuShapedCheckpoint(model, 5005);
    const variants = (['int8_wo', 'int4_awq', 'fp8', 'int8_sq'] as const).flatMap((q) => [[q, false], [q, true]] as const);
    for (const [qformat, head] of variants) {
      const tag = `quant-checkpoint ${qformat}${head ? ' +lm_head' : ''}`;
      const dir = join(work, `${qformat}${head ? '-head' : ''}`);
      const opened: Engine[] = [];
      try {
        await build(model, qformat, dir, head);
        const gpu = await loadEngine(dir, { ...limits, device: 'cuda' });
        opened.push(gpu);
        const cpu = await loadEngine(dir, { ...limits, device: 'cpu' });
        opened.push(cpu);
        add(`${tag}: the GPU engine runs it`, gpu.info.device === 'cuda', `${gpu.info.device}: ${gpu.info.kernels}`);
        const prompts = refs('tiny-a').prompts;
        const reqs: SubmitRequest[] = prompts.map((p) => ({ tokens: p.prompt_ids, sampling: greedy, maxTokens: 24, logprobs: 2, promptLogprobs: true, ignoreEos: true }));
        const alone: Outcome[] = [];
        for (const [i, p] of prompts.entries()) {
          const g = await run(gpu, reqs[i]);
          const h = await run(cpu, reqs[i]);
          alone.push(g);
          const b = BOUND[qformat];
          const d = compare(g, h);
          add(`${tag} ${p.name} prompt logprobs vs the CPU backend`, inBound(d.prompt, b), show(d.prompt, b));
          const n = Math.min(nearTie(g.margins, NEAR_TIE[qformat]), nearTie(h.margins, NEAR_TIE[qformat]));
          // Decode steps compare along the tokens both sides chose; when the first step is a near-tie
          // they may part at once, and there is no common step to compare (only then).
          const parted = n === 0 && d.decode.n === 0 && g.tokens[0] !== h.tokens[0];
          add(`${tag} ${p.name} decode-step logprobs vs the CPU backend`, inBound(d.decode, b) || parted,
            parted ? `first step a near-tie (margin ${Math.min(g.margins[0], h.margins[0]).toFixed(3)}): the two parted there` : show(d.decode, b));
          add(`${tag} ${p.name} greedy tokens vs the CPU backend`, g.tokens.length === 24 && equalPrefix(g.tokens, h.tokens, n),
            `${n} tokens before a near-tie`);
        }
        // The batch against the same requests one by one on the GPU: other GEMM paths (decode rows
        // past 16), so the same bounds rather than equal bits.
        const batch = Array.from({ length: BATCH }, (_, i) => reqs[i % reqs.length]);
        const together = await Promise.all(batch.map((r) => run(gpu, r)));
        let worst: Distance = { max: 0, mean: 0, n: 0 };
        let tokensAgree = true;
        for (const [i, t] of together.entries()) {
          const a = alone[i % alone.length];
          const d = compare(t, a);
          for (const x of [d.prompt, d.decode]) if (x.max > worst.max || x.mean > worst.mean) worst = { max: Math.max(worst.max, x.max), mean: Math.max(worst.mean, x.mean), n: x.n };
          tokensAgree &&= d.decode.n > 0 && equalPrefix(t.tokens, a.tokens, nearTie(a.margins, NEAR_TIE[qformat]));
        }
        const b = BOUND[qformat];
        add(`${tag} ${BATCH} at once vs one by one`, tokensAgree && worst.max <= b.max && worst.mean <= b.mean,
          `greedy tokens equal until a near-tie; prompt and decode-step logprobs max ${worst.max.toFixed(4)} (tol ${b.max}), worst mean ${worst.mean.toFixed(4)} (tol ${b.mean})`);
      } catch (err) {
        add(`${tag} ran`, false, err instanceof Error ? err.message : String(err));
      } finally {
        for (const e of opened) await e.close();
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
