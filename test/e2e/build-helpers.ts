// Helpers of the build tests: a tiny AutoAWQ checkpoint packed from a fixture, the stand-in
// TensorRT-LLM environment, and engine-folder readers.
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { readSafetensorsHeader, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';
import { quantizeLikeAutoAwq } from '../../src/quant/autoawq.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/quant/numeric.js';
import { linearNames } from '../../src/quant/smoothing.js';
import { readFloat, readMatrix, openSource } from '../../src/build/native/source.js';
import { cacheDir, checkpoint, repoRoot, type CheckpointName } from '../helpers/fixtures.js';

export const trtllmFixtures = join(repoRoot, 'test', 'fixtures', 'trtllm');

/** Environment under which the stand-ins play TensorRT-LLM. */
export function trtllmEnv(record: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    TRTLLM_DIR: join(trtllmFixtures, 'TensorRT-LLM'),
    TRTLLM_BUILD: join(trtllmFixtures, 'bin', 'trtllm-build'),
    GRPST_STANDIN_RECORD: record,
    ...extra,
  };
}

export function recorded(record: string): { tool: string; argv: string[] }[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tool: string; argv: string[] });
}

/** Files and folders beside `dir` that a build may have left (staging folders start with a dot). */
export function leftovers(parent: string): string[] {
  return existsSync(parent) ? readdirSync(parent).filter((e) => e.startsWith('.') && /\.(tmp|old)-\d+$/.test(e)) : [];
}

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

/**
 * A checkpoint as AutoAWQ saves it (GEMM packing, zero points, fp16), made from a fixture's weights:
 * what Qwen/Qwen3-14B-AWQ looks like, at fixture size.
 */
export function awqCheckpoint(name: CheckpointName, group: number): string {
  const dir = join(cacheDir, `${name}-awq-g${group}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const srcDir = checkpoint(name);
  const src = openSource(srcDir);
  const tensors: TensorToWrite[] = [];
  const fp16 = (tname: string, values: Float32Array, shape: number[]): TensorToWrite => ({
    name: tname,
    dtype: 'F16',
    shape,
    data: new Uint8Array(Uint16Array.from(values, (v) => f32ToF16Bits(v)).buffer),
  });
  for (const [tname, info] of src.checkpoint.tensors) {
    const prefix = tname.replace(/\.weight$/, '');
    // Every projection, a Qwen3-MoE expert's included (AutoAWQ quantizes them; the router stays float).
    if (linearNames.some((l) => prefix.endsWith(l)) || /\.mlp\.experts\.\d+\.(gate|up|down)_proj$/.test(prefix)) {
      const w = readMatrix(src, tname);
      const q = quantizeLikeAutoAwq(w.data, w.rows, w.cols, group, f16);
      tensors.push({ name: `${prefix}.qweight`, dtype: 'I32', shape: [w.cols, w.rows / 8], data: new Uint8Array(q.qweight.buffer) });
      tensors.push({ name: `${prefix}.qzeros`, dtype: 'I32', shape: [w.cols / group, w.rows / 8], data: new Uint8Array(q.qzeros.buffer) });
      tensors.push(fp16(`${prefix}.scales`, q.scales, [w.cols / group, w.rows]));
    } else {
      tensors.push(fp16(tname, readFloat(src, tname), info.shape));
    }
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  writeSafetensors(join(tmp, 'model.safetensors'), tensors);
  const config = JSON.parse(readFileSync(join(srcDir, 'config.json'), 'utf8'));
  config.torch_dtype = 'float16';
  config.quantization_config = { quant_method: 'awq', bits: 4, group_size: group, zero_point: true, version: 'gemm', modules_to_not_convert: null };
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of src.tokenizerFiles) copyFileSync(join(srcDir, f), join(tmp, f));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  openCheckpoint(dir, { allowQuantized: true });
  return dir;
}

/**
 * A fixture with outlier activation channels, as trained LLMs have: a few channels of every
 * RMSNorm weight scaled by 8 (exact in bf16). The random fixtures have none, which is the case
 * AWQ helps least.
 */
export function outlierCheckpoint(name: CheckpointName): string {
  const dir = join(cacheDir, `${name}-outliers`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const src = checkpoint(name);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(src, tmp, { recursive: true });
  for (const f of readdirSync(tmp).filter((e) => e.endsWith('.safetensors'))) {
    const p = join(tmp, f);
    const buf = readFileSync(p);
    for (const t of readSafetensorsHeader(p).tensors) {
      if (!/layernorm\.weight$/.test(t.name) || t.dtype !== 'BF16') continue;
      for (const c of [3, 17, 40]) buf.writeUInt16LE(buf.readUInt16LE(t.offset + c * 2) + (3 << 7), t.offset + c * 2);
    }
    writeFileSync(p, buf);
  }
  rmSync(join(tmp, 'weights.sha256'), { force: true });
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}
