// npm run bench:spec — speculative decoding by prompt lookup (LoadOptions.speculative, the conf's
// speculative_config) against plain decoding: two engines on the same checkpoint, loaded side by
// side in the same run, the same requests (one, or --batch N together) on each in turns. Per
// workload: decode tok/s of each, their ratio, tokens per step and sequence, the share of drafts
// taken, and how many leading tokens both gave alike (all on the CPU: every token is the model's
// own draw either way).
//
// Workloads, on random weights (no download here, so no real model that quotes its prompt; prompt
// lookup pays where output repeats input: edits, extraction, code, quoting):
//   greedy   whatever the model says to a prompt of distinct tokens (small random models fall
//            into loops, which prompt lookup predicts; an 8B-shaped one does not repeat at all)
//   quote    greedy on a prompt P + (what the model said to P) + P: where the model says the same
//            again, every draft is right, and the rows are still drawn on the GPU (greedy); an
//            8B-shaped random model's near-uniform next-token distributions do not say it again
//   repeat   greedy under a presence penalty of -100, which makes any model say again what it
//            said: the case where every draft is right
//   fresh    greedy under a presence penalty of 100, which keeps every token new: nothing
//            repeats, so nothing is drafted (the cost of looking up drafts that are not there)
// and per workload the time of a drafted step against a plain one, which is also what a step
// whose drafts are all turned down costs. On a GPU every row is drawn there, penalized or not.
//
// With --method draft_model the drafts come from a draft model instead (--draft DIR): by default
// the pair of make-random-checkpoint.ts's speculativePair(), a Qwen3-0.6B-shaped target whose
// layers 2-27 add nothing and its first two layers as the draft, so every greedy proposal is
// right and the figures are the machinery's at full acceptance (fresh: at none).
//
//   npm run bench:spec [-- --method ngram|draft_model --checkpoint DIR --draft DIR --device cpu|cuda|auto --k 4 --tokens 96 --rounds 3 --batch 1 --json FILE]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadEngine, type Engine } from '../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SamplingParams } from '../src/engine/types.js';
import { decodeRate, runBatch, type BatchRun } from './batch-run.js';
import { promptIds } from './prompt-ids.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    checkpoint: { type: 'string' },
    method: { type: 'string', default: 'ngram' },
    draft: { type: 'string' },
    device: { type: 'string', default: 'auto' },
    k: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '96' },
    rounds: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const k = Number(args.k);
const newTokens = Number(args.tokens);
const rounds = Number(args.rounds);
const batch = Number(args.batch);
const greedy = { ...defaultSampling, temperature: 0 };

interface Workload {
  name: string;
  /** One per request of a batch (--batch). */
  prompts: number[][];
  sampling: SamplingParams;
}
const distinct = (salt: number) => Array.from({ length: batch }, (_, i) => promptIds(64, salt + 10 * i));
const workloads: Workload[] = [
  { name: 'greedy', prompts: distinct(1), sampling: greedy },
  // Filled in once the plain engine is loaded (quote()).
  { name: 'quote', prompts: [], sampling: greedy },
  { name: 'repeat', prompts: distinct(2), sampling: { ...greedy, presencePenalty: -100 } },
  { name: 'fresh', prompts: distinct(3), sampling: { ...greedy, presencePenalty: 100 } },
];

