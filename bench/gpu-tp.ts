// bench:gpu:tp: tensor parallelism on the GPU machine, on a Qwen3-32B-shaped checkpoint with random
// weights (scripts/gpu/random_checkpoint.py). For each tp size (--tp; default 1 and every power of
// two up to the GPUs present), the product's own path: `grpst build --tp_size N` (tp 1 serves the
// checkpoint as it is), then `grpst serve --mpi_np N` (one process per GPU over NCCL), measured
// through its HTTP API:
//   decode b1   one request, 128 prompt / 256 output tokens: tok/s from the time per output token,
//               against the roofline (bf16 bytes each rank reads per token / the copy bandwidth)
//   serving     64 concurrent requests, 1,024 prompt / 512 output tokens: output tok/s, TTFT and
//               ITL p50/p99, against its roofline (64 x bandwidth / (weights + KV read per step,
//               per rank))
// and each tp size against tp 1 in the same run.
//
//   npm run bench:gpu:tp -- --checkpoint DIR --work DIR [--tp 1,2] [--ceilings FILE | --copy-gbs N]
//                           [--requests 64] [--out DIR] [--grpst CLI] [--smoke --device cpu]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad, singleRequest, summarize, tokenPrompt, type LoadSummary } from '../src/bench/load.js';
import { benchFolders, startServe, stopServe } from './serve-process.js';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    work: { type: 'string', default: 'bench-gpu-tp-work' },
    tp: { type: 'string' },
    ceilings: { type: 'string' },
    'copy-gbs': { type: 'string' },
    requests: { type: 'string', default: '64' },
    out: { type: 'string', default: 'bench-gpu-tp-out' },
    grpst: { type: 'string' },
    // A quick pass of the whole flow with small requests (and --device cpu on a machine without a GPU).
    smoke: { type: 'boolean', default: false },
    device: { type: 'string', default: 'cuda' },
  },
});
const { checkpoint, work, outDir, grpst, heldout } = benchFolders(args, 'usage: npm run bench:gpu:tp -- --checkpoint DIR [--work DIR] [--tp 1,2]');

