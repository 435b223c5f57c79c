// Bad words, bad sequences, stop tokens held back by min_tokens, logit bias and grammar masks
// drawn on the GPU: each device row carries its bans and biases (sorted edits) and, constrained,
// the grammar's allowed-token mask, and the sampling kernel applies them before the penalties, as
// the host sampler does. The same request asking for 21 top logprobs (penalty-checks.ts' HOST:
// more than the device lists, so the host sampler draws it) is the reference: run alone with
// prefix caching off, both read the same logits, so greedy tokens must be equal. The runtime's
// deviceDrawnTokens counter shows which path drew each.
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { checkRecorder, type CheckOutcome } from './parity-checks.js';
import { HOST } from './penalty-checks.js';

const TOKENS = 20;
const greedy = { ...defaultSampling, temperature: 0 };

interface Drawn {
  tokens: number[];
  finish?: string;
  error?: string;
  onDevice: number;  // tokens the runner drew on the GPU for this request (stop tokens included)
}

async function drain(engine: Engine, req: SubmitRequest): Promise<Drawn> {
  const before = engine.runtimeStats().deviceDrawnTokens;
  const tokens: number[] = [];
  let finish: string | undefined;
  let error: string | undefined;
  for await (const ev of engine.submit(req)) {
    tokens.push(...ev.tokens);
    finish = ev.finishReason ?? finish;
    error = ev.error ?? error;
  }
  return { tokens, finish, error, onDevice: engine.runtimeStats().deviceDrawnTokens - before };
}

const same = (a: Drawn, b: Drawn) => a.tokens.join(',') === b.tokens.join(',') && a.finish === b.finish && a.error === b.error;

