// bench:gpu:engines: the product's own path for every weight format on the GPU machine, on a
// Qwen3-shaped checkpoint with random weights (scripts/gpu/random_checkpoint.py): `grpst build
// --qformat F` (calibration, AWQ's search and the accuracy report where --device puts them; bf16
// serves the checkpoint as it is), then `grpst serve`, measured through its HTTP API:
//   build       seconds, each phase as the build reported it, the engine's size and its accuracy
//               against the checkpoint
//   decode b1   one request, 128 prompt / 256 output tokens: tok/s from the time per output token,
//               against the roofline (the bytes of every weight a step reads / the copy
//               bandwidth) and against bf16 served in the same run
// Where bench:gpu's quantized rows run the harness on weights already in the GPU layouts, these
// are built engines end to end.
//
// A format F+lm_head builds with --quantize_lm_head (the head in F too).
//
//   npm run bench:gpu:engines -- --checkpoint DIR --work DIR [--formats bf16,int4_awq,fp8+lm_head]
//                                [--ceilings FILE | --copy-gbs N] [--out DIR] [--grpst CLI]
//                                [--build-args="..."] [--prune] [--smoke --device cpu]
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/model/checkpoint.js';
import { singleRequest, summarize } from '../src/bench/load.js';
import { benchFolders, startServe, stopServe } from './serve-process.js';

const { values: args } = parseArgs({
  options: {
    checkpoint: { type: 'string' },
    work: { type: 'string', default: 'bench-gpu-engines-work' },
    formats: { type: 'string', default: 'bf16,int4_awq,fp8,int8_wo,int8_sq' },
    ceilings: { type: 'string' },
    'copy-gbs': { type: 'string' },
    out: { type: 'string', default: 'bench-gpu-engines-out' },
    grpst: { type: 'string' },
    'build-args': { type: 'string', default: '' },
    // Remove each engine once it is measured (an 8B engine is 5-9 GB; the GPU machine's disk is small).
    prune: { type: 'boolean', default: false },
    // A quick pass of the whole flow with short requests (and --device cpu on a machine without a GPU).
    smoke: { type: 'boolean', default: false },
    device: { type: 'string', default: 'cuda' },
  },
});
const { checkpoint, work, outDir, grpst, heldout } = benchFolders(args, 'usage: npm run bench:gpu:engines -- --checkpoint DIR [--work DIR] [--formats bf16,int4_awq,fp8]');
const formats = args.formats!.split(',');
const decodeTokens = args.smoke ? 16 : 256;