const gpus = (spawnSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader']).stdout?.toString().trim() ?? '').split('\n').filter(Boolean);
const tpSizes = args.tp ? args.tp.split(',').map(Number) : [1, 2, 4, 8].filter((n) => n <= Math.max(1, gpus.length));

// ---- the model's bytes per step (bf16) ---------------------------------------------------------
interface HfConfig { tie_word_embeddings?: boolean; hidden_size: number; intermediate_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; head_dim: number; vocab_size: number }
const cfg = JSON.parse(readFileSync(join(checkpoint, 'config.json'), 'utf8')) as HfConfig;
const qDim = cfg.num_attention_heads * cfg.head_dim;
const kvDim = cfg.num_key_value_heads * cfg.head_dim;
const layerParams = cfg.hidden_size * (qDim + 2 * kvDim) + qDim * cfg.hidden_size + 3 * cfg.hidden_size * cfg.intermediate_size;
/** Bytes one rank reads per decode step: its slice of every linear and of lm_head (the embedding row is noise). */
const weightBytesPerRank = (tp: number) => (2 * (cfg.num_hidden_layers * layerParams + cfg.vocab_size * cfg.hidden_size)) / tp;
/** KV bytes one rank reads per token of context: its KV heads (replicated when tp exceeds them). */
const kvBytesPerTokenPerRank = (tp: number) => cfg.num_hidden_layers * 2 * Math.max(1, cfg.num_key_value_heads / tp) * cfg.head_dim * 2;

interface Ceilings {
  gpus: { copy_gbs: number }[];
  /** NCCL all-reduce across every GPU here (scripts/gpu/random_checkpoint.py): one token's and 64 tokens' hidden state. */
  allreduce?: {
    gpus: number;
    us_per_allreduce?: Record<string, number>;
    /** The all-gather of a 64-row step's fp32 logits (every rank's vocabulary slice). */
    logits_allgather?: { bytes: number; us: number; gb_s: number };
    transport?: string[];
    error?: string;
  };
}
const ceilings: Ceilings | undefined = args.ceilings ? JSON.parse(readFileSync(args.ceilings, 'utf8')) : undefined;
const copyGbs = args['copy-gbs'] ? Number(args['copy-gbs']) : ceilings ? Math.min(...ceilings.gpus.map((g) => g.copy_gbs)) : NaN;
// NCCL's all-reduce of one token's hidden state as the ceilings timed it (eager calls), for tp ranks.
const eagerAllReduceUs = (tp: number): number | undefined => {
  const ar = ceilings?.allreduce;
  return ar?.us_per_allreduce && ar.gpus === tp ? Object.values(ar.us_per_allreduce)[0] : undefined;
};

interface Row { section: string; measure: string; value: string; note: string }
const rows: Row[] = [];
const add = (section: string, measure: string, value: string, note = '') => {
  rows.push({ section, measure, value, note });
  console.log(`[${section}] ${measure}: ${value} ${note}`);
};
add('ceilings', 'device-to-device copy bandwidth', `${copyGbs.toFixed(0)} GB/s`, `slowest of ${gpus.length} GPUs (${gpus[0] ?? 'none'}); 4 GiB copy, bytes read + written`);
if (ceilings?.allreduce) {
  const ar = ceilings.allreduce;
  add('ceilings', `NCCL all-reduce across ${ar.gpus} GPUs`,
    ar.us_per_allreduce ? Object.entries(ar.us_per_allreduce).map(([k, v]) => `${v.toFixed(1)} us for ${k}`).join('; ') : 'not measured',
    ar.error ?? `torch.distributed, 200 in a row; transport: ${ar.transport?.join(', ') || 'not reported'}`);
  if (ar.logits_allgather) {
    const g = ar.logits_allgather;
    add('ceilings', `NCCL all-gather of 64 rows of fp32 logits across ${ar.gpus} GPUs`, `${(g.us / 1000).toFixed(2)} ms`,
      `${(g.bytes / 1e6).toFixed(1)} MB gathered, ${g.gb_s.toFixed(1)} GB/s; once per step`);
  }
}
add('model', 'checkpoint', `${((2 * (cfg.num_hidden_layers * layerParams + (cfg.tie_word_embeddings ? 1 : 2) * cfg.vocab_size * cfg.hidden_size)) / 1e9).toFixed(1)} GB bf16`,
  `${cfg.num_hidden_layers} layers, hidden ${cfg.hidden_size}, ${cfg.num_attention_heads} / ${cfg.num_key_value_heads} heads, MLP ${cfg.intermediate_size}`);

// ---- engines: grpst build --tp_size N ----------------------------------------------------------
function engineFor(tp: number): string {
  if (tp === 1) return checkpoint;
  const dir = join(work, `engine-tp${tp}`);
  if (existsSync(join(dir, 'engine.json'))) {
    add('build', `tp ${tp} engine`, 'reused', dir);
    return dir;
  }
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...process.execArgv, grpst, 'build', '--model_dir', checkpoint, '--output_dir', dir, '--tp_size', String(tp),
    '--max_batch_size', '64', '--max_input_len', '3072', '--max_seq_len', '4096', '--max_num_tokens', '8192', '--eval_tokens', '16', ...(heldout ? ['--eval_dataset', heldout] : []), '--force'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`grpst build --tp_size ${tp} exited with ${r.status}`);
  add('build', `tp ${tp} engine`, `${((performance.now() - t0) / 1000).toFixed(0)} s`, `grpst build --tp_size ${tp}, bf16, a 16-token accuracy check`);
  return dir;
}

// The shapes; --smoke shrinks them to check the flow quickly.
const shape = args.smoke ? { promptTokens: 64, outputTokens: 16, decodeTokens: 16 } : { promptTokens: 1024, outputTokens: 512, decodeTokens: 256 };

// What a tp > 1 step pays over its roofline, spread over its all-reduces (two per layer and the
// embedding's): an upper bound on what each costs inside the step's CUDA graph. The ceilings'
// NCCL figure times eager calls from torch, which cost more than the same calls in a graph.
function overRoofline(tp: number, rooflineMs: number, measuredMs: number): string {
  if (tp === 1) return '';
  const n = 2 * cfg.num_hidden_layers + 1;
  const over = measuredMs - rooflineMs;
  const eager = eagerAllReduceUs(tp);
  return `; ${over.toFixed(2)} ms per step over it, at most ${((1000 * over) / n).toFixed(1)} us for each of its ${n} all-reduces` +
    (eager ? ` (eager NCCL in the ceilings: ${eager.toFixed(1)} us)` : '');
}

