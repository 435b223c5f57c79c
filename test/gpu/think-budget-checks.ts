// The thinking token budget on the CUDA backend: the runner samples greedy rows on the GPU, and a
// step whose token the budget forces must leave that path (its row is read on the host) without
// disturbing the rows sampled beside it. Each checkpoint: the bounded request closes its block
// after exactly the budget, agrees with the free run before it and with a run resumed from the
// close after it, alone and in a batch of device-sampled neighbours.
import { loadEngine } from '../../src/engine/index.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, type CheckOutcome, type Outcome } from './parity-checks.js';

const OPEN = 151667;
const CLOSE = 151668;
const BUDGET = 6;

export async function thinkBudgetChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const gpu = await loadEngine(checkpoint(name), { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 });
    try {
      const prompts = refs(name).prompts.map((p) => [...p.prompt_ids.slice(0, 60), OPEN]);
      // logprobs: 2 only for the margins (host rows); the bounded runs sample on the GPU.
      const req = (tokens: number[], over: Partial<SubmitRequest> = {}): SubmitRequest => ({
        tokens,
        sampling: { ...defaultSampling, temperature: 0 },
        maxTokens: 16,
        ignoreEos: true,
        ...over,
      });
      const bounded = (tokens: number[]) => req(tokens, { thinkBudget: { maxTokens: BUDGET, openToken: OPEN, closeToken: CLOSE } });
      const alone: Outcome[] = [];
      for (const [i, tokens] of prompts.entries()) {
        const free = await run(gpu, req(tokens, { logprobs: 2 }));
        const b = await run(gpu, bounded(tokens));
        alone.push(b);
        const n = Math.min(BUDGET, nearTie(free.margins));
        const head = b.tokens[BUDGET] === CLOSE && equalPrefix(b.tokens, free.tokens, n);
        const resumed = await run(gpu, req([...tokens, ...b.tokens.slice(0, BUDGET + 1)], { maxTokens: 16 - BUDGET - 1, logprobs: 2 }));
        const tail = equalPrefix(b.tokens.slice(BUDGET + 1), resumed.tokens, nearTie(resumed.margins));
        add(`${name}/${i} think budget closes after ${BUDGET} tokens on the GPU`, head && tail, `${b.tokens.length} tokens, close at ${b.tokens.indexOf(CLOSE)}`);
      }
      // Bounded requests among free ones, all drawn on the GPU except the forced steps.
      const mixed = prompts.flatMap((tokens) => [bounded(tokens), req(tokens)]);
      const together = await Promise.all(mixed.map((r) => run(gpu, r)));
      const same = prompts.every((_, i) => equalPrefix(together[2 * i].tokens, alone[i].tokens, BUDGET + 1));
      const freeOpen = prompts.every((_, i) => together[2 * i + 1].tokens.indexOf(CLOSE) !== BUDGET);
      add(`${name} think budget in a batch of GPU-sampled rows = alone`, same && freeOpen, `${mixed.length} concurrent requests`);
    } catch (err) {
      add(`${name} think budget ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await gpu.close();
    }
  }
  return out;
}
