// npm run bench:spec — speculative decoding by prompt lookup (LoadOptions.speculative, the conf's
// speculative_config) against plain decoding: two engines on the same checkpoint, loaded side by
// side in the same run, batch-1 greedy requests taken in turns. Per workload: decode tok/s of
// each, their ratio, tokens per step, the share of drafts taken, and whether both gave the same
// tokens (they must: every token is the model's own draw either way).
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
// whose drafts are all turned down costs. The penalties move sampling to the host for both
// engines alike (the plain engine's greedy rows are otherwise sampled on a GPU).
//
//   npm run bench:spec [-- --checkpoint DIR --device cpu|cuda|auto --k 4 --tokens 96 --rounds 3 --json FILE]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadEngine, type Engine } from '../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SamplingParams } from '../src/engine/types.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    checkpoint: { type: 'string' },
    device: { type: 'string', default: 'auto' },
    k: { type: 'string', default: '4' },
    tokens: { type: 'string', default: '96' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const k = Number(args.k);
const newTokens = Number(args.tokens);
const rounds = Number(args.rounds);
const greedy = { ...defaultSampling, temperature: 0 };

/** Deterministic token ids in the ordinary-text range, different for every `salt`. */
function idsOf(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + salt * 104729) % 100000));
}
interface Workload {
  name: string;
  prompt: number[];
  sampling: SamplingParams;
}
const workloads: Workload[] = [
  { name: 'greedy', prompt: idsOf(64, 1), sampling: greedy },
  // Filled in once the plain engine is loaded (quote()).
  { name: 'quote', prompt: [], sampling: greedy },
  { name: 'repeat', prompt: idsOf(64, 2), sampling: { ...greedy, presencePenalty: -100 } },
  { name: 'fresh', prompt: idsOf(64, 3), sampling: { ...greedy, presencePenalty: 100 } },
];

function sameLead(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

interface Run {
  tokens: number[];
  decodeMs: number;
  steps: number;
  drafted: number;
  accepted: number;
}

/** One request alone on `engine`: its tokens, the time from its first token to its last, and the engine's steps in between. */
async function once(engine: Engine, prompt: number[], sampling: SamplingParams): Promise<Run> {
  const before = engine.stats();
  const tokens: number[] = [];
  let first = 0;
  let last = 0;
  let stepsAtFirst = 0;
  for await (const ev of engine.submit({ tokens: prompt, sampling, maxTokens: newTokens, ignoreEos: true })) {
    if (ev.error) throw new Error(ev.error);
    if (!ev.tokens.length) continue;
    const now = performance.now();
    if (!first) {
      first = now;
      stepsAtFirst = engine.stats().steps;
    }
    last = now;
    tokens.push(...ev.tokens);
  }
  const after = engine.stats();
  const spec = (key: 'draftTokens' | 'acceptedTokens') => (after.specDecode?.[key] ?? 0) - (before.specDecode?.[key] ?? 0);
  return { tokens, decodeMs: last - first, steps: after.steps - stepsAtFirst, drafted: spec('draftTokens'), accepted: spec('acceptedTokens') };
}

// Imported only when used: run as a script, that module writes its checkpoint.
const checkpoint = args.checkpoint ?? (await import('./make-random-checkpoint.js')).randomQwen3_0_6b();
const base: LoadOptions = { device: args.device as LoadOptions['device'], maxBatchSize: 4, maxSeqLen: 4096, maxTokensInPagedKvCache: 16384 };
const plain = await loadEngine(checkpoint, base);
const drafted = await loadEngine(checkpoint, { ...base, speculative: { method: 'ngram', numSpeculativeTokens: k } });
const machine = plain.info.device === 'cuda' ? plain.info.kernels : `${cpus()[0]?.model.trim()} x ${cpus().length} (${plain.info.kernels}, ${plain.info.threads} threads)`;

/**
 * The prompt P, what the model said to it (G), then P again: a model whose next token follows
 * from the text just before it says G again, and each step's drafts come from its first G.
 */
async function quote(w: Workload): Promise<void> {
  const p = idsOf(64, 4);
  const said = await once(plain, p, greedy);
  // The same request on the other engine too, so that both prefix caches hold the same blocks.
  await once(drafted, p, greedy);
  w.prompt = [...p, ...said.tokens, ...p];
}

const rows = [];
try {
  await quote(workloads.find((w) => w.name === 'quote')!);
  for (const w of workloads) {
    // A first request each, untimed: caches, pages and lazily built tables warm.
    await once(plain, w.prompt, w.sampling);
    await once(drafted, w.prompt, w.sampling);
    let off: Run | undefined;
    let on: Run | undefined;
    for (let r = 0; r < rounds; r++) {
      const a = await once(plain, w.prompt, w.sampling);
      const b = await once(drafted, w.prompt, w.sampling);
      if (!off || a.decodeMs < off.decodeMs) off = a;
      if (!on || b.decodeMs < on.decodeMs) on = b;
    }
    if (!off || !on) throw new Error('--rounds must be at least 1');
    const rate = (run: Run) => ((run.tokens.length - 1) * 1000) / run.decodeMs;
    rows.push({
      workload: w.name,
      promptTokens: w.prompt.length,
      newTokens,
      plainTokS: rate(off),
      speculativeTokS: rate(on),
      speedup: rate(on) / rate(off),
      tokensPerStep: (on.tokens.length - 1) / Math.max(1, on.steps),
      // ms per step, drafted over plain
      stepCost: on.decodeMs / Math.max(1, on.steps) / (off.decodeMs / Math.max(1, off.steps)),
      draftTokens: on.drafted,
      acceptedTokens: on.accepted,
      acceptance: on.drafted ? on.accepted / on.drafted : 0,
      // Leading tokens both gave alike (all of them on the CPU; a GPU's multi-row path rounds
      // differently from its one-row decode graph, so a near-tie may part them).
      sameTokens: sameLead(off.tokens, on.tokens),
    });
  }
} finally {
  await plain.close();
  await drafted.close();
}

const f = (x: number, d = 1) => x.toFixed(d);
console.log(`speculative decoding (ngram, up to ${k} drafts a step) against plain decoding, batch 1, ${newTokens} new tokens`);
console.log(`checkpoint ${checkpoint}; ${machine}; best of ${rounds} rounds each, in turns`);
console.log('| workload | plain tok/s | speculative tok/s | speedup | tokens / step | step time vs plain | drafts taken | same leading tokens |');
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.workload} | ${f(r.plainTokS)} | ${f(r.speculativeTokS)} | ${f(r.speedup, 2)}x | ${f(r.tokensPerStep, 2)} | ${f(r.stepCost, 2)}x | ${r.acceptedTokens} / ${r.draftTokens} (${f(100 * r.acceptance)}%) | ${r.sameTokens} of ${r.newTokens} |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, checkpoint, k, newTokens, rounds, rows }, null, 2) + '\n');
if (plain.info.device === 'cpu' && rows.some((r) => r.sameTokens !== r.newTokens)) {
  console.error('speculative decoding changed the output on the CPU, where it must not: a bug');
  process.exitCode = 1;
}