interface TpResult { tp: number; decodeTokS: number; serving?: LoadSummary }
async function measure(tp: number): Promise<TpResult> {
  const engine = engineFor(tp);
  const log = join(outDir, `serve-tp${tp}.log`);
  const served = await startServe(grpst, { dir: join(work, `conf-tp${tp}`), engine, tokenizer: checkpoint, device: args.device, maxSeqLen: 4096 }, log, ['--mpi_np', String(tp)]);
  try {
    const { url } = served;
    // How the ranks reduce, as the server's ready line says (NCCL, or the one-shot kernel for small buffers).
    const group = readFileSync(log, 'utf8').match(/tensor parallel \d+ \((.*)\), max_seq_len/)?.[1];
    add('load', `tp ${tp}`, `${served.loadSeconds.toFixed(0)} s`,
      'grpst serve until /health answers 200 (weights onto the GPUs, graphs)' + (group ? `; ${group}` : ''));
    const one = async (len: number, out: number, salt: number) => summarize(await singleRequest(url, len, out, salt));
    await one(64, 8, 0); // warm-up
    const tpot = (await one(128, shape.decodeTokens, 1)).tpotMs[0];
    const roof = (copyGbs * 1e9) / (weightBytesPerRank(tp) + 200 * kvBytesPerTokenPerRank(tp));
    const decodeTokS = 1000 / tpot;
    add('decode b1', `tp ${tp}`, `${decodeTokS.toFixed(1)} tok/s`,
      `TPOT ${tpot.toFixed(2)} ms; roofline ${roof.toFixed(1)} tok/s (${(weightBytesPerRank(tp) / 1e9).toFixed(2)} GB per rank per token) -> ${((100 * decodeTokS) / roof).toFixed(1)}%` +
        overRoofline(tp, 1000 / roof, tpot));
    const n = Number(args.requests);
    const concurrency = Math.min(64, n);
    const load = await runLoad({ url, model: 'qwen3', concurrency, requests: n, prompt: tokenPrompt(shape.promptTokens, 3), outputTokens: shape.outputTokens });
    const bad = load.timings.find((t) => !t.ok);
    if (bad) console.error(`a served request failed: ${bad.error}`);
    const s = summarize(load);
    const meanContext = shape.promptTokens + shape.outputTokens / 2;
    const roofServe = (concurrency * copyGbs * 1e9) / (weightBytesPerRank(tp) + concurrency * meanContext * kvBytesPerTokenPerRank(tp));
    add('serving', `tp ${tp}, ${concurrency} concurrent, ${shape.promptTokens} in / ${shape.outputTokens} out, ${n} requests`, `${s.outputTokensPerSecond.toFixed(0)} output tok/s`,
      `roofline ${roofServe.toFixed(0)} tok/s (weights + KV at mean context ${meanContext}, per rank) -> ${((100 * s.outputTokensPerSecond) / roofServe).toFixed(1)}%; ` +
        `TTFT p50/p99 ${s.ttftMs[0].toFixed(0)}/${s.ttftMs[2].toFixed(0)} ms; ITL p50/p99 ${s.itlMs[0].toFixed(1)}/${s.itlMs[2].toFixed(1)} ms; failed ${s.failed}`);
    return { tp, decodeTokS, serving: s };
  } finally {
    await stopServe(served.child);
  }
}

const results: TpResult[] = [];
for (const tp of tpSizes) {
  try {
    results.push(await measure(tp));
  } catch (err) {
    add('error', `tp ${tp}`, 'failed', err instanceof Error ? err.message : String(err));
  }
}
const base = results.find((r) => r.tp === 1);
for (const r of results) {
  if (!base || r.tp === 1) continue;
  add('scaling', `tp ${r.tp} against tp 1`, `decode ${(r.decodeTokS / base.decodeTokS).toFixed(2)}x`,
    r.serving && base.serving ? `serving ${(r.serving.outputTokensPerSecond / base.serving.outputTokensPerSecond).toFixed(2)}x` : '');
}
const table = ['| section | measure | value | note |', '| --- | --- | --- | --- |', ...rows.map((r) => `| ${r.section} | ${r.measure} | ${r.value} | ${r.note} |`)].join('\n');
console.log(`\ndevice: ${gpus.length} x ${gpus[0] ?? 'no GPU'}\n${table}`);
writeFileSync(join(outDir, 'bench-gpu-tp.md'), `device: ${gpus.length} x ${gpus[0] ?? 'no GPU'}\n\n${table}\n`);
writeFileSync(join(outDir, 'bench-gpu-tp.json'), JSON.stringify({ gpus, rows, results }, null, 1));
if (results.length < tpSizes.length) process.exitCode = 1;
