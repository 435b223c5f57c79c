// npm run bench:cpu — the native runtime on this machine's CPU with a Qwen3-0.6B-shaped
// checkpoint: measured DRAM read bandwidth, prefill and decode tok/s at batch 1 and 8, and the
// batch-1 decode roofline (weight bytes read per token / bandwidth). --engine runs a built engine
// instead (e.g. `grpst build --qformat int8_wo` of that checkpoint: its quantized kernels);
// --model qwen3-30b-a3b a Qwen3-MoE one (Qwen3-30B-A3B's shapes in 4 of its layers: its roofline
// counts the router and the 8 experts a token reads, not all 128).
//
//   npm run bench:cpu [-- --threads N --decode-tokens N --prompt-tokens N --rounds N --engine DIR --model qwen3-0.6b|qwen3-30b-a3b --json]
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { loadAddon, loadEngine } from '../src/engine/index.js';
import { randomQwen3_0_6b, randomQwen3MoeSlice } from './make-random-checkpoint.js';
import { decodeTokS, prefillTokS } from './engine-timing.js';

const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    threads: { type: 'string' },
    'decode-tokens': { type: 'string', default: '48' },
    'prompt-tokens': { type: 'string', default: '512' },
    rounds: { type: 'string', default: '5' },
    engine: { type: 'string' },
    model: { type: 'string', default: 'qwen3-0.6b' },
    json: { type: 'boolean', default: false },
  },
});
const threads = Number(args.threads ?? availableParallelism());
const decodeTokens = Number(args['decode-tokens']);
const promptTokens = Number(args['prompt-tokens']);
const rounds = Number(args.rounds);

async function main(): Promise<void> {
  const models: Record<string, () => string> = { 'qwen3-0.6b': randomQwen3_0_6b, 'qwen3-30b-a3b': () => randomQwen3MoeSlice(4) };
  const make = models[args.model!];
  if (!make) throw new Error(`--model ${args.model}: choose ${Object.keys(models).join(' or ')}`);
  const dir = args.engine ?? make();
  const addon = loadAddon();
  // Bandwidth is measured before and after the model runs and the best is kept: a conservative
  // roofline when other work shares the machine.
  const bandwidth = () => ({ one: addon.measureMemoryBandwidth(1 << 30, 5, 1), all: addon.measureMemoryBandwidth(1 << 30, 5, threads) });
  const before = bandwidth();
  const engine = await loadEngine(dir, {
    threads,
    maxBatchSize: 8,
    maxNumTokens: Math.max(512, promptTokens),
    // Room for the prompt asked for (--prompt-tokens, alone or as 8 prompts) and its first tokens.
    maxSeqLen: Math.max(4096, promptTokens + 16),
    maxTokensInPagedKvCache: Math.max(16384, promptTokens + 256),
    enablePrefixCaching: false,
  });
  try {
    // Warm-up: pages every weight in and settles the thread pool.
    await decodeTokS(engine, 1, decodeTokens, 99);
    // Each figure is the best of several rounds, as the bandwidth is the best of several passes:
    // on a machine shared with other work both then describe its quiet moments.
    const best = async (f: (round: number) => Promise<number>, n: number) => {
      const all: number[] = [];
      for (let r = 0; r < n; r++) all.push(await f(r));
      return { best: Math.max(...all), median: [...all].sort((a, b) => a - b)[Math.floor(all.length / 2)] };
    };
    const pre1r = await best((r) => prefillTokS(engine, 1, promptTokens, 1 + r * 100), Math.max(1, Math.ceil(rounds / 2)));
    const pre8r = await best((r) => prefillTokS(engine, 8, Math.max(16, promptTokens / 8), 10 + r * 100), Math.max(1, Math.ceil(rounds / 2)));
    // Batch-1 decode rounds alternate with bandwidth measurements, so each round also has a
    // roofline measured next to it (the machine's bandwidth drifts when it is shared).
    const pairedRatios: number[] = [];
    const pairedBandwidth: number[] = [];
    const dec1r = await best(async (r) => {
      const bw = addon.measureMemoryBandwidth(512 << 20, 3, threads);
      const tokS = await decodeTokS(engine, 1, decodeTokens, 20 + r * 100);
      pairedBandwidth.push(bw);
      pairedRatios.push((tokS * engine.nativeInfo.weightBytesPerStep) / bw);
      return tokS;
    }, rounds);
    const dec8r = await best((r) => decodeTokS(engine, 8, decodeTokens, 30 + r * 100), rounds);
    const [pre1, pre8, dec1, dec8] = [pre1r.best, pre8r.best, dec1r.best, dec8r.best];
    const after = bandwidth();
    const bw1 = Math.max(before.one, after.one);
    const bwAll = Math.max(before.all, after.all, ...pairedBandwidth);
    const medianRatio = [...pairedRatios].sort((a, b) => a - b)[Math.floor(pairedRatios.length / 2)];
    const bytes = engine.nativeInfo.weightBytesPerStep;
    const roofline = bwAll / bytes;
    const result = {
      machine: `${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores`,
      model: args.engine ?? args.model,
      kernels: engine.info.kernels,
      threads: engine.info.threads,
      kvCacheDtype: engine.info.kvCacheDtype,
      bandwidth1ThreadGBs: bw1 / 1e9,
      bandwidthGBs: bwAll / 1e9,
      weightBytesPerToken: bytes,
      decodeRooflineTokS: roofline,
      prefillBatch1TokS: pre1,
      prefillBatch8TokS: pre8,
      decodeBatch1TokS: dec1,
      decodeBatch8TokS: dec8,
      decodeBatch1OfRoofline: dec1 / roofline,
      decodeBatch1OfPairedRoofline: { median: medianRatio, perRound: pairedRatios },
      medians: { prefillBatch1TokS: pre1r.median, prefillBatch8TokS: pre8r.median, decodeBatch1TokS: dec1r.median, decodeBatch8TokS: dec8r.median },
      rounds,
      promptTokens,
      decodeTokens,
    };
    if (args.json) {
      console.log(JSON.stringify(result, null, 2));
      return;
    }
    const f = (x: number, d = 1) => x.toFixed(d);
    console.log(`model              ${result.model}`);
    console.log(`machine            ${result.machine}; kernels ${result.kernels}, ${result.threads} threads, KV ${result.kvCacheDtype}`);
    console.log(`DRAM read          ${f(result.bandwidthGBs)} GB/s (${threads} threads), ${f(result.bandwidth1ThreadGBs)} GB/s (1 thread)`);
    console.log(`weights per token  ${f(bytes / 1e9, 3)} GB  -> batch-1 decode roofline ${f(roofline)} tok/s`);
    console.log(`prefill            batch 1: ${f(pre1)} tok/s (${promptTokens}-token prompt)   batch 8: ${f(pre8)} tok/s`);
    console.log(`decode             batch 1: ${f(dec1)} tok/s (${f(100 * result.decodeBatch1OfRoofline)}% of roofline)   batch 8: ${f(dec8)} tok/s`);
    console.log(`                   per round, against the bandwidth measured just before it: median ${f(100 * medianRatio)}% (${pairedRatios.map((x) => f(100 * x, 0) + '%').join(', ')})`);
    const m = result.medians;
    console.log(`medians            prefill ${f(m.prefillBatch1TokS)} / ${f(m.prefillBatch8TokS)}, decode ${f(m.decodeBatch1TokS)} / ${f(m.decodeBatch8TokS)} tok/s (best of ${rounds} rounds above)`);
  } finally {
    await engine.close();
  }
}

await main();
