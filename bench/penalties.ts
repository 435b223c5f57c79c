// npm run bench:penalties — what a batch's decode pays for sampling extras, in one run: the same
// requests greedy without penalties, with them (on a GPU drawn there, each row sent its
// history), with them plus 5 top logprobs (listed there too), with a logit bias and bad words
// (sparse edits drawn there too), constrained by an allowed-token grammar (its mask drawn there
// too), and with 21 top logprobs, more than the device lists, which keeps the rows on the host
// sampler: on an engine with one sampling thread and on one with the default threads
// (LoadOptions.samplingThreads); and plain sampling with Qwen3's generation_config values
// (temperature 0.7, top_k 20, top_p 0.8), and the same without top_k. Decode tok/s of each, its
// ratio to plain, and the host work between two forward passes per step (the engine's step time
// less its forward time).
//
//   npm run bench:penalties [-- --checkpoint DIR --device cpu|cuda|auto --batch 8 --tokens 128 --rounds 3 --json FILE]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadEngine, type Engine } from '../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SamplingParams, type SubmitRequest } from '../src/engine/types.js';
import { engineLoopBetween, hostMsPerStep } from '../src/bench/load.js';
import { decodeRate, runBatch, type BatchRun } from './batch-run.js';
import { promptIds } from './prompt-ids.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    checkpoint: { type: 'string' },
    device: { type: 'string', default: 'auto' },
    batch: { type: 'string', default: '8' },
    tokens: { type: 'string', default: '128' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const batch = Number(args.batch);
const newTokens = Number(args.tokens);
const rounds = Number(args.rounds);
if (!(rounds >= 1) || !(batch >= 1) || !(newTokens >= 2)) throw new Error('--rounds and --batch must be at least 1, --tokens at least 2');

const greedy = { ...defaultSampling, temperature: 0 };
const penalized: SamplingParams = { ...greedy, repetitionPenalty: 1.1, presencePenalty: 1.5, frequencyPenalty: 0.5 };
// More top logprobs than the device lists (20): the rows are drawn by the host sampler.
const host: Partial<SubmitRequest> = { logprobs: 21 };
const edits: Partial<SubmitRequest> = { logitBias: [[100, 0.5], [200, -0.5], [300, 2]], badTokenIds: [400, 401, 402] };
// Every third token allowed: a dense mask, as a JSON string's content gives.
const grammar = (e: Engine): Partial<SubmitRequest> => ({ constraint: e.allowedTokensConstraint!(Array.from({ length: 50_000 }, (_, i) => 3 * i)) });
const workloads: { name: string; sampling: SamplingParams; extra?: (e: Engine) => Partial<SubmitRequest>; oneThread?: boolean }[] = [
  { name: 'plain', sampling: greedy },
  { name: 'penalties', sampling: penalized },
  { name: 'penalties + top 5 logprobs', sampling: penalized, extra: () => ({ logprobs: 5 }) },
  { name: 'penalties + logit_bias + bad words', sampling: penalized, extra: () => edits },
  { name: 'allowed-token grammar', sampling: greedy, extra: grammar },
  { name: 'penalties + top 21 logprobs (host, 1 thread)', sampling: penalized, extra: () => host, oneThread: true },
  { name: 'penalties + top 21 logprobs (host, default threads)', sampling: penalized, extra: () => host },
  { name: 'sampled: temperature 0.7, top_k 20, top_p 0.8', sampling: { ...defaultSampling, temperature: 0.7, topK: 20, topP: 0.8, seed: 7 } },
  { name: 'sampled: temperature 0.7, top_p 0.8 (no top_k)', sampling: { ...defaultSampling, temperature: 0.7, topP: 0.8, seed: 7 } },
];
const prompts = Array.from({ length: batch }, (_, i) => promptIds(256, 7 + 10 * i));

const checkpoint = args.checkpoint ?? (await import('./make-random-checkpoint.js')).randomQwen3_0_6b();
const options: LoadOptions = {
  device: args.device as LoadOptions['device'],
  maxBatchSize: Math.max(4, batch),
  maxSeqLen: 2048,
  maxTokensInPagedKvCache: 1024 * batch + 4096,
};
const engine = await loadEngine(checkpoint, options);
const oneThread = await loadEngine(checkpoint, { ...options, samplingThreads: 1 });
const machine = `${engine.info.device === 'cuda' ? engine.info.kernels : `${cpus()[0]?.model.trim()} x ${cpus().length} (${engine.info.kernels}, ${engine.info.threads} threads)`}; ${engine.info.samplingThreads} sampling threads by default`;
const rows: { workload: string; tokS: number; vsPlain: number; msPerStep: number; hostMsPerStep: number; onDevice: number }[] = [];
try {
  for (const w of workloads) {
    const on = w.oneThread ? oneThread : engine;
    const extra = w.extra?.(on);
    const requests: SubmitRequest[] = prompts.map((tokens) => ({ tokens, sampling: w.sampling, maxTokens: newTokens, ignoreEos: true, ...extra }));
    await runBatch(on, requests);  // untimed: graphs, pages and buffers warm
    const drawnBefore = on.runtimeStats().deviceDrawnTokens, generatedBefore = on.runtimeStats().generatedTokensTotal;
    let best: BatchRun | undefined;
    for (let r = 0; r < rounds; r++) {
      const run = await runBatch(on, requests);
      if (!best || run.decodeMs < best.decodeMs) best = run;
    }
    const tokS = decodeRate(best!);
    // The share of the timed rounds' tokens the runner drew on its device (0 on a CPU).
    const onDevice = (on.runtimeStats().deviceDrawnTokens - drawnBefore) / Math.max(1, on.runtimeStats().generatedTokensTotal - generatedBefore);
    const b = best!;
    rows.push({ workload: w.name, tokS, vsPlain: tokS / (rows[0]?.tokS ?? tokS), msPerStep: b.decodeMs / Math.max(1, b.steps), hostMsPerStep: hostMsPerStep(engineLoopBetween(b.before, b.after)), onDevice });
  }
} finally {
  await engine.close();
  await oneThread.close();
}

console.log(`penalties at batch ${batch}, ${newTokens} new tokens a request, 256-token prompts; best of ${rounds} rounds`);
console.log(`checkpoint ${checkpoint}; ${machine}`);
console.log('| workload | decode tok/s | vs plain | ms / step | host ms / step | drawn on the device |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.workload} | ${r.tokS.toFixed(1)} | ${r.vsPlain.toFixed(2)}x | ${r.msPerStep.toFixed(2)} | ${r.hostMsPerStep.toFixed(3)} | ${(100 * r.onDevice).toFixed(0)}% |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, checkpoint, batch, newTokens, rounds, rows }, null, 2) + '\n');
