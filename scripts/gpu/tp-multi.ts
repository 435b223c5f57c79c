// Tensor parallelism across the GPUs of one machine, run the way `grpst serve --mpi_np N` runs it:
// engines built by the build pipeline with --tp_size 1 and N; the tp1 engine loaded plainly on
// GPU 0; the tpN engine as rank 0 of an NCCL group (this process, GPU 0) whose ranks 1..N-1 are
// worker processes on GPUs 1..N-1 started by src/daemon/tp-launch.ts. Against tp1, per prompt:
// prompt logprobs within the two-rank bf16 tolerance of test/gpu/kernels/model_parity_tp.cu (the
// wider checkpoint: the wide-head checks' bounds), the
// same greedy tokens until a near-tie (CUDA graphs with their NCCL calls), GPU sampling agreeing
// with those tokens, and concurrent requests agreeing until a near-tie. N = 2 and, with four GPUs,
// 4. Checkpoints: the tiny fixtures (tp 2) and a wider one with head_dim 64 and 4 KV heads (tp 2
// and 4; it reaches the tensor-core decode attention). Each group must have taken the one-shot
// all-reduce; tiny-a runs once more with GRPST_ONESHOT_ALLREDUCE=0 (NCCL alone). One line per
// check, exit 1 on any failure.
//   node .carry/js/tp-multi.mjs [WORK_DIR]      (bundled by scripts/gpu/pack-node.sh)
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { runBuild } from '../../src/build/index.js';
import { resolveSettings } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { countGpus } from '../../src/daemon/gpus.js';
import { launchTensorParallelWorkers, multicastOffEnv } from '../../src/daemon/tp-launch.js';
import type { Engine } from '../../src/engine/engine.js';
import { loadEngineFolder } from '../../src/engine/engine-folder.js';
import { loadEngine } from '../../src/engine/index.js';
import { ncclUniqueId } from '../../src/engine/tensor-parallel.js';
import { defaultSampling, type LoadOptions, type SubmitRequest } from '../../src/engine/types.js';
import { writeTinyCheckpoint, type TinySpec } from '../../src/model/tiny-checkpoint.js';
import { steps as run, TOL_MAX_LOGPROB, TOL_MEAN_LOGPROB } from '../../test/gpu/wide-head-checks.js';
import { distance, showDistance, within, type Bound } from '../../test/gpu/parity-checks.js';
import { checkpoint, refs, specFile, tokenizerDir } from '../../test/helpers/fixtures.js';

Object.assign(process.env, multicastOffEnv);
const work = path.resolve(process.argv[2] ?? '/tmp/grpst-tp-multi');
const limits: LoadOptions = { device: 'cuda', maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, maxBatchSize: 8 };
// The tiny fixtures: the two-rank bounds of model_parity_tp.cu.
const FIXTURE_TOL: Bound = { max: 0.25, mean: 0.1 };
// The wider random checkpoint has larger logits, so bf16 rounding moves its logprobs further: the
// bounds of the wide-head checks, the same kind of checkpoint (the first two-GPU run measured tp2
// against tp1 at max 0.26-0.28 / mean 0.083-0.099 on two of its prompts, greedy tokens equal).
const WIDE_TOL: Bound = { max: TOL_MAX_LOGPROB, mean: TOL_MEAN_LOGPROB };
const NEAR_TIE = 0.1;

/** Steps before the first whose top-2 margin is under NEAR_TIE. */
const beforeTie = (margins: number[]) => {
  const i = margins.findIndex((m) => m < NEAR_TIE);
  return i < 0 ? margins.length : i;
};

