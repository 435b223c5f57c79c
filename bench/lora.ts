// npm run bench:lora — what serving LoRA adapters costs a decode step (SubmitRequest.lora;
// native/src/runtime/lora.cpp on the CPU, kernels/cuda/lora.cu on the GPU): the same engine and
// prompts in the same run, every row on the base model, every row on one adapter, and the rows
// split across several adapters (every fifth on the base model), at each batch.
// An adapter of rank r on all seven projections adds 2 r (in + out) multiply-adds per projection
// and row: at rank 16 on this shape 2.9% of the base model's per-token products.
//
//   npm run bench:lora [-- --checkpoint DIR --ranks 8,16,64 --tokens 32 --batches 1,8 --adapters 4 --device cpu]
//   (default checkpoint: the Qwen3-0.6B-shaped random one of bench:cpu; on the GPU machine
//   scripts/gpu/run.sh's stage lora runs it with --device cuda on the Qwen3-8B-shaped one)
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadEngine } from '../src/engine/index.js';
import { defaultSampling, type SubmitRequest } from '../src/engine/types.js';
import { writeTinyLoraAdapter } from '../src/model/tiny-lora.js';
import type { TinySpec } from '../src/model/tiny-checkpoint.js';
import { promptIds } from './prompt-ids.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    checkpoint: { type: 'string' },
    ranks: { type: 'string', default: '8,16,64' },
    tokens: { type: 'string', default: '32' },
    batches: { type: 'string', default: '1,8' },
    adapters: { type: 'string', default: '4' },
    device: { type: 'string', default: 'cpu' },
  },
});
const tokens = Number(args.tokens);
const checkpoint = args.checkpoint ?? (await import('./make-random-checkpoint.js')).randomQwen3_0_6b();
const config = JSON.parse(readFileSync(join(checkpoint, 'config.json'), 'utf8'));
const base: TinySpec = { ...config, seed: 0, shards: 1, num_hidden_layers: config.num_hidden_layers };
const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const adapterDir = (rank: number, seed: number) => {
  const dir = join(checkpoint, '..', `lora-r${rank}-s${seed}`);
  writeTinyLoraAdapter(dir, {
    base: 'bench', seed, r: rank, lora_alpha: 2 * rank, use_rslora: false, target_modules: targets, rank_pattern: {}, alpha_pattern: {},
    init: { lora_A: { bound_times_sqrt_fan_in: Math.sqrt(3), offset: 0 }, lora_B: { bound: 0.01, offset: 0 } },
  }, base);
  return dir;
};

const batches = args.batches.split(',').map(Number);
const maxBatch = Math.max(...batches);
const adapterCount = Number(args.adapters);
const device = args.device === 'cuda' ? 'cuda' : 'cpu';
const engine = await loadEngine(checkpoint, { device, maxSeqLen: 2048, maxBatchSize: Math.max(16, maxBatch) });
try {
  const greedy = { ...defaultSampling, temperature: 0 };
  const prompts = Array.from({ length: maxBatch }, (_, i) => promptIds(64, 11 + i));
  /** ms per decode step of `batch` requests, the i-th with lora(i); prompts cached first so only decode is timed. */
  const stepMs = async (batch: number, lora: (i: number) => unknown): Promise<number> => {
    const reqs: SubmitRequest[] = prompts.slice(0, batch).map((p, i) => ({ tokens: p, sampling: greedy, maxTokens: tokens, ignoreEos: true, lora: lora(i) }));
    await Promise.all(reqs.map(async (r) => { for await (const _ of engine.submit({ ...r, maxTokens: 1 })); }));
    const steps0 = engine.stats().steps;
    const t0 = performance.now();
    await Promise.all(reqs.map(async (r) => { for await (const _ of engine.submit(r)); }));
    return (performance.now() - t0) / (engine.stats().steps - steps0);
  };
  console.log(`LoRA adapters against the base model, ${tokens} tokens after 64-token prompts; ${checkpoint}`);
  console.log(device === 'cuda' ? `${engine.info.kernels}` : `${cpus()[0]?.model.trim()} x ${cpus().length} (${engine.info.kernels}, ${engine.info.threads} threads)`);
  console.log(`| batch | rank | base ms/step | one adapter | vs base | ${adapterCount} adapters + base rows | vs base |`);
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  const loaded = new Map<number, unknown[]>();
  for (const batch of batches) {
    for (const rank of args.ranks.split(',').map(Number)) {
      if (!loaded.has(rank)) loaded.set(rank, await Promise.all(Array.from({ length: adapterCount }, async (_, i) => (await engine.loadLoraAdapter(adapterDir(rank, i + 1))).handle)));
      const handles = loaded.get(rank)!;
      // In turns (base, adapter, mixed, twice) so drift on a shared machine hits each alike.
      const t = { base: [] as number[], one: [] as number[], mixed: [] as number[] };
      for (let turn = 0; turn < 2; turn++) {
        t.base.push(await stepMs(batch, () => undefined));
        t.one.push(await stepMs(batch, () => handles[0]));
        t.mixed.push(await stepMs(batch, (i) => (i % 5 === 4 ? undefined : handles[i % adapterCount])));
      }
      const best = (xs: number[]) => Math.min(...xs);
      const [b, o, m] = [best(t.base), best(t.one), best(t.mixed)];
      console.log(`| ${batch} | ${rank} | ${b.toFixed(1)} | ${o.toFixed(1)} | ${(o / b).toFixed(3)}x | ${m.toFixed(1)} | ${(m / b).toFixed(3)}x |`);
    }
  }
} finally {
  await engine.close();
}
