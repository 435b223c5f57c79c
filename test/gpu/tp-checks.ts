// Tensor parallelism's GPU path with one rank: the same engine loaded plainly and through NCCL
// (a group of one: vocabulary-masked embedding, NCCL all-reduces after o_proj / down_proj, the
// logits all-gather, rank 0's step broadcast) must give the same bits, on the tiny fixtures: prompt
// logprobs, top-5 at every generated step, greedy tokens with CUDA graphs (decode steps captured
// with their NCCL calls) and with GPU sampling, alone; batched, the same greedy tokens. One GPU
// is all this needs; the multi-GPU checks need a machine of several. Run by
// scripts/gpu/tp-parity.ts on the GPU machine.
import { Engine } from '../../src/engine/engine.js';
import { loadAddon } from '../../src/engine/addon.js';
import { loadEngine, nativeOptions } from '../../src/engine/load.js';
import { ncclUniqueId } from '../../src/engine/tensor-parallel.js';
import { defaultSampling, type LoadOptions, type SubmitRequest, type TokenEvent } from '../../src/engine/types.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, NEAR_TIE, type CheckOutcome } from './parity-checks.js';

const limits: LoadOptions = { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };

/** The checkpoint as rank 0 of a one-rank NCCL group. */
async function loadThroughNccl(dir: string): Promise<Engine> {
  const ck = openCheckpoint(dir);
  const tensors = [...ck.tensors.values()].map((t) => ({ name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
  const options = nativeOptions(limits);
  options.tensorParallel = { size: 1, ncclId: ncclUniqueId() };
  return Engine.create(loadAddon(), ck.model, tensors, options, dir);
}

interface Run {
  tokens: number[];
  logprobs: number[];
  top: number[][];
  prompt: number[];
}

async function run(engine: Engine, req: SubmitRequest): Promise<Run> {
  const events: TokenEvent[] = [];
  for await (const ev of engine.submit(req)) events.push(ev);
  return {
    tokens: events.flatMap((e) => e.tokens),
    logprobs: events.flatMap((e) => e.logprobs ?? []),
    top: events.flatMap((e) => (e.topLogprobs ?? []).map((t) => t.flatMap((x) => [x.token, x.logprob]))),
    prompt: (events[0]?.promptLogprobs ?? []).slice(1).map((e) => e?.logprob ?? NaN),
  };
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
/** Steps before the first whose top-2 margin (from the flattened [token, logprob, ...] rows) is under NEAR_TIE. */
function nearTie(top: number[][]): number {
  const i = top.findIndex((t) => t.length >= 4 && t[1] - t[3] < NEAR_TIE);
  return i < 0 ? top.length : i;
}

export async function tensorParallelChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const dir = checkpoint(name);
    let plain: Engine | undefined;
    let nccl: Engine | undefined;
    try {
      plain = await loadEngine(dir, limits);
      nccl = await loadThroughNccl(dir);
      add(`${name} loads through NCCL`, nccl.info.device === 'cuda' && nccl.info.kernels.includes('tensor parallel 1 (nccl)'), nccl.info.kernels);
      const reqs = refs(name).prompts.map((p) => ({ tokens: p.prompt_ids, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 24, logprobs: 5, promptLogprobs: true, ignoreEos: true }));
      for (const [i, r] of reqs.entries()) {
        const tag = `${name}/${refs(name).prompts[i].name}`;
        const a = await run(plain, r);
        const b = await run(nccl, r);
        add(`${tag} prompt logprobs: NCCL = plain`, same(a.prompt, b.prompt), `${a.prompt.length} positions`);
        add(`${tag} top-5 logprobs and greedy tokens: NCCL = plain`, same(a.tokens, b.tokens) && same(a.top.flat(), b.top.flat()), `${a.tokens.length} steps (CUDA graphs)`);
        const s1 = await run(plain, { ...r, logprobs: undefined, promptLogprobs: false });
        const s2 = await run(nccl, { ...r, logprobs: undefined, promptLogprobs: false });
        add(`${tag} GPU sampling: NCCL = plain`, same(s1.tokens, s2.tokens) && same(s1.tokens, a.tokens), `${s2.tokens.length} tokens`);
      }
      // Concurrent requests: which steps they share depends on when each arrives, and the kernels
      // (and so the last bits) depend on the rows of a step, so two batched runs are compared by
      // their greedy tokens until a near-tie, as test/gpu/parity-checks.ts compares batched runs.
      const x = await Promise.all(reqs.map((r) => run(plain!, r)));
      const y = await Promise.all(reqs.map((r) => run(nccl!, r)));
      const agree = x.every((a, i) => {
        const n = Math.min(nearTie(a.top), nearTie(y[i].top));
        return a.tokens.slice(0, n).every((t, j) => t === y[i].tokens[j]);
      });
      add(`${name} batched: NCCL = plain (greedy, until a near-tie)`, agree, `${reqs.length} concurrent requests`);
    } catch (err) {
      add(`${name} ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await plain?.close();
      await nccl?.close();
    }
  }
  return out;
}
