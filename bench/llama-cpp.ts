// npm run bench:llama-cpp — our CPU runtime against llama.cpp on the same weights, the same
// machine and the same number of threads, measured in the same run. The Qwen3-0.6B-shaped random
// checkpoint (bench/make-random-checkpoint.ts) is written as GGUF files by bench/peers/qwen3-gguf.ts
// and run by llama.cpp through node-llama-cpp (installed into .cache/peers on first use); each
// of our formats faces llama.cpp's nearest one:
//   bf16      the checkpoint as it is          vs GGUF BF16
//   int8_wo   grpst build --qformat int8_wo    vs Q8_0 (per 32 weights an f16 scale; llama.cpp
//                                                 rounds activations to int8 per 32 too)
//   int8_sq   grpst build --qformat int8_sq    vs Q8_0 (both multiply in int8)
//   int4_awq  grpst build --qformat int4_awq   vs Q4_0 (per 32 weights an f16 scale; its embedding
//                                                 and tied head in Q8_0)
// Both engines are loaded together and measured in alternating rounds (which goes first swaps
// each round), so drift on a shared machine falls on both: prefill of one prompt, batch-1 decode
// and batch-8 decode (8 sequences generating together), greedy, end of text ignored; with
// --context N also batch-1 decode after an N-token prompt (the attention over a long cache). Each side's
// batch-1 decode is also set against its own roofline: bytes of weights a step reads / the DRAM
// read bandwidth measured here.
//
//   npm run bench:llama-cpp [-- --pairs bf16,int8_wo,int8_sq,int4_awq[,int4_awq:head,...] --rounds 5 --threads N
//                              --decode-tokens 48 --prompt-tokens 512 --context N --json]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadAddon, loadEngine, type Engine } from '../src/engine/index.js';
import { defaultSampling } from '../src/engine/types.js';
import { decodeTokS, prefillTokS } from './engine-timing.js';
import { randomQwen3_0_6b } from './make-random-checkpoint.js';
import { NODE_LLAMA_CPP_VERSION, openLlamaCpp, type LlamaCppPeer } from './peers/llama-cpp.js';
import { qwen3GgufTensorBytes, writeQwen3Gguf, type PeerFormat } from './peers/qwen3-gguf.js';
import { promptIds } from './prompt-ids.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  args: process.argv.slice(2).filter((a) => a !== '--'),
  options: {
    pairs: { type: 'string', default: 'bf16,int8_wo,int8_sq,int4_awq' },
    rounds: { type: 'string', default: '5' },
    threads: { type: 'string' },
    'decode-tokens': { type: 'string', default: '48' },
    'prompt-tokens': { type: 'string', default: '512' },
    context: { type: 'string', default: '0' },
    json: { type: 'boolean', default: false },
  },
});
const threads = Number(args.threads ?? availableParallelism());
const rounds = Number(args.rounds);
const decodeTokens = Number(args['decode-tokens']);
const promptTokens = Number(args['prompt-tokens']);
const contextTokens = Number(args.context);
const longestPrompt = Math.max(promptTokens, contextTokens);
// "<format>:head": our engine built with --quantize_lm_head, as llama.cpp's Q8_0 / Q4_0 files
// quantize their (tied) output head too (Q4_0's in Q8_0).
const peerFormat: Record<string, PeerFormat> = {
  bf16: 'bf16', int8_wo: 'q8_0', int8_sq: 'q8_0', int4_awq: 'q4_0', 'int8_wo:head': 'q8_0', 'int8_sq:head': 'q8_0', 'int4_awq:head': 'q4_0',
};

const work = join(root, '.cache', 'bench');
const log = (s: string) => process.stderr.write(`${s}\n`);

/** Names made from the checkpoint carry its digest: a remade checkpoint never meets stale builds. */
const tag = (checkpoint: string) => readFileSync(join(checkpoint, 'weights.sha256'), 'utf8').slice(0, 12);

