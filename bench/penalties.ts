// npm run bench:penalties — what repetition / presence / frequency penalties cost a batch's
// decode, on one engine in one run: the same requests greedy without penalties, with them (on a
// GPU drawn there, each row sent its history), and with them plus logprobs: 1, which keeps the
// rows on the host sampler (one thread over a 152k vocabulary per row: how penalized rows were
// served on a GPU before they were drawn there). Decode tok/s of each and its ratio to plain.
//
//   npm run bench:penalties [-- --checkpoint DIR --device cpu|cuda|auto --batch 8 --tokens 128 --rounds 3 --json FILE]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadEngine } from '../src/engine/index.js';
import { defaultSampling, type SamplingParams, type SubmitRequest } from '../src/engine/types.js';
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
const workloads: { name: string; sampling: SamplingParams; logprobs?: number }[] = [
  { name: 'plain', sampling: greedy },
  { name: 'penalties', sampling: penalized },
  { name: 'penalties + logprobs 1 (host sampler)', sampling: penalized, logprobs: 1 },
];
const prompts = Array.from({ length: batch }, (_, i) => promptIds(256, 7 + 10 * i));

const checkpoint = args.checkpoint ?? (await import('./make-random-checkpoint.js')).randomQwen3_0_6b();
const engine = await loadEngine(checkpoint, {
  device: args.device as 'cpu' | 'cuda' | 'auto',
  maxBatchSize: Math.max(4, batch),
  maxSeqLen: 2048,
  maxTokensInPagedKvCache: 1024 * batch + 4096,
});
const machine = engine.info.device === 'cuda' ? engine.info.kernels : `${cpus()[0]?.model.trim()} x ${cpus().length} (${engine.info.kernels}, ${engine.info.threads} threads)`;
const rows: { workload: string; tokS: number; vsPlain: number; msPerStep: number }[] = [];
try {
  for (const w of workloads) {
    const requests: SubmitRequest[] = prompts.map((tokens) => ({ tokens, sampling: w.sampling, logprobs: w.logprobs, maxTokens: newTokens, ignoreEos: true }));
    await runBatch(engine, requests);  // untimed: graphs, pages and buffers warm
    let best: BatchRun | undefined;
    for (let r = 0; r < rounds; r++) {
      const run = await runBatch(engine, requests);
      if (!best || run.decodeMs < best.decodeMs) best = run;
    }
    const tokS = decodeRate(best!);
    rows.push({ workload: w.name, tokS, vsPlain: tokS / (rows[0]?.tokS ?? tokS), msPerStep: best!.decodeMs / Math.max(1, best!.steps) });
  }
} finally {
  await engine.close();
}

console.log(`penalties at batch ${batch}, ${newTokens} new tokens a request, 256-token prompts; best of ${rounds} rounds`);
console.log(`checkpoint ${checkpoint}; ${machine}`);
console.log('| workload | decode tok/s | vs plain | ms / step |');
console.log('| --- | --- | --- | --- |');
for (const r of rows) console.log(`| ${r.workload} | ${r.tokS.toFixed(1)} | ${r.vsPlain.toFixed(2)}x | ${r.msPerStep.toFixed(2)} |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, checkpoint, batch, newTokens, rounds, rows }, null, 2) + '\n');
