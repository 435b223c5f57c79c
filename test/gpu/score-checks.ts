// Scoring requests (rerankers) on the CUDA backend: the prompt's last logit row comes back to the
// host, which takes the asked tokens' logprobs. Against the transformers references and the CPU
// backend on the tiny checkpoints, within the bf16 tolerance of the logits checks; the same as the
// GPU's own prompt logprobs; batched with GPU-sampled generation, neither changes.
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { TOL_MAX_LOGPROB, checkRecorder, equalPrefix, nearTie, run, type CheckOutcome, type Outcome } from './parity-checks.js';

const greedy = { ...defaultSampling, temperature: 0 };

async function scored(engine: Engine, tokens: number[], ids: number[]): Promise<number[]> {
  let scores: Float32Array | undefined;
  for await (const ev of engine.submit({ tokens, sampling: greedy, maxTokens: 0, scoreIds: ids })) {
    if (ev.error) throw new Error(ev.error);
    scores = ev.scores ?? scores;
  }
  if (!scores) throw new Error('no scores came back');
  return Array.from(scores);
}

const worstGap = (a: number[], b: number[]) => (a.length === b.length ? Math.max(...a.map((x, i) => Math.abs(x - b[i]))) : Infinity);

export async function scoreChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const limits = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const gpu = await loadEngine(checkpoint(name), { device: 'cuda', ...limits });
    const cpu = await loadEngine(checkpoint(name), { device: 'cpu', ...limits });
    try {
      const prompts = refs(name).prompts;
      const alone: number[][] = [];
      for (const [i, p] of prompts.entries()) {
        const ids = [...p.last_top5.ids, 9693, 2152];
        const [g, c] = [await scored(gpu, p.prompt_ids, ids), await scored(cpu, p.prompt_ids, ids)];
        alone.push(g);
        const ref = worstGap(g.slice(0, 5), p.last_top5.logprobs);
        add(`${name}/${i} scores against transformers and the CPU backend`, ref < TOL_MAX_LOGPROB && worstGap(g, c) < TOL_MAX_LOGPROB, `worst gap ${ref.toFixed(4)} to transformers, ${worstGap(g, c).toFixed(4)} to the CPU (tol ${TOL_MAX_LOGPROB})`);
      }
      // The GPU's prompt logprobs of the same position: the same logit row.
      const p = prompts[prompts.length - 1].prompt_ids;
      const [own] = await scored(gpu, p.slice(0, -1), [p[p.length - 1]]);
      const r = await run(gpu, { tokens: p, sampling: greedy, maxTokens: 1, promptLogprobs: true, promptTopLogprobs: 0 });
      const lp = r.promptLogprobs[p.length - 2] ?? NaN; // [k - 1]: prompt token k's
      add(`${name} score equals the GPU's prompt logprob there`, Math.abs(own - lp) < 1e-4, `${own} against ${lp}`);
      // Batched with generation sampled on the GPU.
      const gen = (tokens: number[]): SubmitRequest => ({ tokens, sampling: greedy, maxTokens: 12, ignoreEos: true });
      const solo: Outcome[] = [];
      for (const q of prompts) solo.push(await run(gpu, { ...gen(q.prompt_ids), logprobs: 2 }));
      const [batched, generated] = await Promise.all([
        Promise.all(prompts.map((q) => scored(gpu, q.prompt_ids, [...q.last_top5.ids, 9693, 2152]))),
        Promise.all(prompts.map((q) => run(gpu, gen(q.prompt_ids)))),
      ]);
      const worst = Math.max(...batched.map((b, i) => worstGap(b, alone[i])));
      const same = generated.every((g, i) => g.tokens.length === 12 && equalPrefix(g.tokens, solo[i].tokens, nearTie(solo[i].margins)));
      add(`${name} scores batched with GPU-sampled generation`, worst < 0.05 && same, `worst gap to alone ${worst.toFixed(4)}, generation as alone: ${same}`);
      add(`${name} engine holds no blocks after scoring`, gpu.stats().kvBlocksUsed === 0, `${gpu.stats().kvBlocksUsed} blocks`);
    } catch (err) {
      add(`${name} scoring ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await gpu.close();
      await cpu.close();
    }
  }
  return out;
}
