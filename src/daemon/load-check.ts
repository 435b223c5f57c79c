// What loading a native engine would refuse, found before anything is deployed (`grpst start`)
// or listens (`grpst serve`): every refusal that depends only on the inference conf, the engine or
// checkpoint files and the environment. Found by the daemon instead, each cost a deploy, a spawn
// and exit 4 with the reason in the log. The load checks the same again (engine-folder.ts,
// load.ts, kv-cache.ts, the runtime's own option checks); what only the machine can tell when
// the engine loads (free memory, the GPU behind device auto, NCCL) stays there. docs/cli.md
// lists both.
import fs from 'node:fs';
import path from 'node:path';
import type { EngineManifest } from '../build/manifest.js';
import type { Deployment } from '../config/resolve.js';
import { excessFix, excessText, limitExcesses, type BuildLimits } from '../engine/build-limits.js';
import type { ModelConfig } from '../model/config.js';
import { badInput, GrpstError } from '../util/errors.js';

export interface LoadCheckInput {
  /** Where the engine is read (start: its staged copy); messages name d.enginePath (or `archive`). Default: d.enginePath. */
  engineDir?: string;
  /** How messages locate an inferer_args key; default the inference conf's file:line:col. */
  location?: (key: string) => string;
  /**
   * Start, for an engine the archive holds: its folder's path in the archive and the archive as
   * the user named it. Nothing is deployed yet, so messages name the archive's files, not paths
   * under the deploy folder that do not exist. Default: the engine at d.enginePath.
   */
  archive?: { folder: string; mar: string };
  env?: NodeJS.ProcessEnv;
}

interface Problem {
  text: string;
  fix: string;
}

/** Refuses what the engine load would refuse, naming the conf key, the value and the fix; all problems at once. */
export async function checkEngineLoads(d: Deployment, input: LoadCheckInput = {}): Promise<void> {
  if (d.backend !== 'native') return;
  const dir = input.engineDir ?? d.enginePath;
  const at = input.location ?? d.argLocation;
  const shown = (text: string) => (dir === d.enginePath ? text : text.replaceAll(dir, d.enginePath));
  const engineFile = (file: string) => (input.archive ? `${input.archive.folder}/${file} in ${input.archive.mar}` : `${d.enginePath}/${file}`);
  const engineShown = input.archive ? `${input.archive.folder} in ${input.archive.mar}` : d.enginePath;
  // An engine the archive holds is named by its folder there, and the archive, as nothing is deployed yet.
  const readShown = input.archive ? archived(dir, input.archive) : shown;
  const { model, limits, kv, tpSize } = await readModel(dir, at('gpt_model_path'), readShown);
  const load = d.runtime.load;
  const problems: Problem[] = [];

  if (limits) {
    const excesses = limitExcesses(limits, load);
    const fix = excessFix(excesses, 'the inference conf', model.maxContext);
    for (const e of excesses) problems.push({ text: `${at(e.key)}: ${excessText(e)} (${engineFile('engine.json')})`, fix });
  }
  // Past the engine's limit is said above; a checkpoint has no build limits, only its positions.
  const seqLen = load.maxSeqLen;
  if (seqLen !== undefined && seqLen > model.maxContext && !(limits && seqLen > limits.max_seq_len)) {
    const { pastContext } = await import('../model/config.js');
    problems.push({
      text: `${at('max_seq_len')}: ${pastContext('max_seq_len', seqLen, model)}`,
      fix: `set max_seq_len to at most ${model.maxContext} in the inference conf, or use a checkpoint configured for longer contexts (rope_scaling: YaRN)`,
    });
  }
  const kvProblem = await kvCacheProblem(d, kv, at('kv_cache_dtype'), engineShown);
  if (kvProblem) problems.push(kvProblem);
  problems.push(...kvPoolProblems(d, model, kv, tpSize, at));
  const kernels = await cpuKernelsProblem(input.env ?? process.env);
  if (kernels) problems.push(kernels);

  if (problems.length === 0) return;
  throw badInput(shown(problems.map((p) => p.text).join('\n  ')), shown([...new Set(problems.map((p) => p.fix))].join('; ')));
}

/** Text about the staged engine `dir` with its paths as the archive's folder, and where that folder is. */
function archived(dir: string, archive: { folder: string; mar: string }): (text: string) => string {
  return (text) => (text.includes(dir) ? `${text.replaceAll(dir, archive.folder)} (${archive.folder} in ${archive.mar})` : text);
}

