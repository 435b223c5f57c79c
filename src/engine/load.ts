// loadEngine(): a Hugging Face checkpoint folder (or, later, an engine folder) -> a running Engine.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pastContext, type ModelConfig } from '../model/config.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { badInput } from '../util/errors.js';
import { loadAddon } from './addon.js';
import { loadEngineFolder } from './engine-folder.js';
import { Engine } from './engine.js';
import { resolveKvCache, type KvCacheChoice } from './kv-cache.js';
import type { NativeEngineOptions, NativeTensorEntry } from './native.js';
import type { LoadOptions } from './types.js';

/**
 * LoadOptions plus the process-wide switches (GRPST_CPU_KERNELS forces a lower kernel level). `kv`:
 * the KV cache resolved against the model (resolveKvCache); default: opts.kvCacheDtype as given.
 */
export function nativeOptions(opts: LoadOptions, quantization = 'none', kv?: KvCacheChoice): NativeEngineOptions {
  return {
    device: opts.device ?? 'auto',
    threads: opts.threads,
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
    cpuKernels: process.env.GRPST_CPU_KERNELS || undefined,
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
  const tensors: NativeTensorEntry[] = [...ckpt.tensors.values()].map((t) => ({
    name: t.name,
    file: t.file,
    offset: t.offset,
    nbytes: t.nbytes,
    dtype: t.dtype,
    shape: t.shape,
  }));
  return Engine.create(loadAddon(), ckpt.model, tensors, nativeOptions(opts, 'none', resolveKvCache(opts.kvCacheDtype, undefined, dir)), dir, signal);
}
