// Embedding requests on the CUDA backend: the runner normalizes the head's input rows again after
// the step (the head's own prologue never writes them) and copies them back. Against the CPU
// backend on the tiny checkpoints, within bf16's error; a prompt whose last token is all that is
// left to compute (the rest from the prefix cache) takes the decode path, CUDA graph included,
// and gives the same vector; embedding requests batched with GPU-sampled generation leave both
// as they are alone.
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, type CheckOutcome, type Outcome } from './parity-checks.js';

/** Relative L2 distance of bf16 activations against the CPU's float ones (measured on these models: under 0.01). */
const TOL_REL = 0.03;

async function embedded(engine: Engine, tokens: number[]): Promise<{ v: number[]; cached: number }> {
  let v: Float32Array | undefined;
  let cached = 0;
  for await (const ev of engine.submit({ tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 0, embed: true })) {
    if (ev.error) throw new Error(ev.error);
    v = ev.embedding ?? v;
    cached = ev.cachedPromptTokens ?? cached;
  }
  if (!v) throw new Error('no embedding came back');
  return { v: Array.from(v), cached };
}
const vector = async (engine: Engine, tokens: number[]) => (await embedded(engine, tokens)).v;

function relL2(a: number[], b: number[]): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return a.length === b.length ? Math.sqrt(d / n) : Infinity;
}

export async function embeddingChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const limits = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const gpu = await loadEngine(checkpoint(name), { device: 'cuda', ...limits });
    const cpu = await loadEngine(checkpoint(name), { device: 'cpu', ...limits });
    try {
      const prompts = refs(name).prompts.map((p) => p.prompt_ids);
      const cpuVectors: number[][] = [];
      for (const [i, tokens] of prompts.entries()) {
        const [g, c] = [await vector(gpu, tokens), await vector(cpu, tokens)];
        cpuVectors.push(c);
        const rel = relL2(g, c);
        add(`${name}/${i} embedding against the CPU backend`, rel < TOL_REL, `relative L2 ${rel.toExponential(2)} (${g.length} values)`);
      }
      // 33 tokens: 32 come from the prefix cache and one decode row is left.
      const long = prompts[prompts.length - 1].slice(0, 33);
      // (Earlier requests may have cached them already: embedding it twice makes sure.) Against
      // the CPU backend, which computes the whole prompt.
      await vector(gpu, long);
      const again = await embedded(gpu, long);
      const rel = relL2(again.v, await vector(cpu, long));
      add(`${name} embedding of a prompt cached but its last token (the decode path)`, again.cached === 32 && rel < TOL_REL, `${again.cached} of 33 tokens cached, relative L2 ${rel.toExponential(2)}`);
      // Batched with generation sampled on the GPU.
      const gen = (tokens: number[]): SubmitRequest => ({ tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 12, ignoreEos: true });
      // Alone with two alternatives per step (for the near-tie bound); batched without, so the GPU samples them.
      const alone: Outcome[] = [];
      for (const tokens of prompts) alone.push(await run(gpu, { ...gen(tokens), logprobs: 2 }));
      const [vectors, generated] = await Promise.all([Promise.all(prompts.map((t) => vector(gpu, t))), Promise.all(prompts.map((t) => run(gpu, gen(t))))]);
      const worst = Math.max(...vectors.map((v, i) => relL2(v, cpuVectors[i])));
      const same = generated.every((g, i) => g.tokens.length === 12 && equalPrefix(g.tokens, alone[i].tokens, nearTie(alone[i].margins)));
      add(`${name} embeddings batched with GPU-sampled generation`, worst < TOL_REL && same, `worst relative L2 ${worst.toExponential(2)}, generation as alone: ${same}`);
      add(`${name} engine holds no blocks after embeddings`, gpu.stats().kvBlocksUsed === 0, `${gpu.stats().kvBlocksUsed} blocks`);
    } catch (err) {
      add(`${name} embeddings ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await gpu.close();
      await cpu.close();
    }
  }
  return out;
}
