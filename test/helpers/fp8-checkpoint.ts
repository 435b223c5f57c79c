// The block-scaled FP8 fixture: tiny-b's linears quantized to e4m3 in [32, 64] blocks, as Qwen's
// FP8 checkpoints store them (weight F8_E4M3 [out, in], weight_scale_inv F32 [ceil(out / 32),
// ceil(in / 64)]; embeddings, norms and lm_head stay bf16). The block is not square and tiny-b's
// shapes (144, 48, 96, 192) leave partial blocks in both directions, so a transposed grid or a
// floor instead of a ceil fails. tiny-b's uniform weights would give every block the same amax,
// hence the same scale, and a misplaced scale would go unseen: each block is first multiplied by
// its own factor (0.5 to 1.75), so neighbouring blocks never share one. scripts/make_fp8_fixture.py records the transformers references
// on the folder this writes; the tests rewrite it bit for bit and check its digest against them.
//
//   npx tsx test/helpers/fp8-checkpoint.ts OUT_DIR   writes the fixture folder for that script
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openSource, readBytes, readMatrix } from '../../src/build/native/source.js';
import { writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';
import { quantizeFp8Block, type BlockSize } from '../../src/quant/fp8-block.js';
import { encodeFloats } from '../../src/quant/numeric.js';
import { linearNames } from '../../src/quant/smoothing.js';
import { cacheDir, checkpoint, fixturesDir, readJson, type PromptRef } from './fixtures.js';

export const FP8_SOURCE = 'tiny-b';
export const FP8_BLOCK: BlockSize = [32, 64];

export interface Fp8Refs {
  checkpoint: string;
  source: string;
  weight_block_size: BlockSize;
  /** fp8Digest of the checkpoint the references were computed on. */
  weights_sha256: string;
  /**
   * The weights dequantized to bf16 (e4m3 value x scale in fp32, then rounded), as transformers
   * loads the checkpoint on a CPU; the model run in fp32. What grpst's engines match: the runtime
   * computes float linears with bf16 weights.
   */
  prompts: PromptRef[];
  /** The weights dequantized in fp32 (one rounding), the model run in fp32: the FP8 model exactly. */
  prompts_fp32_weights: PromptRef[];
  env: Record<string, string>;
}

export function fp8Refs(): Fp8Refs {
  return readJson<Fp8Refs>(join(fixturesDir, 'refs-tiny-b-fp8.json'));
}

export interface Fp8Variant {
  /** Replaces keys of quantization_config (undefined deletes one). */
  quantizationConfig?: Record<string, unknown>;
  /** Stores weight_scale_inv as bf16 (the codes stay those of the fp32 scales). */
  scaleDtype?: 'F32' | 'BF16';
  /** Rewrites the tensor list before it is written (drop or reshape a scale). */
  tensors?: (t: TensorToWrite[]) => TensorToWrite[];
}

const FACTORS = [0.5, 0.625, 0.75, 0.875, 1, 1.25, 1.5, 1.75];

/** The factor of block (r, c): steps of 3 down and 5 across (mod 8), so no neighbours are equal. */
export function blockFactor(r: number, c: number, salt: number): number {
  return FACTORS[(3 * r + 5 * c + salt) % 8];
}

/** sha256 over (name, dtype, shape, bytes) of every tensor in name order; make_fp8_fixture.py computes the same. */
export function fp8Digest(tensors: TensorToWrite[]): string {
  const h = createHash('sha256');
  for (const t of [...tensors].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    h.update(`${t.name}\n${t.dtype}\n${JSON.stringify(t.shape)}\n`);
    h.update(t.data);
  }
  return h.digest('hex');
}

/** Writes the FP8 version of the float checkpoint at `srcDir` (atomically); returns its digest. */
export function writeFp8Checkpoint(srcDir: string, outDir: string, block: BlockSize = FP8_BLOCK, variant: Fp8Variant = {}): string {
  const src = openSource(srcDir);
  let tensors: TensorToWrite[] = [];
  for (const [name, info] of src.checkpoint.tensors) {
    const prefix = name.replace(/\.weight$/, '');
    // Every projection, a Qwen3-MoE expert's included (as Qwen/Qwen3-30B-A3B-FP8 stores them); a router stays float.
    const expert = /\.mlp\.experts\.\d+\.(gate|up|down)_proj$/.test(prefix);
    if (!expert && !linearNames.some((l) => prefix.endsWith(l))) {
      tensors.push({ name, dtype: info.dtype, shape: info.shape, data: readBytes(info) });
      continue;
    }
    const w = readMatrix(src, name);
    const kind = expert ? 7 + Number(/experts\.(\d+)\./.exec(name)![1]) : linearNames.findIndex((l) => prefix.endsWith(l));
    const salt = Number(/layers\.(\d+)\./.exec(name)?.[1] ?? 0) + kind;
    for (let i = 0; i < w.rows; i++) {
      for (let j = 0; j < w.cols; j++) w.data[i * w.cols + j] *= blockFactor(Math.floor(i / block[0]), Math.floor(j / block[1]), salt);
    }
    const q = quantizeFp8Block(w.data, w.rows, w.cols, block);
    const grid = [Math.ceil(w.rows / block[0]), Math.ceil(w.cols / block[1])];
    const scaleDtype = variant.scaleDtype ?? 'F32';
    tensors.push({ name, dtype: 'F8_E4M3', shape: [w.rows, w.cols], data: q.codes });
    tensors.push({ name: `${name}_scale_inv`, dtype: scaleDtype, shape: grid, data: encodeFloats(q.scaleInv, scaleDtype) });
  }
  if (variant.tensors) tensors = variant.tensors(tensors);
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // Two shards, each scale beside its weight, as the hub's checkpoints are split.
  const shardOf = (name: string) => (name.startsWith('model.layers.') ? Number(name.split('.')[2]) % 2 : name.startsWith('lm_head') ? 1 : 0);
  const weightMap: Record<string, string> = {};
  for (const k of [0, 1]) {
    const file = `model-0000${k + 1}-of-00002.safetensors`;
    const part = tensors.filter((t) => shardOf(t.name) === k).sort((a, b) => (a.name < b.name ? -1 : 1));
    writeSafetensors(join(tmp, file), part);
    for (const t of part) weightMap[t.name] = file;
  }
  const total = tensors.reduce((a, t) => a + t.data.byteLength, 0);
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
  writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2));
  const config = JSON.parse(readFileSync(join(srcDir, 'config.json'), 'utf8'));
  const qc: Record<string, unknown> = {
    activation_scheme: 'dynamic',
    fmt: 'e4m3',
    modules_to_not_convert: ['lm_head'],
    quant_method: 'fp8',
    weight_block_size: block,
    ...variant.quantizationConfig,
  };
  config.quantization_config = Object.fromEntries(Object.entries(qc).filter(([, v]) => v !== undefined));
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of [...src.tokenizerFiles, 'generation_config.json']) if (existsSync(join(srcDir, f))) copyFileSync(join(srcDir, f), join(tmp, f));
  rmSync(outDir, { recursive: true, force: true });
  renameSync(tmp, outDir);
  return fp8Digest(tensors);
}

/** The fixture folder, written on first use; throws if it differs from the one the references were computed on. */
export function fp8Checkpoint(): string {
  const dir = join(cacheDir, `${FP8_SOURCE}-fp8`);
  const stamp = join(dir, 'weights.sha256');
  const expected = fp8Refs().weights_sha256;
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === expected) return dir;
  const digest = writeFp8Checkpoint(checkpoint(FP8_SOURCE), dir);
  if (digest !== expected) throw new Error(`${FP8_SOURCE}-fp8: rewritten weights digest ${digest} != reference ${expected}`);
  writeFileSync(stamp, digest);
  return dir;
}

// (run as a script: not when bundled into another, whose own URL is then the one started)
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href && /fp8-checkpoint\.[jt]s$/.test(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: npx tsx test/helpers/fp8-checkpoint.ts OUT_DIR');
    process.exit(2);
  }
  console.log(writeFp8Checkpoint(checkpoint(FP8_SOURCE), resolve(out)));
}
