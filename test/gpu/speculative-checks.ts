// Speculative decoding (prompt lookup) on the CUDA backend: a drafted step runs its sequence's
// rows through the multi-row path (no decode graph), each row drawn on the GPU as the
// (generated + i)-th token, beside other sequences' rows. Its greedy tokens must be the plain GPU
// run's until a near-tie (the two paths sum in different orders, so exact equality is the CPU's
// promise only), drafts must be taken where
// the output repeats and thrown away where it does not, and drafted requests in a batch of
// GPU-sampled neighbours must still agree with the plain run.
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SamplingParams, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, equalPrefix, nearTie, run, type CheckOutcome, type Outcome } from './parity-checks.js';

const opts: LoadOptions = { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
/** A greedy request of 40 tokens (`logprobs`: the margins nearTie reads). */
const req = (tokens: number[], logprobs?: number): SubmitRequest => ({
  tokens,
  sampling: { ...defaultSampling, temperature: 0 },
  maxTokens: 40,
  ignoreEos: true,
  logprobs,
});

export async function speculativeChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    let plain: Engine | undefined;
    let drafted: Engine | undefined;
    try {
      plain = await loadEngine(checkpoint(name), opts);
      drafted = await loadEngine(checkpoint(name), { ...opts, speculative: { method: 'ngram', numSpeculativeTokens: 4 } });
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
  out.push(...(await draftModelChecks(log)));
  return out;
}

/**
 * Speculative decoding with a draft model on the CUDA backend: the draft runs on the GPU too (its
 * mirror of every model step, its greedy proposals drawn there), tiny-b drafting for itself (every
 * proposal right but where its one-row graph and the model's many-row check part at a near-tie)
 * and tiny-a drafting for tiny-b (mostly wrong); the output is the plain GPU run's either way, and
 * a pool sized from free GPU memory leaves the draft's mirror its share.
 */
async function draftModelChecks(log: (line: string) => void): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const draftOf = (draft: CheckpointName): LoadOptions['speculative'] => ({ method: 'draft_model', numSpeculativeTokens: 4, model: checkpoint(draft) });
  const engines: Engine[] = [];
  const open = async (o: LoadOptions) => {
    const e = await loadEngine(checkpoint('tiny-b'), o);
    engines.push(e);
    return e;
  };
  try {
    const plain = await open(opts);
    const prompts = refs('tiny-b').prompts.map((p) => p.prompt_ids);
    const references: Outcome[] = [];
    for (const tokens of prompts) references.push(await run(plain, req(tokens, 2)));
    const ties = references.map((r) => nearTie(r.margins));
    for (const draft of ['tiny-b', 'tiny-a'] as CheckpointName[]) {
      const drafted = await open({ ...opts, speculative: draftOf(draft) });
      const info = drafted.nativeInfo.speculative;
      add(`draft ${draft}: the draft runs on the GPU and draws its proposals there`, info?.method === 'draft_model' && info.draftDevice === 'cuda' && info.draftSamplesOnDevice, JSON.stringify(info));
      const before = drafted.stats().specDecode!;
      let agreeing = 0;
      for (const [i, tokens] of prompts.entries()) {
        const spec = await run(drafted, req(tokens));
        if (equalPrefix(spec.tokens, references[i].tokens, ties[i]) && spec.tokens.length === 40) agreeing++;
      }
      const after = drafted.stats().specDecode!;
      const proposed = after.draftTokens - before.draftTokens;
      const taken = after.acceptedTokens - before.acceptedTokens;
      add(`draft ${draft}: greedy tokens = plain GPU run`, agreeing === prompts.length, `${agreeing} / ${prompts.length} prompts; drafts ${taken} / ${proposed} taken`);
      if (draft === 'tiny-b') {
        add('a self-draft\'s proposals are taken', proposed > 0 && taken >= 0.9 * proposed, `${taken} / ${proposed}`);
        // Under penalties the draft draws as the model will (its penalties over the output and its
        // own earlier proposals, on the GPU), and it follows the rules that move with the output
        // (min_tokens' held-back stop, a bad sequence's end after the rest of it, a spent thinking
        // budget's close, a constraint), each changing the greedy path here: still taken.
        const said = references[0].tokens;
        const stop = said[5];
        const pair = said.slice(10, 12);
        const OPEN = 151667, CLOSE = 151668;
        const penalized = (penalty: Partial<SamplingParams>): [string, SubmitRequest] => [
          JSON.stringify(penalty),
          { ...req(prompts[0]), sampling: { ...defaultSampling, temperature: 0, ...penalty } },
        ];
        const rules: [string, SubmitRequest][] = [
          penalized({ presencePenalty: -100 }),
          penalized({ presencePenalty: 1.5, frequencyPenalty: 0.5, repetitionPenalty: 1.3 }),
          ['min_tokens', { ...req(prompts[0]), ignoreEos: false, stopTokenIds: [stop], minTokens: 40 }],
          ['a bad sequence', { ...req(prompts[0]), badSequences: [pair] }],
          ['a thinking budget', { ...req([...prompts[0], OPEN]), thinkBudget: { maxTokens: 9, openToken: OPEN, closeToken: CLOSE } }],
          // A constraint's state is copied into the draft and walked through its proposals, the
          // allowed tokens a mask of the draft's draw on the GPU.
          ['a constraint', { ...req(prompts[0]), constraint: drafted.allowedTokensConstraint([...new Set(prompts[1])].slice(0, 6)) }],
        ];
        for (const [rule, r] of rules) {
          const b = drafted.stats().specDecode!;
          const tokens = (await run(drafted, r)).tokens;
          const a = drafted.stats().specDecode!;
          const p = a.draftTokens - b.draftTokens, t = a.acceptedTokens - b.acceptedTokens;
          add(`a self-draft's proposals under ${rule} are taken`, tokens.length === 40 && p > 0 && t >= 0.9 * p, `${t} / ${p}`);
        }
      }
      else add('another model\'s proposals are mostly turned down', proposed > 0 && taken < proposed / 2, `${taken} / ${proposed}`);
      const together = await Promise.all(prompts.map((tokens) => run(drafted, req(tokens))));
      const same = together.every((r, i) => equalPrefix(r.tokens, references[i].tokens, ties[i]));
      add(`draft ${draft}: requests in a batch = plain GPU run`, same, `${prompts.length} concurrent requests`);
    }
    // Pools sized from free GPU memory: with the draft, per token the model's bytes and the
    // draft's mirror of them. The fraction is small enough (~1.6 MB of an 80 GB card, ~2.8 MB of
    // a 141 GB one) that neither pool reaches the cap of every sequence at full length (8 x 1,024
    // tokens: 4.7 MB for tiny-b; 0.00005 reached it on an H200).
    const kvFraction = 0.00002;
    const fraction: LoadOptions = { device: 'cuda', maxSeqLen: 1024, maxBatchSize: 8, kvCacheFreeMemFraction: kvFraction };
    const sized = await open(fraction);
    const sizedDrafted = await open({ ...fraction, speculative: draftOf('tiny-a') });
    const a = sized.nativeInfo, b = sizedDrafted.nativeInfo;
    // Each pool from the free memory it saw, per token the model's bytes (and the draft's mirror
    // of them: its own pool also holds scratch blocks, set aside before sizing), in whole blocks
    // of whole tokens.
    const draftBpt = (b.speculative as { draftKvBytesPerToken: number }).draftKvBytesPerToken;
    const blocksFrom = (free: number | undefined, bpt: number) => Math.floor(Math.floor(Math.floor((free ?? 0) * kvFraction) / bpt) / a.kvBlockSize);
    const capped = a.kvBlocks * a.kvBlockSize >= 8 * 1024;
    const asked = blocksFrom(a.kvSizedFromFreeBytes, a.kvBytesPerToken);
    add('a pool sized from free GPU memory takes the fraction of what was free', !capped && a.kvBlocks === asked,
      `${a.kvBlocks} blocks from ${a.kvSizedFromFreeBytes} free bytes: ${asked} expected${capped ? ' (capped: lower the fraction)' : ''}`);
    const expected = blocksFrom(b.kvSizedFromFreeBytes, a.kvBytesPerToken + draftBpt);
    const seen = (b.kvSizedFromFreeBytes ?? NaN) / (a.kvSizedFromFreeBytes ?? NaN);
    add('a pool sized from free GPU memory leaves the draft its share', !capped && draftBpt > 0 && b.kvBlocks === expected &&
      b.kvBlocks < a.kvBlocks * seen,
      `${b.kvBlocks} blocks with the draft, ${a.kvBlocks} without (${a.kvBytesPerToken} + ${draftBpt} bytes a token, ${(seen * 100).toFixed(1)}% of the free memory the first saw: ${expected} expected)`);
    add('a drafted engine sized from free memory serves', (await run(sizedDrafted, req(prompts[0]))).tokens.length === 40, '');
  } catch (err) {
    add('speculative decoding with a draft model ran', false, err instanceof Error ? err.message : String(err));
  } finally {
    for (const e of engines) await e.close();
  }
  return out;
}