/** `device`: where the rows are drawn; a CPU engine with deviceSamplerTwin runs the same checks on the twin. */
export async function deviceRuleChecks(log: (line: string) => void = () => {}, device: LoadOptions = { device: 'cuda' }): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
    const opts: LoadOptions = { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 16, enablePrefixCaching: false, ...device };
    let gpu: Engine | undefined;
    let drafted: Engine | undefined;
    try {
      gpu = await loadEngine(checkpoint(name), opts);
      const prompts = refs(name).prompts.map((p) => p.prompt_ids);
      const allowed = gpu.allowedTokensConstraint!(Array.from({ length: 300 }, (_, k) => 50 + 7 * k));
      const plain: Drawn[] = [];
      for (const tokens of prompts) plain.push(await drain(gpu, { tokens, sampling: greedy, maxTokens: TOKENS, ignoreEos: true }));
      const kinds: [string, (out: number[]) => Partial<SubmitRequest>][] = [
        ['bad tokens', (o) => ({ badTokenIds: [o[0]!, o[3]!] })],
        ['logit bias', (o) => ({ logitBias: [[o[1]!, -100], [7, 6.5], [9, -2]] })],
        ['bad sequences', (o) => ({ badSequences: [o.slice(0, 2), [o[4]!, o[5]!, o[6]!]] })],
        ['min_tokens', (o) => ({ stopTokenIds: [o[2]!], minTokens: 6, logitBias: [[o[2]!, 30]], ignoreEos: false })],
        ['grammar mask', () => ({ constraint: allowed })],
        ['mask + bias + penalties', (o) => ({ constraint: allowed, logitBias: [[50 + 7 * 3, 2]], sampling: { ...greedy, repetitionPenalty: 1.3, presencePenalty: 0.5 } })],
      ];
      let changed = 0;
      for (const [label, kind] of kinds) {
        let equal = 0;
        let paths = 0;
        for (const [i, tokens] of prompts.entries()) {
          const req: SubmitRequest = { tokens, sampling: greedy, maxTokens: TOKENS, ignoreEos: true, ...kind(plain[i]!.tokens) };
          const device = await drain(gpu, req);
          const host = await drain(gpu, { ...req, ...HOST });
          if (same(device, host)) equal++;
          // Every token of the device run was drawn there, none of the reference's.
          if (device.onDevice === device.tokens.length + (device.finish === 'stop' ? 1 : 0) && host.onDevice === 0) paths++;
          if (device.tokens.join(',') !== plain[i]!.tokens.join(',')) changed++;
        }
        add(`${name} ${label}: device draws = host sampler`, equal === prompts.length && paths === prompts.length,
          `${equal} / ${prompts.length} equal, ${paths} / ${prompts.length} drawn where expected`);
      }
      add(`${name} the rules change greedy outputs`, changed >= prompts.length * 4, `${changed} of ${kinds.length * prompts.length} runs differ from plain greedy`);

      // Nothing left to draw: the request fails with the host's message; its neighbour runs on.
      const stuck: SubmitRequest = { tokens: prompts[0]!, sampling: greedy, maxTokens: 10, stopTokenIds: [5], minTokens: 4, constraint: gpu.allowedTokensConstraint!([5]) };
      const [bad, good] = await Promise.all([drain(gpu, stuck), drain(gpu, { tokens: prompts[1]!, sampling: greedy, maxTokens: 8, ignoreEos: true })]);
      add(`${name} a row with nothing left to draw fails its request`,
        bad.finish === 'error' && /min_tokens holds back for 4 more tokens/.test(bad.error ?? '') && good.tokens.length === 8,
        `${bad.finish}: ${bad.error}; neighbour ${good.tokens.length} tokens`);

      // Seeded sampling under a mask and a bias: inside the mask, the same seed the same tokens.
      const seeded = (seed: number): SubmitRequest => ({
        tokens: prompts[0]!, sampling: { ...defaultSampling, temperature: 1.1, topK: 30, topP: 0.95, seed }, maxTokens: 24, ignoreEos: true,
        constraint: allowed, logitBias: [[57, 3]],
      });
      const x = await drain(gpu, seeded(3));
      const y = await drain(gpu, seeded(3));
      const inside = [...x.tokens, ...y.tokens].every((t) => t >= 50 && (t - 50) % 7 === 0 && t < 50 + 7 * 300);
      add(`${name} sampled masked rows stay inside and repeat by seed`, inside && same(x, y) && x.onDevice === 24, x.tokens.join(','));

      // Prompt logprob rows read on the device (up to 20 alternatives) against the host's (21):
      // ranks equal, logprobs to float rounding, the same alternatives; chunked prompts.
      {
        const before = gpu.runtimeStats().devicePromptRows;
        let sameRows = 0;
        let worst = 0;
        let compared = 0;
        for (const tokens of prompts) {
          const ask = (n: number): SubmitRequest => ({ tokens: [...tokens, ...tokens], sampling: greedy, maxTokens: 1, promptLogprobs: true, promptTopLogprobs: n });
          const read = async (r: SubmitRequest) => {
            for await (const ev of gpu!.submit(r)) if (ev.promptLogprobs) return ev.promptLogprobs;
            return [];
          };
          const device = await read(ask(5));
          const host = await read(ask(21));
          let ok = device.length === host.length && device.length === 2 * tokens.length;
          for (let j = 1; ok && j < device.length; j++) {
            const d = device[j]!, h = host[j]!;
            ok = d.rank === h.rank && d.top.map((e) => e.token).join() === h.top.slice(0, 5).map((e) => e.token).join();
            worst = Math.max(worst, Math.abs(d.logprob - h.logprob), ...d.top.map((e, k) => Math.abs(e.logprob - h.top[k]!.logprob)));
            compared++;
          }
          if (ok) sameRows++;
        }
        const read = gpu.runtimeStats().devicePromptRows - before;
        add(`${name} prompt logprobs read on the GPU = host sampler`, sameRows === prompts.length && worst < 1e-4 && read === compared,
          `${sameRows} / ${prompts.length} prompts (${compared} rows, ${read} read on the GPU) with the same ranks and alternatives; worst logprob gap ${worst.toExponential(2)} (tol 1e-4)`);
      }

      // Drafted rows: each row's bans follow the drafts before it (min_tokens crossed inside a
      // step, a banned pair after a drafted token).
      drafted = await loadEngine(checkpoint(name), { ...opts, speculative: { method: 'ngram', numSpeculativeTokens: 3 } });
      let sameDrafted = 0;
      for (const [i, tokens] of prompts.entries()) {
        const t = plain[i]!.tokens[0]!;
        for (const over of [
          { stopTokenIds: [t], minTokens: 11, logitBias: [[t, 30]] as [number, number][], ignoreEos: false },
          { badSequences: [[t, t]], logitBias: [[t, 30]] as [number, number][] },
        ]) {
          const req: SubmitRequest = { tokens, sampling: greedy, maxTokens: 40, ignoreEos: true, ...over };
          if (same(await drain(drafted, req), await drain(drafted, { ...req, ...HOST }))) sameDrafted++;
        }
      }
      const spec = drafted.stats().specDecode!;
      add(`${name} drafted rows with bans: device draws = host sampler`, sameDrafted === 2 * prompts.length && spec.acceptedTokens > 0,
        `${sameDrafted} / ${2 * prompts.length}; drafts ${spec.acceptedTokens} / ${spec.draftTokens} taken`);
    } catch (err) {
      add(`${name} device sampling rules ran`, false, err instanceof Error ? err.message : String(err));
    } finally {
      await gpu?.close();
      await drafted?.close();
    }
  }
  return out;
}
