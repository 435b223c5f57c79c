// Speculative decoding (prompt lookup) on the CUDA backend: a drafted step runs its sequence's
// rows through the multi-row path (no decode graph), each row drawn on the GPU as the
// (generated + i)-th token, beside other sequences' rows. Its greedy tokens must be the plain GPU
// run's until a near-tie (the two paths sum in different orders, so exact equality is the CPU's
// promise only), drafts must be taken where
// the output repeats and thrown away where it does not, and drafted requests in a batch of
// GPU-sampled neighbours must still agree with the plain run.
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, type CheckOutcome } from './parity-checks.js';

export async function speculativeChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const opts: LoadOptions = { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
    let plain: Engine | undefined;
    let drafted: Engine | undefined;
    try {
      plain = await loadEngine(checkpoint(name), opts);
      drafted = await loadEngine(checkpoint(name), { ...opts, speculative: { method: 'ngram', numSpeculativeTokens: 4 } });
      const req = (tokens: number[], logprobs?: number): SubmitRequest => ({
        tokens,
        sampling: { ...defaultSampling, temperature: 0 },
        maxTokens: 40,
        ignoreEos: true,
        logprobs,
      });
      // The reference prompts, and one that repeats its own start (drafts of what followed it).
      const base = refs(name).prompts.map((p) => p.prompt_ids);
      const prompts = [...base, [...base[0], ...base[1].slice(0, 12), ...base[0].slice(0, 6)]];
      const ties: number[] = [];
      let agreeing = 0;
      for (const [i, tokens] of prompts.entries()) {
        const before = drafted.stats().specDecode!;
        const reference = await run(plain, req(tokens, 2));
        const spec = await run(drafted, req(tokens));
        const after = drafted.stats().specDecode!;
        const n = nearTie(reference.margins);
        ties.push(n);
        const same = equalPrefix(spec.tokens, reference.tokens, n) && spec.tokens.length === 40;
        if (same) agreeing++;
        add(
          `${name}/${i} speculative greedy tokens = plain GPU run`,
          same,
          `${n} tokens compared; drafts ${after.acceptedTokens - before.acceptedTokens} / ${after.draftTokens - before.draftTokens} taken`,
        );
      }
      const s = drafted.stats().specDecode!;
      if (name === 'tiny-a') add(`${name} drafts are taken where the output repeats`, s.acceptedTokens > 0 && s.drafts > 0, `${s.acceptedTokens} / ${s.draftTokens} in ${s.drafts} drafted steps`);
      // All at once: drafted rows sampled on the host beside rows the GPU samples (those without drafts).
      const together = await Promise.all(prompts.map((tokens) => run(drafted!, req(tokens))));
      const same = await Promise.all(prompts.map(async (tokens, i) => equalPrefix(together[i].tokens, (await run(plain!, req(tokens))).tokens, ties[i])));
      add(`${name} speculative requests in a batch = plain GPU run`, same.every(Boolean), `${prompts.length} concurrent requests, ${agreeing} agreeing alone`);
    } catch (err) {
      add(`${name} speculative decoding ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await plain?.close();
      await drafted?.close();
    }
  }
  return out;
}
