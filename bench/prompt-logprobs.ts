// npm run bench:prompt-logprobs — what prompt logprobs (vLLM's prompt_logprobs, lm-eval's
// loglikelihood requests, the completions API's echo with logprobs) cost a batch's prefill, in
// one run: the same prompts scored with one generated token and no prompt logprobs, with them
// (each prompt token's logprob and rank; on a GPU read there, only those numbers come back),
// with 5 and 20 alternatives each (listed there too), and with 21, more than the device lists, which
// brings every prompt row's logits back to the host sampler's threads. Prompt tok/s of each
// (batch wall time from submission to the last request's end) and its ratio to plain.
//
//   npm run bench:prompt-logprobs [-- --checkpoint DIR --device cpu|cuda|auto --batch 16 --prompt 1024 --rounds 3 --json FILE]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadEngine } from '../src/engine/index.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../src/engine/types.js';
import { promptIds } from './prompt-ids.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    checkpoint: { type: 'string' },
    device: { type: 'string', default: 'auto' },
    batch: { type: 'string', default: '16' },
    prompt: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const batch = Number(args.batch);
const promptLen = Number(args.prompt);
const rounds = Number(args.rounds);
if (!(rounds >= 1) || !(batch >= 1) || !(promptLen >= 2)) throw new Error('--rounds and --batch must be at least 1, --prompt at least 2');

const workloads: { name: string; extra: Partial<SubmitRequest> }[] = [
  { name: 'plain prefill', extra: {} },
  { name: 'prompt logprobs', extra: { promptLogprobs: true, promptTopLogprobs: 0 } },
  { name: 'prompt logprobs, top 5', extra: { promptLogprobs: true, promptTopLogprobs: 5 } },
  { name: 'prompt logprobs, top 20', extra: { promptLogprobs: true, promptTopLogprobs: 20 } },
  { name: 'prompt logprobs, top 21 (host rows)', extra: { promptLogprobs: true, promptTopLogprobs: 21 } },
];

const checkpoint = args.checkpoint ?? (await import('./make-random-checkpoint.js')).randomQwen3_0_6b();
const options: LoadOptions = {
  device: args.device as LoadOptions['device'],
  maxBatchSize: Math.max(4, batch),
  maxSeqLen: promptLen + 64,
  maxTokensInPagedKvCache: (promptLen + 64) * batch + 4096,
  // Prefix caching off: every round computes (and reads) every prompt row again.
  enablePrefixCaching: false,
};
const engine = await loadEngine(checkpoint, options);
const machine = engine.info.device === 'cuda' ? engine.info.kernels : `${cpus()[0]?.model.trim()} x ${cpus().length} (${engine.info.kernels}, ${engine.info.threads} threads)`;
const prompts = Array.from({ length: batch }, (_, i) => promptIds(promptLen, 3 + 10 * i));
const rows: { workload: string; promptTokS: number; vsPlain: number; ms: number; rowsOnDevice: number }[] = [];
try {
  for (const w of workloads) {
    const requests: SubmitRequest[] = prompts.map((tokens) => ({ tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 1, ...w.extra }));
    const once = async () => {
      const t0 = performance.now();
      await Promise.all(
        requests.map(async (r) => {
          for await (const ev of engine.submit(r)) if (ev.error) throw new Error(ev.error);
        }),
      );
      return performance.now() - t0;
    };
    await once();  // untimed: buffers, pages and graphs warm
    const before = engine.runtimeStats().devicePromptRows;
    let best = Infinity;
    for (let r = 0; r < rounds; r++) best = Math.min(best, await once());
    const promptTokS = (batch * promptLen * 1000) / best;
    // The share of the timed rounds' prompt rows read on the device (0 on a CPU).
    const rowsOnDevice = w.extra.promptLogprobs ? (engine.runtimeStats().devicePromptRows - before) / (rounds * batch * (promptLen - 1)) : 0;
    rows.push({ workload: w.name, promptTokS, vsPlain: promptTokS / (rows[0]?.promptTokS ?? promptTokS), ms: best, rowsOnDevice });
  }
} finally {
  await engine.close();
}

console.log(`prompt logprobs: ${batch} requests of ${promptLen} prompt tokens and 1 new token, submitted together; best of ${rounds} rounds`);
console.log(`checkpoint ${checkpoint}; ${machine}`);
console.log('| workload | prompt tok/s | vs plain | batch ms | prompt rows read on the device |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows)
  console.log(`| ${r.workload} | ${r.promptTokS.toFixed(0)} | ${r.vsPlain.toFixed(2)}x | ${r.ms.toFixed(1)} | ${(100 * r.rowsOnDevice).toFixed(0)}% |`);
if (args.json) writeFileSync(args.json, JSON.stringify({ machine, checkpoint, batch, promptLen, rounds, rows }, null, 2) + '\n');
