// npm run bench:beam — beam search (use_beam_search; src/engine/beam-search.ts) against greedy
// decoding on the same engine in the same run: the time a search step takes at each width, as a
// ratio to a greedy step. Each search step re-sends every beam's text; the prefix cache serves its
// full blocks, so a step recomputes each beam's last partial block (up to kv_block_size - 1
// tokens) and reads 2 x width alternatives per beam.
//
//   npm run bench:beam [-- --checkpoint DIR --tokens 32 --prompt-tokens 100 --widths 1,2,4]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu)
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { beamSearch } from '../src/engine/beam-search.js';
import { loadEngine } from '../src/engine/index.js';
import { defaultSampling } from '../src/engine/types.js';
import { promptIds } from './prompt-ids.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    checkpoint: { type: 'string' },
    tokens: { type: 'string', default: '32' },
    'prompt-tokens': { type: 'string', default: '100' },
    widths: { type: 'string', default: '1,2,4' },
  },
});
const tokens = Number(args.tokens);
const checkpoint = args.checkpoint ?? (await import('./make-random-checkpoint.js')).randomQwen3_0_6b();
const engine = await loadEngine(checkpoint, { device: 'cpu', maxSeqLen: 4096 });
try {
  const prompt = promptIds(Number(args['prompt-tokens']), 7);
  // The prompt computed once, so every run below finds it in the prefix cache.
  for await (const _ of engine.submit({ tokens: prompt, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 1 }));
  const t0 = performance.now();
  for await (const _ of engine.submit({ tokens: prompt, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: tokens, ignoreEos: true }));
  const greedyStep = (performance.now() - t0) / tokens;
  console.log(`beam search against greedy, ${tokens} tokens after a ${prompt.length}-token prompt; ${checkpoint}`);
  console.log(`${cpus()[0]?.model.trim()} x ${cpus().length} (${engine.info.kernels}, ${engine.info.threads} threads), KV blocks of ${engine.nativeInfo.kvBlockSize}`);
  console.log('| width | ms per step | vs a greedy step | per beam |');
  console.log('| --- | --- | --- | --- |');
  console.log(`| greedy | ${greedyStep.toFixed(1)} | 1.00x | 1.00x |`);
  for (const width of args.widths.split(',').map(Number)) {
    const t = performance.now();
    await beamSearch(engine, { prompt, width, maxTokens: tokens, stopTokenIds: [] });
    const step = (performance.now() - t) / tokens;
    console.log(`| ${width} | ${step.toFixed(1)} | ${(step / greedyStep).toFixed(2)}x | ${(step / greedyStep / width).toFixed(2)}x |`);
  }
} finally {
  await engine.close();
}