const gpus = (spawnSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader']).stdout?.toString().trim() ?? '').split('\n').filter(Boolean);
const ceilings = args.ceilings ? (JSON.parse(readFileSync(args.ceilings, 'utf8')) as { gpus: { copy_gbs: number }[] }) : undefined;
const copyGbs = args['copy-gbs'] ? Number(args['copy-gbs']) : ceilings ? ceilings.gpus[0].copy_gbs : NaN;

interface Row { section: string; measure: string; value: string; target: string; note: string }
const rows: Row[] = [];
const add = (section: string, measure: string, value: string, target = '', note = '') => {
  rows.push({ section, measure, value, target, note });
  console.log(`[${section}] ${measure}: ${value} ${target ? `(target ${target})` : ''} ${note}`);
};
add('ceilings', 'device-to-device copy bandwidth', `${copyGbs.toFixed(0)} GB/s`, '', `${gpus[0] ?? 'no GPU'}; 4 GiB copy, bytes read + written`);

// ---- bytes a decode step reads ------------------------------------------------------------------
const ck = openCheckpoint(checkpoint);
const m = ck.model;
const kvBytesPerToken = m.numLayers * 2 * m.numKvHeads * m.headDim * 2; // bf16 K and V
const embedName = 'model.embed_tokens.weight';

/** Every weight byte a one-row step reads: all tensors but the embedding table, which it reads one row of (unless the head is tied to it). */
function stepBytes(tensors: { name: string; nbytes: number }[]): number {
  const total = tensors.reduce((a, t) => a + t.nbytes, 0);
  const embed = tensors.find((t) => t.name === embedName)?.nbytes ?? 0;
  return m.tieWordEmbeddings ? total : total - embed;
}

function engineStepBytes(dir: string): number {
  const manifest = JSON.parse(readFileSync(join(dir, 'engine.json'), 'utf8')) as { ranks: { tensors: Record<string, { nbytes: number }> }[] };
  return stepBytes(Object.entries(manifest.ranks[0].tensors).map(([name, t]) => ({ name, nbytes: t.nbytes })));
}

/** The format in file names: without '+', which some tools that copy results refuse. */
const slug = (format: string) => format.replace('+', '-');

// ---- engines: grpst build --qformat F -----------------------------------------------------------
function engineFor(format: string): { dir: string; bytes: number } {
  if (format === 'bf16') return { dir: checkpoint, bytes: stepBytes([...ck.tensors.values()]) };
  const dir = join(work, `engine-${slug(format)}`);
  const t0 = performance.now();
  const extra = args['build-args']!.split(/\s+/).filter(Boolean);
  const [qformat, head] = format.split('+');
  if (head !== undefined && head !== 'lm_head') throw new Error(`--formats: ${format} is not a format (F or F+lm_head)`);
  const r = spawnSync(process.execPath, [...process.execArgv, grpst, 'build', '--model_dir', checkpoint, '--output_dir', dir, '--qformat', qformat,
    ...(head ? ['--quantize_lm_head'] : []),
    '--device', args.device!, '--max_batch_size', '64', '--max_seq_len', '4096', '--max_input_len', '3072', '--max_num_tokens', '8192',
    ...(heldout ? ['--eval_dataset', heldout] : []), ...extra, '--force'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(r.stdout ?? '');
  if (r.status !== 0) throw new Error(`grpst build --qformat ${qformat}${head ? ' --quantize_lm_head' : ''} exited with ${r.status}`);
  // "calibrate done in 15.7s: on ..." -> "calibrate 15.7s (on ...)"
  const phases = [...(r.stdout ?? '').matchAll(/\] (\w+) done in ([\d.]+m?[\d.]*s)(?::\s*([^;\n]*))?/g)].map(([, phase, t, where]) => `${phase} ${t}${where && /on /.test(where) ? ` (${where.trim()})` : ''}`);
  const manifest = JSON.parse(readFileSync(join(dir, 'engine.json'), 'utf8')) as { accuracy?: { top1_agreement: number; mean_kl: number; tokens: number } };
  const acc = manifest.accuracy;
  const bytes = engineStepBytes(dir);
  add('build', `${format} engine`, `${((performance.now() - t0) / 1000).toFixed(0)} s`, '',
    `${phases.join(', ')}; ${(bytes / 1e9).toFixed(2)} GB read per step` +
      (acc ? `; top-1 ${(100 * acc.top1_agreement).toFixed(2)}%, KL ${acc.mean_kl.toExponential(2)} over ${acc.tokens} tokens against the checkpoint` : ''));
  return { dir, bytes };
}

const table = () => ['| section | measure | value | target | note |', '| --- | --- | --- | --- | --- |', ...rows.map((r) => `| ${r.section} | ${r.measure} | ${r.value} | ${r.target} | ${r.note} |`)].join('\n');
/** The table so far: written after every format, so a run cut short by its time limit keeps what it measured. */
function writeTable(): void {
  writeFileSync(join(outDir, 'bench-gpu-engines.md'), `device: ${gpus[0] ?? 'no GPU'}\n\n${table()}\n`);
  writeFileSync(join(outDir, 'bench-gpu-engines.json'), JSON.stringify({ gpus, rows }, null, 1));
}

const targets: Record<string, string> = { bf16: '>= 90% of roofline', int4_awq: '>= 3x bf16', fp8: '>= 1.8x bf16' };
const decoded = new Map<string, number>();
let failed = 0;
for (const format of formats) {
  let built: string | undefined;
  try {
    const engine = engineFor(format);
    if (engine.dir !== checkpoint) built = engine.dir;
    const served = await startServe(grpst, { dir: join(work, `conf-${slug(format)}`), engine: engine.dir, tokenizer: engine.dir, device: args.device!, maxSeqLen: 4096 }, join(outDir, `serve-${slug(format)}.log`));
    try {
      add('load', format, `${served.loadSeconds.toFixed(0)} s`, '', 'grpst serve until /health answers 200');
      const one = async (len: number, out: number, salt: number) => summarize(await singleRequest(served.url, len, out, salt));
      await one(64, 8, 0); // warm-up: graphs, cuBLASLt algorithms
      const tpot = (await one(128, decodeTokens, 1)).tpotMs[0];
      const tokS = 1000 / tpot;
      decoded.set(format, tokS);
      const roof = (copyGbs * 1e9) / (engine.bytes + 200 * kvBytesPerToken);
      const bf16 = decoded.get('bf16');
      add('decode b1', `${format} ${format === 'bf16' ? 'checkpoint' : 'engine'} through the HTTP server`, `${tokS.toFixed(1)} tok/s`, targets[format.split('+')[0]] ?? '',
        `TPOT ${tpot.toFixed(3)} ms; roofline ${roof.toFixed(0)} tok/s -> ${((100 * tokS) / roof).toFixed(1)}%` + (bf16 && format !== 'bf16' ? `; ${(tokS / bf16).toFixed(2)}x bf16` : ''));
    } finally {
      await stopServe(served.child);
    }
  } catch (err) {
    failed++;
    add('error', format, 'failed', '', err instanceof Error ? err.message : String(err));
  }
  if (args.prune && built) rmSync(built, { recursive: true, force: true });
  writeTable();
}
console.log(`\ndevice: ${gpus[0] ?? 'no GPU'}\n${table()}`);
if (failed) process.exitCode = 1;

