// npm run bench:penalties — what repetition / presence / frequency penalties, top logprobs and
// host-sampled rows cost a batch's decode, in one run: the same requests greedy without
// penalties, with them (on a GPU drawn there, each row sent its history), with them plus 5 top
// logprobs (listed there too), and with them plus a logit bias, which keeps the rows on the host
// sampler: on an engine with one sampling thread (how every penalized row was served on a GPU
// before they were drawn there) and on one with the default threads (LoadOptions.samplingThreads).
// Decode tok/s of each and its ratio to plain.
//
//   npm run bench:penalties [-- --checkpoint DIR --device cpu|cuda|auto --batch 8 --tokens 128 --rounds 3 --json FILE]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadEngine } from '../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SamplingParams, type SubmitRequest } from '../src/engine/types.js';
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
// A logit bias of 0 changes no logit; no device draws a biased row.
const host: Partial<SubmitRequest> = { logitBias: [[0, 0]] };
const workloads: { name: string; sampling: SamplingParams; extra?: Partial<SubmitRequest>; oneThread?: boolean }[] = [
  { name: 'plain', sampling: greedy },
  { name: 'penalties', sampling: penalized },
  { name: 'penalties + top 5 logprobs', sampling: penalized, extra: { logprobs: 5 } },
  { name: 'penalties + logit_bias (host, 1 thread)', sampling: penalized, extra: host, oneThread: true },
  { name: 'penalties + logit_bias (host, default threads)', sampling: penalized, extra: host },
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
const rows: { workload: string; tokS: number; vsPlain: number; msPerStep: number }[] = [];
try {
  for (const w of workloads) {
    const requests: SubmitRequest[] = prompts.map((tokens) => ({ tokens, sampling: w.sampling, maxTokens: newTokens, ignoreEos: true, ...w.extra }));
    const on = w.oneThread ? oneThread : engine;
    await runBatch(on, requests);  // untimed: graphs, pages and buffers warm
    let best: BatchRun | undefined;
    for (let r = 0; r < rounds; r++) {
      const run = await runBatch(on, requests);
      if (!best || run.decodeMs < best.decodeMs) best = run;
    }
    const tokS = decodeRate(best!);
    rows.push({ workload: w.name, tokS, vsPlain: tokS / (rows[0]?.tokS ?? tokS), msPerStep: best!.decodeMs / Math.max(1, best!.steps) });
  }
} finally {
  await engine.close();
  await oneThread.close();
}

console.log(`penalties at batch ${batch}, ${newTokens} new tokens a request, 256-token prompts; best of ${rounds} rounds`);
console.log(`checkpoint ${checkpoint}; ${machine}`);
console.log('| workload | decode tok/s | vs plain | ms / step |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.workload} | ${r.tokS.toFixed(1)} | ${r.vsPlain.toFixed(2)}x | ${r.msPerStep.toFixed(2)} |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, checkpoint, batch, newTokens, rounds, rows }, null, 2) + '\n');
