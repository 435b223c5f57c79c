// Tensor parallelism on this machine (no GPU, no NCCL): `grpst build --tp_size 2` in every format,
// each rank's shard put back together equal to the single-rank engine byte for byte, the sharded
// forward pass (every rank's shard on the CPU runner, joined by the in-process group) against the
// single-rank engine, generation through the leader / follower protocol, and the launch refusing
// what cannot run here with errors that say why and what to do.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild } from '../../src/build/index.js';
import { readManifest, type EngineManifest } from '../../src/build/manifest.js';
import { resolveSettings, type BuildSettingsInput, type QFormat } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { linearSplit } from '../../src/build/shard.js';
import { tensorParallelSize } from '../../src/daemon/tp-launch.js';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { loadTensorParallelOnCpu } from '../../src/engine/tensor-parallel.js';
import { defaultSampling, type SubmitRequest } from '../../src/engine/types.js';
import { dtypeBytes, type SafetensorsDtype } from '../../src/model/safetensors.js';
import type { LinearName } from '../../src/quant/smoothing.js';
import { checkpoint, refs, repoRoot, type CheckpointName } from '../helpers/fixtures.js';
import { makeCli, standInDir, type Cli } from '../helpers/grpst-cli.js';
import { firstNearTie } from '../native/helpers.js';
import { logprobRows, maxAbsDiff } from './engine-probes.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-tp-'));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function build(name: CheckpointName, tp: number, flags: BuildSettingsInput = {}) {
  const out = path.join(work, `${name}-${flags.qformat ?? 'full_prec'}-tp${tp}`);
  const s = resolveSettings({}, { model_dir: checkpoint(name), output_dir: out, eval_tokens: 128, tp_size: tp, awq_block_size: 16, ...flags });
  return runBuild(s, { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
}

function tensorBytes(dir: string, m: EngineManifest, rank: number, name: string): { data: Buffer; dtype: SafetensorsDtype; shape: number[] } {
  const r = m.ranks[rank];
  const t = r.tensors[name];
  const fd = fs.openSync(path.join(dir, r.file), 'r');
  try {
    const data = Buffer.alloc(t.nbytes);
    fs.readSync(fd, data, 0, t.nbytes, t.offset);
    return { data, dtype: t.dtype, shape: t.shape };
  } finally {
    fs.closeSync(fd);
  }
}

/** How a tensor of the single-rank engine is divided between ranks, from its module and role. */
function splitOf(m: EngineManifest, name: string): 'rows' | 'columns' | 'whole' {
  if (name === 'model.embed_tokens.weight') return 'rows';
  for (const [module, l] of Object.entries(m.ranks[0].linears)) {
    const role = Object.entries(l.tensors).find(([, t]) => t === name)?.[0];
    if (!role || module === 'lm_head') continue;
    const split = linearSplit[module.replace(/^model\.layers\.\d+\./, '') as LinearName];
    if (role === 'weight_scale' || role === 'input_scale') return 'whole';
    if (role === 'scales' && l.format !== 'int4') return split === 'rows' ? 'rows' : 'whole';
    return split;
  }
  if (name === 'lm_head.weight') return 'rows';
  return 'whole';
}

function reassemble(parts: { data: Buffer; shape: number[]; dtype: SafetensorsDtype }[], how: 'rows' | 'columns'): Buffer {
  if (how === 'rows') return Buffer.concat(parts.map((p) => p.data));
  const rows = parts[0].shape[0];
  const out: Buffer[] = [];
  for (let r = 0; r < rows; r++) for (const p of parts) out.push(p.data.subarray((r * p.data.length) / rows, ((r + 1) * p.data.length) / rows));
  return Buffer.concat(out);
}

const formats: QFormat[] = ['full_prec', 'int8_wo', 'int4_awq', 'fp8', 'int8_sq'];

describe.each(formats)('tiny-a, %s, tp_size 2', (qformat) => {
  let one: string;
  let two: string;
  let oneAccuracy: number;

  it('builds one shard per rank, recorded in engine.json', async () => {
    const a = await build('tiny-a', 1, { qformat });
    const b = await build('tiny-a', 2, { qformat });
    one = a.output_dir;
    two = b.output_dir;
    oneAccuracy = a.accuracy!.mean_kl;
    const m = readManifest(two);
    expect(m.mapping).toEqual({ tp_size: 2, pp_size: 1 });
    expect(m.ranks.map((r) => [r.rank, r.file])).toEqual([[0, 'rank0.weights'], [1, 'rank1.weights']]);
    expect(m.ranks[1].shard).toEqual({ num_heads: 2, num_kv_heads: 1, intermediate_size: 80, vocab_start: 75968, vocab_end: 151936 });
    expect(Object.keys(m.files).sort()).toEqual(Object.keys(readManifest(one).files).concat('rank1.weights').sort());
    const q = m.ranks[1].linears['model.layers.1.self_attn.q_proj'];
    expect([q.out_features, q.in_features]).toEqual([64, 64]);
    const o = m.ranks[1].linears['model.layers.1.self_attn.o_proj'];
    expect([o.out_features, o.in_features]).toEqual([64, 64]);
    expect(m.ranks[0].linears['lm_head'].out_features).toBe(75968);
  });

  it('the shards put back together are the single-rank engine, byte for byte', () => {
    const m1 = readManifest(one);
    const m2 = readManifest(two);
    const names = Object.keys(m1.ranks[0].tensors);
    expect(Object.keys(m2.ranks[0].tensors).sort()).toEqual([...names].sort());
    for (const name of names) {
      const whole = tensorBytes(one, m1, 0, name);
      const parts = [0, 1].map((r) => tensorBytes(two, m2, r, name));
      const how = splitOf(m1, name);
      for (const p of parts) expect(p.data.length, name).toBe(p.shape.reduce((x, y) => x * y, 1) * dtypeBytes[p.dtype]);
      if (how === 'whole') for (const p of parts) expect(p.data.equals(whole.data), `${name} on every rank`).toBe(true);
      else expect(reassemble(parts, how).equals(whole.data), `${name} split by ${how}`).toBe(true);
    }
  });

  it('the sharded forward pass gives the single-rank logits', async () => {
    const prompt = refs('tiny-a').prompts[0].prompt_ids;
    const diff = maxAbsDiff(await logprobRows(one, prompt), await logprobRows(two, prompt));
    const accuracy = readManifest(two).accuracy!;
    if (qformat === 'int8_sq') {
      // Each rank quantizes its own slice of the o_proj / down_proj input per token (the absmax of
      // its columns, as TensorRT-LLM's SmoothQuant does under tensor parallelism): not the same bits,
      // the same accuracy against the unquantized model.
      expect(diff).toBeGreaterThan(0);
      expect(accuracy.mean_kl).toBeLessThan(1e-2);
      expect(accuracy.top1_agreement).toBeGreaterThanOrEqual(0.92);
    } else {
      // fp32 sums of two partial products in another order: a few ulps of logprobs around -30.
      expect(diff).toBeLessThan(1e-4);
      expect(Math.abs(accuracy.mean_kl - oneAccuracy)).toBeLessThan(1e-5);
    }
  });
});

describe('tiny-b (6 heads, 2 KV heads, untied lm_head) at tp_size 2', () => {
  let one: string;
  let two: string;
  const engines: Engine[] = [];
  afterAll(async () => {
    for (const e of engines) await e.close();
  });

  it('the sharded forward pass matches the single-rank engine and transformers', async () => {
    one = (await build('tiny-b', 1)).output_dir;
    two = (await build('tiny-b', 2)).output_dir;
    for (const p of refs('tiny-b').prompts) {
      const rows = await logprobRows(two, p.prompt_ids);
      expect(maxAbsDiff(await logprobRows(one, p.prompt_ids), rows)).toBeLessThan(1e-4);
      const V = rows.length / p.prompt_ids.length;
      const got = p.prompt_ids.slice(1).map((id, j) => rows[j * V + id]);
      expect(Math.max(...got.map((lp, j) => Math.abs(lp - p.prompt_logprobs[j]))), `${p.name} vs transformers`).toBeLessThan(1e-3);
    }
  });

  it('generates what the single-rank engine generates, alone and batched (rank 0 broadcasts each step)', async () => {
    const limits = { threads: 1, maxSeqLen: 1024, maxTokensInPagedKvCache: 4096, kvCacheDtype: 'float32' };
    const single = await loadEngine(one, limits);
    engines.push(single);
    const sharded = await loadTensorParallelOnCpu(two, limits);
    engines.push(sharded);
    expect(sharded.info.kernels).toContain('tensor parallel 2 (in-process)');
    // LoRA adapters would need their matrices sharded as the weights are: refused, with the way out.
    expect(sharded.info.lora).toBe(false);
    await expect(sharded.loadLoraAdapter(loraAdapter('tiny-b-lora-all'))).rejects.toThrow(/LoRA adapters are served by one process \(the CPU or one GPU\); this engine runs on cpu with tensor parallelism/);
    const run = async (e: Engine, req: SubmitRequest) => {
      const tokens: number[] = [];
      const logprobs: number[] = [];
      const margins: number[] = [];
      for await (const ev of e.submit(req)) {
        tokens.push(...ev.tokens);
        logprobs.push(...(ev.logprobs ?? []));
        for (const top of ev.topLogprobs ?? []) margins.push(top[0].logprob - top[1].logprob);
      }
      return { tokens, logprobs, margins };
    };
    const reqs = refs('tiny-b').prompts.map((p) => ({ tokens: p.prompt_ids, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 16, logprobs: 2, ignoreEos: true }));
    const alone: (Awaited<ReturnType<typeof run>> & { n: number })[] = [];
    for (const r of reqs) {
      const a = await run(single, r);
      const b = await run(sharded, r);
      const n = firstNearTie(a.margins);
      expect(n).toBeGreaterThan(4);
      expect(b.tokens.slice(0, n)).toEqual(a.tokens.slice(0, n));
      for (let j = 0; j < n; j++) expect(Math.abs(a.logprobs[j] - b.logprobs[j])).toBeLessThan(1e-3);
      alone.push({ ...b, n });
    }
    const together = await Promise.all(reqs.map((r) => run(sharded, r)));
    together.forEach((t, i) => expect(t.tokens.slice(0, alone[i].n)).toEqual(alone[i].tokens.slice(0, alone[i].n)));
    // Embedding requests: rank 0's final-norm rows (the residual stream is whole on every rank).
    const vector = async (e: Engine, tokens: number[]) => {
      let v: Float32Array | undefined;
      for await (const ev of e.submit({ tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 0, embed: true })) v = ev.embedding ?? v;
      return Array.from(v!);
    };
    for (const r of reqs) {
      const [a, b] = [await vector(single, r.tokens), await vector(sharded, r.tokens)];
      expect(b).toHaveLength(a.length);
      expect(Math.max(...a.map((x, k) => Math.abs(x - b[k])))).toBeLessThan(1e-4);
    }
  });
});

describe('what cannot be split or run here is refused with the fix', () => {
  let cli: Cli;
  let tp2: string;
  beforeAll(async () => {
    cli = makeCli();
    tp2 = (await build('tiny-a', 2, { output_dir: path.join(work, 'serve-tp2') })).output_dir;
  });
  afterAll(() => fs.rmSync(cli.home, { recursive: true, force: true }));

  it('build: a tp_size that does not divide the heads, int4 groups across a rank boundary', async () => {
    await expect(build('tiny-b', 4)).rejects.toThrow('tp_size 4 does not divide num_key_value_heads 2');
    await expect(build('tiny-b', 4)).rejects.toMatchObject({ hint: expect.stringContaining('divides num_key_value_heads 2, num_attention_heads 6, intermediate_size 192 and vocab_size 151936: 1, 2') });
    await expect(build('tiny-a', 2, { qformat: 'int4_awq', awq_block_size: 32 })).rejects.toThrow('int4 groups of 32 would straddle the tensor-parallel split of down_proj: each of the 2 ranks holds 80 of its 160 input columns');
    expect(fs.readdirSync(work).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('loading a sharded engine as one process names the command that runs it', async () => {
    await expect(loadEngine(tp2)).rejects.toThrow(`${tp2} is a tensor-parallel engine of 2 ranks: it runs as 2 processes, one per GPU`);
  });

  it('--mpi_np must agree with the engine', () => {
    expect(tensorParallelSize(tp2, 1)).toBe(2);
    expect(tensorParallelSize(tp2, 2)).toBe(2);
    expect(() => tensorParallelSize(tp2, 4)).toThrow(`--mpi_np 4 does not match the engine: ${tp2} was built with tp_size 2`);
    expect(() => tensorParallelSize(checkpoint('tiny-a'), 2)).toThrow('is a checkpoint, not an engine built for 2 ranks');
  });

  function conf(engine: string): string {
    const dir = fs.mkdtempSync(path.join(work, 'conf-'));
    const text = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engine);
    fs.writeFileSync(path.join(dir, 'inference.yml'), text);
    return path.join(dir, 'inference.yml');
  }

  it('grpst serve on a machine without GPUs, then without NCCL', async () => {
    // --port 0: the port is checked before the GPUs, and 9997 may be another program's.
    const none = await cli.run(['serve', '--inference_conf', conf(tp2), '--port', '0']);
    expect(none.code).toBe(2);
    // No --mpi_np given: the engine's own tp_size is what needs the GPUs, and the fix says so.
    expect(none.stderr).toContain('the engine was built with --tp_size 2: it runs one process per GPU and needs 2 GPUs, but 0 are available');
    expect(none.stderr).toContain('fix: serve it where 2 GPUs are, or rebuild it for this machine: `grpst build ... --tp_size 1` (one GPU or the CPU)');
    // Two GPUs visible (nvidia-smi stand-in), but this runtime was built without CUDA and NCCL.
    const twoGpus = { PATH: `${path.join(standInDir, 'two-gpus')}${path.delimiter}${cli.env.PATH}` };
    const noNccl = await cli.run(['serve', '--inference_conf', conf(tp2), '--port', '0'], { env: twoGpus });
    expect(noNccl.code).toBe(2);
    expect(noNccl.stderr).toMatch(/a tensor-parallel engine of 2 ranks runs one process per GPU over NCCL, but this build of the native runtime has no (CUDA backend|NCCL)/);
    expect(noNccl.stderr).toContain('fix: rebuild the runtime on the GPU machine with the CUDA toolkit and NCCL');
  });

  it('grpst start refuses before anything starts', async () => {
    const dir = fs.mkdtempSync(path.join(work, 'project-'));
    fs.mkdirSync(path.join(dir, 'conf'));
    fs.copyFileSync(conf(tp2), path.join(dir, 'conf', 'inference_tiny.yml'));
    expect((await cli.run(['archive', '.'], { cwd: dir })).code).toBe(0);
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--name', 'tp'], { cwd: dir });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('the engine was built with --tp_size 2: it runs one process per GPU and needs 2 GPUs, but 0 are available');
    expect(fs.existsSync(path.join(cli.home, 'tp'))).toBe(false);
    expect(fs.existsSync(path.join(cli.home, '.run', 'tp.json'))).toBe(false);
  });
});