const results: { name: string; pass: boolean }[] = [];
function add(name: string, pass: boolean, detail: string): void {
  results.push({ name, pass });
  console.log(`${pass ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
}

async function build(model: string, tp: number, out: string): Promise<string> {
  rmSync(out, { recursive: true, force: true });
  // The held-out text by its path in the working tree: the bundled script cannot find the
  // build's shipped copy relative to itself.
  const s = resolveSettings({}, { model_dir: model, output_dir: out, eval_tokens: 64, tp_size: tp,
    eval_dataset: path.resolve('data/heldout.txt') });
  await runBuild(s, { reporter: new MemoryReporter(), version: 'tp-multi', bridge: loadRuntimeBridge });
  return out;
}

/** GPU bus id of every compute process nvidia-smi lists. */
function gpuOfPids(): Map<number, string> {
  const out = execFileSync('nvidia-smi', ['--query-compute-apps=pid,gpu_bus_id', '--format=csv,noheader'], { encoding: 'utf8' });
  return new Map(out.trim().split('\n').filter(Boolean).map((l) => {
    const [pid, bus] = l.split(',').map((x) => x.trim());
    return [Number(pid), bus] as [number, string];
  }));
}

async function compare(label: string, modelDir: string, tp: number, prompts: number[][], tol: Bound): Promise<void> {
  const one = await build(modelDir, 1, path.join(work, `${label}-tp1`));
  const many = await build(modelDir, tp, path.join(work, `${label}-tp${tp}`));
  let plain: Engine | undefined;
  let rank0: Engine | undefined;
  const lines: string[] = [];
  const group = launchTensorParallelWorkers(many, tp, ncclUniqueId(), limits, { info: (l) => lines.push(l), error: (l) => console.error(l) });
  try {
    plain = await loadEngine(one, limits);
    rank0 = await Promise.race([loadEngineFolder(many, limits, { ncclId: group.ncclId }), group.failed.then((why) => Promise.reject(new Error(why)))]);
    add(`${label} tp${tp} joins NCCL`, rank0.info.kernels.includes(`tensor parallel ${tp} (nccl`), rank0.info.kernels);
    // The decode step's all-reduces: the one-shot kernel over peer memory (its set-up checked it
    // against the CPU's sum on every rank), or NCCL alone when GRPST_ONESHOT_ALLREDUCE=0.
    const oneShot = process.env.GRPST_ONESHOT_ALLREDUCE !== '0';
    add(`${label} tp${tp} all-reduces ${oneShot ? 'one-shot over peer memory' : 'through NCCL alone'}`,
      rank0.info.kernels.includes(oneShot ? 'one-shot over peer memory' : 'one-shot all-reduce off: turned off by GRPST_ONESHOT_ALLREDUCE=0'), rank0.info.kernels);
    const workers = (lines.join(' ').match(/workers ([\d, ]+)/)?.[1] ?? '').split(',').map((p) => Number(p.trim())).filter(Boolean);
    const gpus = gpuOfPids();
    const buses = new Set([gpus.get(process.pid), ...workers.map((p) => gpus.get(p))]);
    add(`${label} tp${tp}: one process per GPU`, workers.length === tp - 1 && !buses.has(undefined) && buses.size === tp,
      `rank 0 pid ${process.pid} and workers ${workers.join(', ')} on ${[...buses].join(' ')}`);
    const reqs: SubmitRequest[] = prompts.map((p) => ({ tokens: p, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 24, logprobs: 2, promptLogprobs: true, ignoreEos: true }));
    for (const [i, r] of reqs.entries()) {
      const tag = `${label} tp${tp} prompt ${i}`;
      const a = await run(plain, r);
      const b = await run(rank0, r);
      const d = distance(a.promptLogprobs, b.promptLogprobs, a.promptLogprobs.length);
      add(`${tag} prompt logprobs vs tp1`, d.n > 0 && d.n === b.promptLogprobs.length && within(d, tol),
        `${d.n} positions, ${showDistance(d, tol)}`);
      const n = Math.min(beforeTie(a.margins), beforeTie(b.margins));
      add(`${tag} greedy tokens vs tp1 until a near-tie`, a.tokens.slice(0, n).every((t, j) => t === b.tokens[j]) && b.tokens.length === 24,
        `${n} of ${a.tokens.length} steps compared`);
      // The same request without logprobs: sampled on the GPU, and its prefill gathers one logits
      // row instead of every prompt position (another LM-head kernel for the last row), so the two
      // may part only at a near-tie of the greedy run's margins.
      const s = await run(rank0, { ...r, logprobs: undefined, promptLogprobs: false });
      const m = beforeTie(b.margins);
      const parted = s.tokens.findIndex((t, j) => t !== b.tokens[j]);
      add(`${tag} GPU sampling = its greedy run until a near-tie`,
        s.tokens.length === b.tokens.length && s.tokens.slice(0, m).every((t, j) => t === b.tokens[j]),
        `${s.tokens.length} tokens, ${m} before a near-tie` +
          (parted < 0 ? ', all equal' : `, first different at step ${parted} (margin there ${b.margins[parted]?.toFixed(4)})`));
    }
    const x = await Promise.all(reqs.map((r) => run(plain!, r)));
    const y = await Promise.all(reqs.map((r) => run(rank0!, r)));
    const agree = x.every((a, i) => {
      const n = Math.min(beforeTie(a.margins), beforeTie(y[i].margins));
      return a.tokens.slice(0, n).every((t, j) => t === y[i].tokens[j]);
    });
    add(`${label} tp${tp} concurrent requests vs tp1 until a near-tie`, agree, `${reqs.length} at once`);
  } catch (err) {
    add(`${label} tp${tp} ran`, false, err instanceof Error ? err.message : String(err));
  } finally {
    await plain?.close();
    await rank0?.close();
    if (!rank0) group.kill();
    await group.stop(30_000);
  }
}

const gpus = countGpus();
console.log(`GPUs: ${gpus.count} (${gpus.source})`);
if (gpus.count < 2) {
  console.log('tensor parallelism across GPUs needs at least 2; nothing run');
  process.exit(1);
}
mkdirSync(work, { recursive: true });
for (const name of ['tiny-a', 'tiny-b'] as const) await compare(name, checkpoint(name), 2, refs(name).prompts.map((p) => p.prompt_ids), FIXTURE_TOL);
// The same checks with every all-reduce through NCCL (the workers inherit the environment).
process.env.GRPST_ONESHOT_ALLREDUCE = '0';
await compare('tiny-a-nccl', checkpoint('tiny-a'), 2, refs('tiny-a').prompts.map((p) => p.prompt_ids), FIXTURE_TOL);
delete process.env.GRPST_ONESHOT_ALLREDUCE;
// Wider heads (head_dim 64: the tensor-core decode attention) and 4 KV heads, so 4 ranks can split them.
const spec: TinySpec = { ...specFile().checkpoints['tiny-a'], seed: 4004, hidden_size: 256, intermediate_size: 512, num_attention_heads: 8, num_key_value_heads: 4, head_dim: 64, tie_word_embeddings: false };
const wide = path.join(work, 'tiny-wide');
writeTinyCheckpoint(wide, spec, specFile().vocab_size, specFile().init, { tokenizerDir });
const widePrompts = refs('tiny-a').prompts.map((p) => p.prompt_ids);
for (const tp of [2, 4]) if (tp <= gpus.count) await compare('tiny-wide', wide, tp, widePrompts, WIDE_TOL);
const failed = results.filter((r) => !r.pass);
console.log(`${results.length} multi-GPU tensor-parallel checks, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