/** Our engine for a format: the checkpoint itself for bf16, else a build of it (made once). */
function oursFor(format: string, checkpoint: string): string {
  if (format === 'bf16') return checkpoint;
  const [qformat, head] = format.split(':');
  const dir = join(work, `qwen3-0.6b-random-${tag(checkpoint)}-${qformat}${head ? '-head' : ''}`);
  if (existsSync(join(dir, 'engine.json'))) return dir;
  const flags = ['--qformat', qformat!, ...(head ? ['--quantize_lm_head'] : [])];
  log(`building ${dir} (grpst build ${flags.join(' ')}) ...`);
  const r = spawnSync(process.execPath, [join(root, 'bin', 'grpst.js'), 'build', '--model_dir', checkpoint, '--output_dir', dir, ...flags, '--eval_tokens', '16'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`grpst build ${flags.join(' ')} exited with ${r.status}`);
  return dir;
}

/** The GGUF file for a format (written once) and the bytes of its tensors. */
function peerFor(format: PeerFormat, checkpoint: string): { file: string; bytes: number } {
  const dir = join(work, 'gguf');
  const file = join(dir, `qwen3-0.6b-random-${tag(checkpoint)}-${format}.gguf`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    log(`writing ${file} ...`);
    writeQwen3Gguf(checkpoint, file, format);
  }
  return { file, bytes: qwen3GgufTensorBytes(checkpoint, format) };
}

interface Series { ours: number[]; peer: number[] }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

interface PairResult {
  format: string;
  peerFormat: PeerFormat;
  oursBytesPerToken: number;
  peerBytesPerToken: number;
  greedyAgreement: { same: number; of: number };
  prefill: Series;
  decode1: Series;
  decode8: Series;
  /** Batch-1 decode after a --context-token prompt (empty without --context). */
  decodeLong: Series;
}

async function measurePair(format: string, checkpoint: string): Promise<PairResult> {
  const pf = peerFormat[format];
  if (!pf) throw new Error(`--pairs: ${format} is not one of ${Object.keys(peerFormat).join(', ')}`);
  const oursDir = oursFor(format, checkpoint);
  const peerFile = peerFor(pf, checkpoint);
  const ours = await loadEngine(oursDir, {
    threads,
    maxBatchSize: 8,
    maxNumTokens: Math.max(512, promptTokens),
    maxSeqLen: Math.max(2048, longestPrompt + decodeTokens + 16),
    maxTokensInPagedKvCache: Math.max(16384, longestPrompt + decodeTokens + 256),
    enablePrefixCaching: false,
  });
  let peer: LlamaCppPeer | undefined;
  try {
    peer = await openLlamaCpp(root, peerFile.file, { threads, maxBatch: 8, contextSize: longestPrompt + decodeTokens + 64 });
    // Warm-up: pages every weight in and settles both thread pools.
    await decodeTokS(ours, 1, 8, 99);
    await peer.decodeTokS(1, 8, 99);
    const agreement = await greedyAgreement(ours, peer);
    const result: PairResult = {
      format, peerFormat: pf, oursBytesPerToken: ours.nativeInfo.weightBytesPerStep, peerBytesPerToken: peerFile.bytes,
      greedyAgreement: agreement, prefill: { ours: [], peer: [] }, decode1: { ours: [], peer: [] }, decode8: { ours: [], peer: [] },
      decodeLong: { ours: [], peer: [] },
    };
    for (let r = 0; r < rounds; r++) {
      const p = peer;
      type Measure = () => Promise<number>;
      const sides: [keyof Series, Measure, Measure, Measure, Measure][] = [
        ['ours', () => prefillTokS(ours, 1, promptTokens, 1 + r), () => decodeTokS(ours, 1, decodeTokens, 20 + r), () => decodeTokS(ours, 8, decodeTokens, 30 + r * 10),
          () => decodeTokS(ours, 1, decodeTokens, 90 + r, contextTokens)],
        ['peer', () => p.prefillTokS(promptTokens, 1 + r), () => p.decodeTokS(1, decodeTokens, 20 + r), () => p.decodeTokS(8, decodeTokens, 30 + r * 10),
          () => p.decodeTokS(1, decodeTokens, 90 + r, contextTokens)],
      ];
      if (r % 2) sides.reverse();
      for (const [side, pre, d1, d8, long] of sides) {
        result.prefill[side].push(await pre());
        result.decode1[side].push(await d1());
        result.decode8[side].push(await d8());
        if (contextTokens > 0) result.decodeLong[side].push(await long());
      }
      log(`${format} round ${r + 1}/${rounds}: decode b1 ours ${result.decode1.ours.at(-1)!.toFixed(1)} / llama.cpp ${result.decode1.peer.at(-1)!.toFixed(1)} tok/s`);
    }
    return result;
  } finally {
    await peer?.close();
    await ours.close();
  }
}

/** Greedy tokens of both after one prompt, counted up to the first difference (a same-weights check). */
async function greedyAgreement(ours: Engine, peer: LlamaCppPeer): Promise<{ same: number; of: number }> {
  const n = 16;
  const prompt = promptIds(32, 7);
  const mine: number[] = [];
  for await (const ev of ours.submit({ tokens: prompt, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: n, ignoreEos: true })) mine.push(...ev.tokens);
  const theirs = await peer.greedy(prompt, n);
  let same = 0;
  while (same < n && mine[same] === theirs[same]) same++;
  return { same, of: n };
}

async function main(): Promise<void> {
  const checkpoint = randomQwen3_0_6b();
  const addon = loadAddon();
  const bandwidth = () => addon.measureMemoryBandwidth(1 << 30, 5, threads);
  const before = bandwidth();
  const results: PairResult[] = [];
  for (const format of args.pairs!.split(',')) results.push(await measurePair(format, checkpoint));
  const bw = Math.max(before, bandwidth());
  const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, ${threads} threads`;
  if (args.json) {
    console.log(JSON.stringify({ machine, nodeLlamaCpp: NODE_LLAMA_CPP_VERSION, bandwidthGBs: bw / 1e9, rounds, promptTokens, decodeTokens, contextTokens, results }, null, 2));
    return;
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`machine   ${machine}; DRAM read ${f(bw / 1e9)} GB/s; llama.cpp via node-llama-cpp ${NODE_LLAMA_CPP_VERSION}`);
  console.log(`medians of ${rounds} alternating rounds (best in brackets); prompt ${promptTokens} tokens, ${decodeTokens} generated; ratio = ours / llama.cpp\n`);
  const long = contextTokens > 0 ? ` decode b1 after ${contextTokens} tokens |` : '';
  console.log(`| ours vs llama.cpp | GB read per token | greedy tokens agree | prefill tok/s | decode b1 tok/s (of roofline) | decode b8 tok/s |${long}`);
  console.log(`|---|---|---|---|---|---|${long ? '---|' : ''}`);
  for (const r of results) {
    const cell = (s: Series) => `${f(median(s.ours))} [${f(Math.max(...s.ours))}] vs ${f(median(s.peer))} [${f(Math.max(...s.peer))}]: **${f(median(s.ours) / median(s.peer), 2)}x**`;
    const roof = (tokS: number, bytes: number) => `${f((100 * tokS * bytes) / bw, 0)}%`;
    const d1 = `${f(median(r.decode1.ours))} (${roof(median(r.decode1.ours), r.oursBytesPerToken)}) vs ${f(median(r.decode1.peer))} (${roof(median(r.decode1.peer), r.peerBytesPerToken)}): **${f(median(r.decode1.ours) / median(r.decode1.peer), 2)}x**`;
    const longCell = long ? ` ${cell(r.decodeLong)} |` : '';
    console.log(`| ${r.format} vs ${r.peerFormat.toUpperCase()} | ${f(r.oursBytesPerToken / 1e9, 3)} vs ${f(r.peerBytesPerToken / 1e9, 3)} | ${r.greedyAgreement.same}/${r.greedyAgreement.of} | ${cell(r.prefill)} | ${d1} | ${cell(r.decode8)} |${longCell}`);
  }
}

await main();