function sameLead(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

interface Run extends BatchRun {
  drafted: number;
  accepted: number;
}

/** The requests of a batch together on `engine`, with the drafts of its steps. */
async function once(engine: Engine, prompts: number[][], sampling: SamplingParams): Promise<Run> {
  const run = await runBatch(engine, prompts.map((tokens) => ({ tokens, sampling, maxTokens: newTokens, ignoreEos: true })));
  const spec = (key: 'draftTokens' | 'acceptedTokens') => (run.after.specDecode?.[key] ?? 0) - (run.before.specDecode?.[key] ?? 0);
  return { ...run, drafted: spec('draftTokens'), accepted: spec('acceptedTokens') };
}

if (args.method !== 'ngram' && args.method !== 'draft_model') throw new Error(`--method takes ngram or draft_model, not ${args.method}`);
const byDraft = args.method === 'draft_model';
// Imported only when a checkpoint must be made: run as a script (or bundled into one, where its
// own URL is the script's), that module writes the 0.6B-shaped checkpoint.
const given = args.checkpoint !== undefined && (!byDraft || args.draft !== undefined);
const made = given ? undefined : await import('./make-random-checkpoint.js');
const pair = byDraft && !given ? made!.speculativePair() : undefined;
const checkpoint = args.checkpoint ?? pair?.target ?? made!.randomQwen3_0_6b();
const base: LoadOptions = { device: args.device as LoadOptions['device'], maxBatchSize: Math.max(4, batch), maxSeqLen: 4096, maxTokensInPagedKvCache: 16384 * batch };
const plain = await loadEngine(checkpoint, base);
const speculative: LoadOptions['speculative'] = byDraft
  ? { method: 'draft_model', numSpeculativeTokens: k, model: args.draft ?? pair!.draft }
  : { method: 'ngram', numSpeculativeTokens: k };
const drafted = await loadEngine(checkpoint, { ...base, speculative });
const draftBytes = drafted.nativeInfo.speculative?.method === 'draft_model' ? drafted.nativeInfo.speculative.draftWeightBytesPerStep : undefined;
const machine = plain.info.device === 'cuda' ? plain.info.kernels : `${cpus()[0]?.model.trim()} x ${cpus().length} (${plain.info.kernels}, ${plain.info.threads} threads)`;

/**
 * The prompt P, what the model said to it (G), then P again: a model whose next token follows
 * from the text just before it says G again, and each step's drafts come from its first G.
 */
async function quote(w: Workload): Promise<void> {
  const p = distinct(4);
  const said = await once(plain, p, greedy);
  // The same requests on the other engine too, so that both prefix caches hold the same blocks.
  await once(drafted, p, greedy);
  w.prompts = p.map((prompt, i) => [...prompt, ...said.tokens[i], ...prompt]);
}

const rows = [];
try {
  await quote(workloads.find((w) => w.name === 'quote')!);
  for (const w of workloads) {
    // A first request each, untimed: caches, pages and lazily built tables warm.
    await once(plain, w.prompts, w.sampling);
    await once(drafted, w.prompts, w.sampling);
    let off: Run | undefined;
    let on: Run | undefined;
    for (let r = 0; r < rounds; r++) {
      const a = await once(plain, w.prompts, w.sampling);
      const b = await once(drafted, w.prompts, w.sampling);
      if (!off || a.decodeMs < off.decodeMs) off = a;
      if (!on || b.decodeMs < on.decodeMs) on = b;
    }
    if (!off || !on) throw new Error('--rounds must be at least 1');
    // Tokens after each request's first, over the span in which they decode.
    const decoded = (run: Run) => run.tokens.reduce((n, t) => n + t.length - 1, 0);
    const rate = decodeRate;
    rows.push({
      workload: w.name,
      promptTokens: w.prompts[0].length,
      batch,
      newTokens,
      plainTokS: rate(off),
      speculativeTokS: rate(on),
      speedup: rate(on) / rate(off),
      tokensPerStep: decoded(on) / batch / Math.max(1, on.steps),
      // ms per step, drafted over plain
      stepCost: on.decodeMs / Math.max(1, on.steps) / (off.decodeMs / Math.max(1, off.steps)),
      draftTokens: on.drafted,
      acceptedTokens: on.accepted,
      acceptance: on.drafted ? on.accepted / on.drafted : 0,
      // Leading tokens both gave alike (all of them on the CPU; a GPU's multi-row path rounds
      // differently from its one-row decode graph, so a near-tie may part them).
      sameTokens: Math.min(...off.tokens.map((t, i) => sameLead(t, on.tokens[i]))),
    });
  }
} finally {
  await plain.close();
  await drafted.close();
}

const f = (x: number, d = 1) => x.toFixed(d);
const drafter = byDraft ? `draft model ${speculative.method === 'draft_model' ? speculative.model : ''}` : 'ngram';
console.log(`speculative decoding (${drafter}, up to ${k} drafts a step) against plain decoding, batch ${batch}, ${newTokens} new tokens a request`);
console.log(`checkpoint ${checkpoint}; ${machine}; best of ${rounds} rounds each, in turns`);
if (draftBytes !== undefined) console.log(`weight bytes a step reads: draft ${(draftBytes / 1e9).toFixed(3)} GB, model ${(plain.nativeInfo.weightBytesPerStep / 1e9).toFixed(3)} GB (${f(draftBytes / plain.nativeInfo.weightBytesPerStep, 3)})`);
console.log('| workload | plain tok/s | speculative tok/s | speedup | tokens / step / sequence | step time vs plain | drafts taken | same leading tokens |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.workload} | ${f(r.plainTokS)} | ${f(r.speculativeTokS)} | ${f(r.speedup, 2)}x | ${f(r.tokensPerStep, 2)} | ${f(r.stepCost, 2)}x | ${r.acceptedTokens} / ${r.draftTokens} (${f(100 * r.acceptance)}%) | ${r.sameTokens} of ${r.newTokens} |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, checkpoint, k, newTokens, rounds, rows }, null, 2) + '\n');
if (plain.info.device === 'cpu' && rows.some((r) => r.sameTokens !== r.newTokens)) {
  console.error('speculative decoding changed the output on the CPU, where it must not: a bug');
  process.exitCode = 1;
}