/** The model, and for an engine folder its limits and KV cache; an unreadable one is refused here, where the conf names it. */
async function readModel(dir: string, where: string, shown: (t: string) => string): Promise<{ model: ModelConfig; limits?: BuildLimits; kv?: EngineManifest['kv_cache']; tpSize: number }> {
  try {
    if (fs.existsSync(path.join(dir, 'engine.json'))) {
      const { readEngineFolder } = await import('../engine/engine-folder.js');
      const folder = readEngineFolder(dir);
      return { model: folder.model, limits: folder.manifest.limits, kv: folder.manifest.kv_cache, tpSize: folder.tpSize };
    }
    // A checkpoint has no engine.json listing its files: its safetensors are read when the load maps
    // them (a cut-off download fails there, naming the file); its config.json says the positions.
    const { readHfConfig } = await import('../model/config.js');
    return { model: readHfConfig(path.join(dir, 'config.json')).model, tpSize: 1 };
  } catch (e) {
    if (e instanceof GrpstError) throw new GrpstError(shown(`${where}: ${e.message}`), { hint: e.hint && shown(e.hint), exitCode: e.exitCode, cause: e });
    throw e;
  }
}

/** An int8 KV cache without calibrated scales (src/engine/kv-cache.ts); fp8 runs uncalibrated. */
async function kvCacheProblem(d: Deployment, kv: EngineManifest['kv_cache'] | undefined, where: string, engineShown: string): Promise<Problem | undefined> {
  const requested = d.runtime.load.kvCacheDtype;
  if (requested === undefined) return undefined;
  const { resolveKvCache } = await import('../engine/kv-cache.js');
  try {
    resolveKvCache(requested, kv, engineShown);
    return undefined;
  } catch (e) {
    if (!(e instanceof GrpstError)) throw e;
    return { text: `${where}: kv_cache_dtype ${requested}: ${e.message}`, fix: e.hint ?? 'set kv_cache_dtype: auto' };
  }
}

/**
 * The runtime refuses a KV pool of less than one block (native/src/runtime/engine.cpp); its size
 * in bytes per token is the runtime's too: layers x (k, v) x one rank's KV heads x head size x
 * element size (each rank of a tensor-parallel engine sizes its own pool). A float32 cache is
 * refused on the GPU.
 */
function kvPoolProblems(d: Deployment, model: ModelConfig, kv: EngineManifest['kv_cache'] | undefined, tpSize: number, at: (key: string) => string): Problem[] {
  const load = d.runtime.load;
  const blockSize = load.kvBlockSize ?? 16;
  const blockWords = `one KV block (kv_block_size ${blockSize}${load.kvBlockSize === undefined ? ', the default' : ''})`;
  const out: Problem[] = [];
  if (load.maxTokensInPagedKvCache !== undefined && load.maxTokensInPagedKvCache < blockSize) {
    out.push({
      text: `${at('max_tokens_in_paged_kv_cache')}: max_tokens_in_paged_kv_cache ${load.maxTokensInPagedKvCache} is less than ${blockWords}: the KV cache would hold nothing`,
      fix: `set max_tokens_in_paged_kv_cache to at least ${blockSize}, or leave it unset to size the cache from free memory`,
    });
  } else if (load.maxTokensInPagedKvCache === undefined && load.kvCacheBytes !== undefined) {
    const dtype = load.kvCacheDtype === undefined || load.kvCacheDtype === 'auto' ? (kv?.dtype === 'fp8' || kv?.dtype === 'int8' ? kv.dtype : 'bfloat16') : load.kvCacheDtype;
    const elementBytes = dtype === 'float32' ? 4 : dtype === 'bfloat16' ? 2 : 1;
    const bytesPerToken = model.numLayers * 2 * (model.numKvHeads / tpSize) * model.headDim * elementBytes;
    if (load.kvCacheBytes < bytesPerToken * blockSize) {
      out.push({
        text: `${at('kv_cache_bytes')}: kv_cache_bytes ${load.kvCacheBytes} is less than ${blockWords} of this model: ${bytesPerToken * blockSize} bytes (${dtype})`,
        fix: `set kv_cache_bytes to at least ${bytesPerToken * blockSize}, or leave it unset to size the cache from free memory`,
      });
    }
  }
  if (load.device === 'cuda' && load.kvCacheDtype === 'float32') {
    out.push({
      text: `${at('kv_cache_dtype')}: kv_cache_dtype float32 is not served on the GPU (device: cuda)`,
      fix: 'set kv_cache_dtype to auto, bfloat16, fp8 or int8, or device: cpu',
    });
  }
  return out;
}

/** GRPST_CPU_KERNELS is read by every load, so a level this CPU cannot run fails each one. */
async function cpuKernelsProblem(env: NodeJS.ProcessEnv): Promise<Problem | undefined> {
  const { cpuKernelsOverride } = await import('../engine/load.js');
  try {
    cpuKernelsOverride(env);
    return undefined;
  } catch (e) {
    if (!(e instanceof GrpstError)) throw e;
    return { text: e.message, fix: e.hint ?? '' };
  }
}
