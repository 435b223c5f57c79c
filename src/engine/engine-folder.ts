// Engine folders (`grpst build` output): engine.json -> the runtime's tensor table, model config
// and quantization scheme. The weights are mapped where they lie (64-byte aligned in
// rank<r>.weights); nothing is converted in JS. loadEngine() calls this for folders with engine.json.
// A tensor-parallel engine (tp_size > 1) has one table per rank; each process maps its own rank's.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readManifest, type EngineManifest } from '../build/manifest.js';
import { parseHfConfig, type ModelConfig } from '../model/config.js';
import { rankShard } from '../build/shard.js';
import { badInput } from '../util/errors.js';
import { loadAddon } from './addon.js';
import { checkBuildLimits } from './build-limits.js';
import { Engine } from './engine.js';
import { resolveKvCache } from './kv-cache.js';
import { checkContext, nativeOptions } from './load.js';
import type { NativeEngineOptions, NativeTensorEntry } from './native.js';
import type { LoadOptions } from './types.js';

export interface EngineFolder {
  dir: string;
  manifest: EngineManifest;
  model: ModelConfig;
  /** Rank 0's tensor table (the whole model when tp_size is 1). */
  tensors: NativeTensorEntry[];
  /** Every rank's tensor table, by rank. */
  rankTensors: NativeTensorEntry[][];
  tpSize: number;
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
  const tp = manifest.mapping.tp_size;
  const damaged = (what: string) => badInput(`${join(dir, 'engine.json')}: ${what}`, 'the engine folder is damaged; rebuild it with grpst build');
  if (manifest.mapping.pp_size !== 1) throw badInput(`${dir} is split into ${manifest.mapping.pp_size} pipeline stages; grpst runs tensor parallelism only`, 'rebuild it with --pp_size 1');
  if (manifest.ranks.length !== tp) throw damaged(`mapping.tp_size is ${tp} but ${manifest.ranks.length} ranks are listed`);
  const { model } = parseHfConfig(manifest.model_config, join(dir, 'engine.json: model_config'));
  const rankTensors = manifest.ranks.map((rank, r) => {
    if (rank.rank !== r) throw damaged(`ranks[${r}] is rank ${rank.rank}`);
    if (tp > 1 && JSON.stringify(rank.shard) !== JSON.stringify(rankShard(model, tp, r))) throw damaged(`ranks[${r}].shard does not match an even split of the model across ${tp} ranks`);
    const file = join(dir, rank.file);
    return Object.entries(rank.tensors).map(([name, t]) => ({ name, file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
  });
  return { dir, manifest, model, tensors: rankTensors[0], rankTensors, tpSize: tp, quantization: manifest.quantization.qformat };
}

/** How rank 0 of a tensor-parallel engine joins its group (src/daemon/tp-launch.ts starts the others). */
export interface TensorParallelJoin {
  /** NCCL's unique id from addon.ncclUniqueId(), hex; every rank initialises with it. */
  ncclId: string;
}

/** Tokens per step the runtime schedules when not told (native/include/grpst/engine.h, max_num_tokens). */
const runtimeStepTokens = 512;

/**
 * The engine's build limits become the defaults of the load options (explicit options may lower
 * them; above them they are refused: src/engine/build-limits.ts): max_batch_size, max_seq_len and
 * max_input_len (the prompt limit the server and `grpst run` enforce, as TensorRT-LLM engines
 * do); max_num_tokens caps the runtime's tokens per step where the engine was built with fewer
 * than it schedules by default.
 */
export function engineLoadOptions(folder: EngineFolder, opts: LoadOptions): LoadOptions {
  const l = folder.manifest.limits;
  checkBuildLimits(l, opts, folder.dir, folder.model.maxContext);
  const defaults: LoadOptions = { maxBatchSize: l.max_batch_size, maxSeqLen: l.max_seq_len, maxInputLen: l.max_input_len };
  if (l.max_num_tokens < runtimeStepTokens) defaults.maxNumTokens = l.max_num_tokens;
  return { ...defaults, ...definedOnly(opts) };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** What the runtime is given to load `folder` with `opts` (every rank of a tensor-parallel engine alike). */
export function folderNativeOptions(folder: EngineFolder, opts: LoadOptions): NativeEngineOptions {
  const resolved = engineLoadOptions(folder, opts);
  checkContext(folder.model, resolved);
  return nativeOptions(resolved, folder.quantization, resolveKvCache(opts.kvCacheDtype, folder.manifest.kv_cache, folder.dir));
}

export async function loadEngineFolder(path: string, opts: LoadOptions = {}, tp?: TensorParallelJoin, signal?: AbortSignal): Promise<Engine> {
  const folder = readEngineFolder(path);
  const options = folderNativeOptions(folder, opts);
  if (folder.tpSize > 1 && !tp) {
    throw badInput(
      `${folder.dir} is a tensor-parallel engine of ${folder.tpSize} ranks: it runs as ${folder.tpSize} processes, one per GPU`,
      `serve it with \`grpst start ... --mpi_np ${folder.tpSize}\` or \`grpst serve ... --mpi_np ${folder.tpSize}\`, or rebuild it with --tp_size 1`,
    );
  }
  if (tp) options.tensorParallel = { size: folder.tpSize, ncclId: tp.ncclId };
  return Engine.create(loadAddon(), folder.model, folder.tensors, options, folder.dir, signal, { embeddingOnly: folder.manifest.source.embedding_only });
}
