// `grpst build --quantize_lm_head`: the output head in the layers' format, built from the tiny
// fixture checkpoints and run by the real runtime. Each quantized-head engine is compared with the
// same build with a float head: the layers are quantized the same way in both (deterministic), so
// every difference between the two comes from the head.
import { mkdtempSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild, type BuildSummary } from '../../src/build/index.js';
import { readManifest, type EngineManifest } from '../../src/build/manifest.js';
import { resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { ExitCode } from '../../src/util/errors.js';
import { checkpoint, refs } from '../helpers/fixtures.js';
import { awqCheckpoint, leftovers } from './build-helpers.js';
import { greedyTokens, logprobRows, maxAbsDiff } from './engine-probes.js';

let work: string;
let n = 0;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'grpst-build-head-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function build(flags: BuildSettingsInput): Promise<BuildSummary> {
  const s = resolveSettings({}, { output_dir: join(work, `engine-${++n}`), eval_tokens: 256, ...flags });
  return runBuild(s, { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
}

/** The bytes of one tensor of rank 0, as the engine folder stores them. */
function tensorBytes(dir: string, m: EngineManifest, name: string): Buffer {
  const t = m.ranks[0].tensors[name];
  const buf = Buffer.alloc(t.nbytes);
  const fd = openSync(join(dir, m.ranks[0].file), 'r');
  try {
    readSync(fd, buf, 0, t.nbytes, t.offset);
  } finally {
    closeSync(fd);
  }
  return buf;
}

const headFormat = { int8_wo: 'int8_wo', int4_awq: 'int4', fp8: 'fp8', int8_sq: 'int8_sq' } as const;

describe('--quantize_lm_head on tiny-b (untied head)', () => {
  it.each(Object.keys(headFormat) as (keyof typeof headFormat)[])('%s: the head in that format, a smaller engine, a little more error than the float head', async (qformat) => {
    const tinyB = checkpoint('tiny-b');
    const flags = { model_dir: tinyB, qformat, awq_block_size: 16 } as const;
    const plain = await build(flags);
    const head = await build({ ...flags, quantize_lm_head: true });
    const mp = readManifest(plain.output_dir);
    const mh = readManifest(head.output_dir);
    expect(mp.ranks[0].linears.lm_head.format).toBe('float');
    expect(mp.quantization.excluded).toEqual(['lm_head']);
    expect(mh.ranks[0].linears.lm_head).toMatchObject({ format: headFormat[qformat], out_features: 151936, in_features: 96 });
    expect(mh.quantization.excluded).toEqual([]);
    // 151,936 x 96 weights, 2 bytes each in bf16 (29 MB of the 56 MB engine): about 1 byte in the
    // int8 formats, 0.8125 in int4 with groups of 16 (half a byte, plus an fp32 scale and a zero
    // point per group).
    const weights = 151936 * 96;
    expect(plain.bytes - head.bytes).toBeGreaterThan(weights * (qformat === 'int4_awq' ? 1.15 : 0.95));
    // AWQ and SmoothQuant fold the head's factors into the final norm; the other formats leave it.
    const norm = (dir: string, m: EngineManifest) => tensorBytes(dir, m, 'model.norm.weight');
    const folded = qformat === 'int4_awq' || qformat === 'int8_sq';
    expect(norm(head.output_dir, mh).equals(norm(plain.output_dir, mp))).toBe(!folded);
    // Every difference comes from the head: more error than the float head, of the head's size
    // (measured: 1.09-1.3x the float head's KL on this checkpoint; a missing fold gives far more).
    const kp = plain.accuracy!, kh = head.accuracy!;
    expect(kh.mean_kl).toBeGreaterThan(kp.mean_kl);
    expect(kh.mean_kl).toBeLessThan(kp.mean_kl * 1.6);
    expect(kh.top1_agreement).toBeGreaterThanOrEqual(kp.top1_agreement - 0.08);
    expect(await greedyTokens(head.output_dir, [9707, 11, 847, 829, 374], 6)).toHaveLength(6);
    expect(leftovers(work)).toEqual([]);
  });
});

describe('--quantize_lm_head on tiny-a (head tied to the embeddings)', () => {
  it('writes a quantized copy of the table as lm_head; the embeddings stay as they were, and the runtime reads the copy', async () => {
    const tinyA = checkpoint('tiny-a');
    const plain = await build({ model_dir: tinyA, qformat: 'int8_wo' });
    const head = await build({ model_dir: tinyA, qformat: 'int8_wo', quantize_lm_head: true });
    const mp = readManifest(plain.output_dir);
    const mh = readManifest(head.output_dir);
    expect(mp.ranks[0].linears.lm_head.tensors).toEqual({ weight: 'model.embed_tokens.weight' });
    expect(mh.ranks[0].linears.lm_head).toMatchObject({ format: 'int8_wo', tensors: { weight: 'lm_head.qweight', scales: 'lm_head.scales' } });
    expect(mh.ranks[0].tensors['lm_head.qweight']).toMatchObject({ dtype: 'I8', shape: [151936, 64] });
    const embed = (dir: string, m: EngineManifest) => tensorBytes(dir, m, 'model.embed_tokens.weight');
    expect(embed(head.output_dir, mh).equals(embed(plain.output_dir, mp))).toBe(true);
    // A runtime that ignored the copy would read the bf16 table and give the plain engine's logits.
    const prompt = refs('tiny-a').prompts[0].prompt_ids;
    const diff = maxAbsDiff(await logprobRows(plain.output_dir, prompt), await logprobRows(head.output_dir, prompt));
    expect(diff).toBeGreaterThan(1e-3);
    expect(diff).toBeLessThan(1);
  });
});

describe('--quantize_lm_head at tp_size 2', () => {
  it('cuts the quantized head by vocabulary rows; the two ranks give the single-rank logits', async () => {
    const tinyB = checkpoint('tiny-b');
    const one = await build({ model_dir: tinyB, qformat: 'int8_wo', quantize_lm_head: true });
    const two = await build({ model_dir: tinyB, qformat: 'int8_wo', quantize_lm_head: true, tp_size: 2 });
    const m = readManifest(two.output_dir);
    expect(m.ranks.map((r) => r.tensors['lm_head.qweight'].shape)).toEqual([
      [75968, 96],
      [75968, 96],
    ]);
    const prompt = refs('tiny-b').prompts[0].prompt_ids;
    expect(maxAbsDiff(await logprobRows(one.output_dir, prompt), await logprobRows(two.output_dir, prompt))).toBeLessThan(1e-4);
  });
});

describe('--quantize_lm_head refused with the fix', () => {
  it('with full_prec: nothing to quantize it to', () => {
    let err: unknown;
    try {
      resolveSettings({}, { model_dir: checkpoint('tiny-a'), output_dir: join(work, 'never'), quantize_lm_head: true });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ exitCode: ExitCode.badInput, message: expect.stringContaining('--quantize_lm_head needs a quantized format') });
  });

  it('with an AWQ checkpoint: no float model to calibrate the head on; nothing is written', async () => {
    const out = join(work, 'awq-head');
    await expect(build({ model_dir: awqCheckpoint('tiny-a', 32), output_dir: out, qformat: 'int4_awq', quantize_lm_head: true })).rejects.toMatchObject({
      exitCode: ExitCode.badInput,
      message: expect.stringContaining('AWQ checkpoint'),
    });
    expect(leftovers(work)).toEqual([]);
  });
});
