// Engine folders (`grpst build` output): engine.json -> the runtime's tensor table, model config
// and quantization scheme. The weights are mapped where they lie (64-byte aligned in
// rank0.weights); nothing is converted in JS. loadEngine() calls this for folders with engine.json.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readManifest, type EngineManifest } from '../build/manifest.js';
import { parseHfConfig, type ModelConfig } from '../model/config.js';
import { badInput } from '../util/errors.js';
import { loadAddon } from './addon.js';
import { Engine } from './engine.js';
import { nativeOptions } from './load.js';
import type { NativeTensorEntry } from './native.js';
import type { LoadOptions } from './types.js';

export interface EngineFolder {
  dir: string;
  manifest: EngineManifest;
  model: ModelConfig;
  tensors: NativeTensorEntry[];
  /** The scheme name the runtime maps to a weight format (full_prec, int8_wo, int4_awq, fp8, int8_sq). */
  quantization: string;
}

/** Reads and checks engine.json and the files it names (sizes; sha256 only in verifyEngineFolder). */
export function readEngineFolder(path: string): EngineFolder {
  const dir = resolve(path);
  const manifest = readManifest(dir);
  for (const [file, info] of Object.entries(manifest.files)) {
    const p = join(dir, file);
    if (!existsSync(p)) throw badInput(`engine folder ${dir} is missing ${file}`, 'copy the whole engine folder, or rebuild it with grpst build');
    const size = statSync(p).size;
    if (size !== info.bytes) throw badInput(`${p} has ${size} bytes but engine.json records ${info.bytes} (truncated or replaced)`, 'copy the engine folder again, or rebuild it');
  }
  if (manifest.mapping.tp_size !== 1 || manifest.ranks.length !== 1) {
    throw badInput(`${dir} is a ${manifest.mapping.tp_size}-rank engine; this runtime loads single-rank engines`, 'rebuild it with --tp_size 1');
  }
  const rank = manifest.ranks[0];
  const file = join(dir, rank.file);
  const tensors = Object.entries(rank.tensors).map(([name, t]) => ({ name, file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
  const { model } = parseHfConfig(manifest.model_config, join(dir, 'engine.json: model_config'));
  return { dir, manifest, model, tensors, quantization: manifest.quantization.qformat };
}

/** The engine's build limits become the defaults of the load options (explicit options win). */
export function engineLoadOptions(folder: EngineFolder, opts: LoadOptions): LoadOptions {
  const l = folder.manifest.limits;
  return { maxBatchSize: l.max_batch_size, maxSeqLen: l.max_seq_len, ...definedOnly(opts) };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export async function loadEngineFolder(path: string, opts: LoadOptions = {}): Promise<Engine> {
  const folder = readEngineFolder(path);
  const options = nativeOptions(engineLoadOptions(folder, opts), folder.quantization);
  return Engine.create(loadAddon(), folder.model, folder.tensors, options, folder.dir);
}
