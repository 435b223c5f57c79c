// Bad sequences on the CUDA backend: a request with a sequence ban is drawn on the GPU too (the
// scheduler matches the ban against its generated tokens and sends the banned ends with the row)
// without disturbing the rows sampled beside it. Each checkpoint:
// the banned pair never appears, the tokens before it are the free run's, and free neighbours in
// the same batch answer as they do alone.
import { loadEngine } from '../../src/engine/index.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, type CheckOutcome, type Outcome } from './parity-checks.js';

const hasPair = (tokens: number[], pair: number[]) => tokens.some((t, k) => k > 0 && tokens[k - 1] === pair[0] && t === pair[1]);

export async function badSequenceChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const gpu = await loadEngine(checkpoint(name), { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 });
    try {
      const prompts = refs(name).prompts.map((p) => p.prompt_ids.slice(0, 60));
      const req = (tokens: number[], over: Partial<SubmitRequest> = {}): SubmitRequest => ({
        tokens,
        sampling: { ...defaultSampling, temperature: 0 },
        maxTokens: 12,
        ignoreEos: true,
        ...over,
      });
      const free: Outcome[] = [];
      for (const tokens of prompts) free.push(await run(gpu, req(tokens, { logprobs: 2 })));
      const pairs = free.map((f) => f.tokens.slice(0, 2));
      const banned = await Promise.all(prompts.map((tokens, i) => run(gpu, req(tokens, { badSequences: [pairs[i]] }))));
      for (const [i, b] of banned.entries()) {
        const head = b.tokens[0] === free[i].tokens[0] || nearTie(free[i].margins) === 0;
        add(`${name}/${i} bad sequence on the GPU`, head && !hasPair(b.tokens, pairs[i]), `pair ${pairs[i].join(',')}: ${b.tokens.join(',')}`);
      }
      // Banned requests among free ones: the free ones stay on the GPU and answer as alone.
      const mixed = prompts.flatMap((tokens, i) => [req(tokens, { badSequences: [pairs[i]] }), req(tokens)]);
      const together = await Promise.all(mixed.map((r) => run(gpu, r)));
      const freeSame = prompts.every((_, i) => equalPrefix(together[2 * i + 1].tokens, free[i].tokens, nearTie(free[i].margins)));
      const stillBanned = prompts.every((_, i) => !hasPair(together[2 * i].tokens, pairs[i]));
      add(`${name} bad sequences in a batch of GPU-sampled rows`, freeSame && stillBanned, `${mixed.length} concurrent requests`);
    } catch (err) {
      add(`${name} bad sequences ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await gpu.close();
    }
  }
  return out;
}
