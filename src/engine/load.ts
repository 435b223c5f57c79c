// loadEngine(): a Hugging Face checkpoint folder (or, later, an engine folder) -> a running Engine.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pastContext, type ModelConfig } from '../model/config.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { badInput } from '../util/errors.js';
import { loadAddon, probeAddon } from './addon.js';
import { loadEngineFolder } from './engine-folder.js';
import { Engine } from './engine.js';
import { resolveKvCache, type KvCacheChoice } from './kv-cache.js';
import type { NativeEngineOptions } from './native.js';
import { speculativeOptions } from './speculative.js';
import { checkpointTensorTable } from './tensor-table.js';
import type { LoadOptions } from './types.js';

/** The variable that forces a lower CPU kernel level. */
export const cpuKernelsVar = 'GRPST_CPU_KERNELS';
/** The levels the runtime has, best first (native/src/kernels/cpu/dispatch.cpp). */
const cpuKernelLevels = ['amx', 'avx512', 'avx2', 'scalar'];

/**
 * GRPST_CPU_KERNELS, checked before the runtime sees it: the runtime's own refusal would reach the
 * user as a load failure with a fix about the model folder, where the fix is the variable. The
 * probe says which levels this CPU runs (best first); a runtime that does not load at all is left
 * for the load itself to report, with its own fix.
 */
export function cpuKernelsOverride(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[cpuKernelsVar];
  if (!value) return undefined;
  let runs: string[] | undefined;
  try {
    runs = probeAddon().cpuKernels;
  } catch {
    runs = undefined;
  }
  if (runs?.length === 0) runs = undefined;
  const known = cpuKernelLevels.includes(value);
  if (known && (!runs || runs.includes(value))) return value;
  const accepted = `it takes ${listed(cpuKernelLevels, 'or')}`;
  throw badInput(
    known
      ? `${cpuKernelsVar} is set to ${JSON.stringify(value)}, a CPU kernel level this CPU cannot run: it runs ${listed(runs!, 'and')} (${accepted})`
      : `${cpuKernelsVar} is set to ${JSON.stringify(value)}, which is not a CPU kernel level: ${accepted}${runs ? `, and this CPU runs ${listed(runs, 'and')}` : ''}`,
    runs
      ? `unset ${cpuKernelsVar} to use this CPU's best level (${runs[0]}), or set it to ${listed(runs, 'or')}`
      : `unset ${cpuKernelsVar}, or set it to ${listed(cpuKernelLevels, 'or')}`,
  );
}

function listed(items: string[], last: 'and' | 'or'): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} ${last} ${items.at(-1)}`;
}

/**
 * LoadOptions plus the process-wide switches (GRPST_CPU_KERNELS forces a lower kernel level). `kv`:
 * the KV cache resolved against the model (resolveKvCache); default: opts.kvCacheDtype as given.
 */
export function nativeOptions(opts: LoadOptions, quantization = 'none', kv?: KvCacheChoice): NativeEngineOptions {
  return {
    device: opts.device ?? 'auto',
    threads: opts.threads,
    samplingThreads: opts.samplingThreads,
    deviceSamplerTwin: opts.deviceSamplerTwin,
    maxBatchSize: opts.maxBatchSize,
    maxNumTokens: opts.maxNumTokens,
    maxSeqLen: opts.maxSeqLen,
    maxInputLen: opts.maxInputLen,
    kvBlockSize: opts.kvBlockSize,
    maxTokensInPagedKvCache: opts.maxTokensInPagedKvCache,
    kvCacheBytes: opts.kvCacheBytes,
    kvCacheFreeMemFraction: opts.kvCacheFreeMemFraction,
    kvCacheDtype: kv ? kv.kvCacheDtype : opts.kvCacheDtype,
    kvCacheScales: kv?.kvCacheScales,
    enablePrefixCaching: opts.enablePrefixCaching,
    schedulingPolicy: opts.schedulingPolicy,
    useMmap: opts.useMmap,
    useMlock: opts.useMlock,
    ...speculativeOptions(opts.speculative),
    cpuKernels: cpuKernelsOverride(),
    quantization,
  };
}

/**
 * A max_seq_len past the model's positions is refused, as vLLM refuses a max_model_len past them:
 * the rotary positions beyond were never trained, so the output degrades without a word.
 */
export function checkContext(model: ModelConfig, opts: LoadOptions): void {
  if (opts.maxSeqLen !== undefined && opts.maxSeqLen > model.maxContext)
    throw badInput(
      pastContext('max_seq_len', opts.maxSeqLen, model),
      `set max_seq_len to at most ${model.maxContext} in the inference conf, or use a checkpoint configured for longer contexts (rope_scaling: YaRN)`,
    );
}

/**
 * Loads `path` and starts its engine thread. `path` is a Hugging Face Qwen3 checkpoint folder
 * (config.json + safetensors); weights are mapped by the runtime, never copied into JS. `signal`
 * stops the load between two layers (rejecting with a LoadCancelled error), freeing what it took.
 */
export async function loadEngine(path: string, opts: LoadOptions = {}, signal?: AbortSignal): Promise<Engine> {
  const dir = resolve(path);
  if (existsSync(join(dir, 'engine.json'))) return loadEngineFolder(dir, opts, undefined, signal);
  const ckpt = openCheckpoint(dir);
  checkContext(ckpt.model, opts);
  return Engine.create(loadAddon(), ckpt.model, checkpointTensorTable(ckpt), nativeOptions(opts, 'none', resolveKvCache(opts.kvCacheDtype, undefined, dir)), dir, signal, {
    embeddingOnly: ckpt.headless,
  });
}
