// The typed mirror of the native addon (native/src/addon): every function, class and object
// shape it exposes. Only src/engine talks to the addon, through these types.
import type { ModelConfig } from '../model/config.js';
import type { LoraRawDelta, LoraShape } from './lora.js';
import type { EngineInfo, EngineStats, LoadOptions, ResolvedSpeculation, SamplingParams, SubmitRequest } from './types.js';

/** One tensor of the generic tensor table: a byte range of a mapped file. */
export interface NativeTensorEntry {
  name: string;
  /** Absolute path of the file holding the bytes. */
  file: string;
  offset: number;
  nbytes: number;
  /** safetensors spelling: BF16, F16, F32, I8, U8, I32, F8_E4M3. */
  dtype: string;
  shape: number[];
}

/** What createEngine takes besides the model: LoadOptions plus the runtime's own switches. */
export interface NativeEngineOptions extends Omit<LoadOptions, 'device' | 'speculative'> {
  device?: string;
  /** LoadOptions.speculative flattened (0 or absent: off); the bounds are the runtime's own. */
  speculativeTokens?: number;
  promptLookupMin?: number;
  promptLookupMax?: number;
  /** Speculative decoding with a draft model: its config, tensor table and quantization scheme (as the model's own arguments). */
  draftModel?: { model: ModelConfig; tensors: NativeTensorEntry[]; quantization: string };
  /** fp8 / int8 cache: [k_scale, v_scale] per layer (engine.json kv_cache.scales); absent: see LoadOptions.kvCacheDtype. */
  kvCacheScales?: [number, number][];
  /** "amx", "avx512", "avx2" or "scalar"; empty: the best this CPU runs. */
  cpuKernels?: string;
  /** Engine quantization scheme; "none" for Hugging Face checkpoints. */
  quantization?: string;
  /**
   * Rank 0 of a tensor-parallel engine: the tensors given are rank 0's shard, and the other ranks
   * (runTensorParallelWorker in their own processes) join through NCCL with the same id. Or, for
   * tests and CPU scoring, `rankTensors`: every rank's table, all run in this process on the CPU.
   */
  tensorParallel?: { size: number; ncclId?: string; rankTensors?: NativeTensorEntry[][] };
  /** Cell 0 set non-zero (Atomics.store) stops the load before its next layer; the runtime reads it from its loading thread. */
  cancelFlag?: Int32Array;
}

/** The fourth argument of runTensorParallelWorker: which rank this process is, and the group's id. */
export interface NativeTensorParallelRank {
  rank: number;
  size: number;
  ncclId: string;
}

/** The third argument of NativeEngine.submit: SamplingParams flattened with the request's switches. */
export interface NativeRequestParams
  extends SamplingParams,
    Pick<SubmitRequest, 'maxTokens' | 'stopTokenIds' | 'ignoreEos' | 'minTokens' | 'promptLogprobs' | 'promptTopLogprobs' | 'badTokenIds' | 'badSequences' | 'thinkBudget' | 'embed' | 'scoreIds'> {
  /** -1 or absent: none; N: the token's logprob and N alternatives. */
  logprobs?: number;
  /** The cache salt's SHA-256, its first 16 hex digits. */
  cacheSalt?: string;
  priority?: number;
  /** [token, bias, token, bias, ...] */
  logitBias?: number[];
  constraint?: NativeConstraint;
  lora?: NativeLora;
}

/** Finish codes in NativeEventBatch.finish, by index. */
export const nativeFinishReasons = [undefined, 'stop', 'length', 'cancelled', 'error'] as const;

export interface NativePromptLogprobs {
  /** [promptLen]; NaN at position 0. */
  logprobs: Float32Array;
  /** [promptLen]: each token's rank in its row (1: the likeliest); 0 at position 0. */
  ranks: Int32Array;
  /** [promptLen]: alternatives per position. */
  topCounts: Int32Array;
  topIds: Int32Array;
  topLogprobs: Float32Array;
}

/**
 * The outputs of one or more engine steps, delivered in one JS call. Entry i belongs to request
 * ids[i] and owns counts[i] consecutive tokens of `tokens` (and of logprobs / topCounts).
 */
export interface NativeEventBatch {
  ids: Float64Array;
  counts: Int32Array;
  finish: Uint8Array;
  /** The stop token when finish is Stop, else -1. */
  stopTokens: Int32Array;
  /** The stop token's logprob when the request asked for logprobs, else NaN. */
  stopLogprobs: Float32Array;
  /** How many alternatives of the stop token follow the entry's token alternatives in topIds / topLogprobs. */
  stopTopCounts: Int32Array;
  /** Prefix-cache hits on the request's first entry, else -1. */
  cachedPromptTokens: Int32Array;
  hasLogprobs: Uint8Array;
  tokens: Int32Array;
  logprobs: Float32Array;
  topCounts: Int32Array;
  topIds: Int32Array;
  topLogprobs: Float32Array;
  /** Sparse: a message where finish is Error. */
  errors: (string | undefined)[];
  /** Sparse: on the first entry of requests that asked for prompt logprobs. */
  promptLogprobs: (NativePromptLogprobs | undefined)[];
  /** Embedding requests' vectors, by event index (sparse). */
  embeddings: (Float32Array | undefined)[];
  /** Scoring requests' logprobs, by event index (sparse). */
  scores: (Float32Array | undefined)[];
}

/** EngineStats as the runtime counts them: its KV dtype is in NativeEngineInfo, and it also counts preemptions. */
export interface NativeEngineStats extends Omit<EngineStats, 'kvCacheDtype' | 'specDecode'> {
  preemptions: number;
  specDrafts: number;
  specDraftTokens: number;
  specAcceptedTokens: number;
  /** Tokens the runner drew on its device (the GPU's sampler, or its CPU twin); the rest were drawn by the host sampler. */
  deviceDrawnTokens: number;
  /** Prompt logprob rows the runner read on its device (their logits never came back to the host). */
  devicePromptRows: number;
}

/** EngineInfo plus the runtime's KV pool size and the figures of its roofline. */
export interface NativeEngineInfo extends Omit<EngineInfo, 'speculative'> {
  /** Speculative decoding as the runtime resolved it; absent when off. */
  speculative?: ResolvedSpeculation;
  kvBlocks: number;
  kvBlockSize: number;
  /** Weight bytes one decode step reads (the roofline's numerator). */
  weightBytesPerStep: number;
  kvBytesPerToken: number;
  /** The GPU's free bytes (less a draft's scratch) the KV pool was sized from; absent where the
   * conf fixed the pool or it is not on a GPU. */
  kvSizedFromFreeBytes?: number;
}

export interface NativeEngine {
  /** Queues a request; throws on malformed parameters. */
  submit(id: number, tokens: Int32Array, params: NativeRequestParams): void;
  /** Cancels at the next step boundary; a Cancelled entry follows. */
  cancel(id: number): void;
  stats(): NativeEngineStats;
  info(): NativeEngineInfo;
  /** Finishes every request as cancelled, stops the engine thread, frees weights and cache. */
  close(): Promise<void>;
}

/** A compiled decoding constraint (opaque), accepted as SubmitRequest.constraint. */
export interface NativeConstraint {
  readonly __nativeConstraint?: never;
}

/** A LoRA adapter in the runtime (opaque), accepted as SubmitRequest.lora; shared with the requests that use it. */
export interface NativeLora {
  readonly __nativeLora?: never;
}

export interface KernelSelfTestResult {
  gemmBf16: number;
  gemmBatchInvariant: boolean;
  attentionF32: number;
  attentionBf16: number;
  /** fp8 (e4m3) and int8 KV pools with per-tensor scales, against the scalar twin. */
  attentionFp8: number;
  attentionInt8: number;
  /** fp8 / int8 pools against fp32 attention over the values their codes stand for (code * scale). */
  attentionQuantVsFloat: number;
  /** Every pool against the definition in double precision (independent of the kernels' key tiles). */
  attentionVsDefinition: number;
  /** Several query rows in one call give the same bits as one row per call. */
  attentionRowInvariant: boolean;
  /** Mismatches of the KV quantizers (e4m3 nearest-even saturating, int8 half-even clamped) against brute force. */
  kvQuantRounding: number;
  rowKernels: number;
  maxSumExp: number;
  /** Rows where greedy's argmax differs from its definition (ties, NaN, -inf, tails). */
  argmaxMismatches: number;
  quantDecodeRowsInvariant: boolean;
  activationQuantizersExact: boolean;
  int8SqExact: boolean;
  /** int8_wo linears against the scalar level's fp32 sums (on amx: x split into three int8 parts): worst error over the peak (~1e-6). */
  int8WoVsScalar: number;
  /** fp8 linears against the scalar level: 1 when a single product differs, else the worst sum difference over the largest output (~1e-7). */
  fp8VsScalar: number;
  /** int4 linears against the scalar level (the nibbles' order on avx512 / amx for groups of 128): worst error over the peak (~1e-6). */
  int4VsScalar: number;
  int4SharedOperands: boolean;
}

export interface NativeProbe {
  version: string;
  /** Levels this CPU runs, best first. */
  cpuKernels: string[];
  bestCpuKernels: string;
  cuda: boolean;
  /** Built with NCCL: tensor-parallel engines can run across GPUs. */
  nccl?: boolean;
}

export interface NativeAddon {
  probe(): NativeProbe;
  /** Best sequential read bandwidth in bytes/s over `iterations` passes of `bytes`. */
  measureMemoryBandwidth(bytes: number, iterations: number, threads: number): number;
  /** Free bytes on GPU `device` now; -1 when the build has no CUDA backend. */
  gpuFreeMemory(device: number): number;
  /** Each kernel of `level` against the scalar twin: max relative errors and batch invariance. */
  kernelSelfTest(level: string): KernelSelfTestResult;
  /**
   * Prompt lookup through its index against the scan that defines it, on `sequences` random
   * repetitive sequences grown token by token: how many lookups, how many found a draft, how
   * many disagreed (and the first).
   */
  ngramDraftSelfTest(seed: number, sequences: number): { lookups: number; found: number; mismatches: number; first: string };
  /** Microseconds per failing lookup on a `length`-token sequence: the scan's and the index's. */
  benchNgramDraft(length: number, reps: number): { scanUs: number; indexUs: number };
  createEngine(
    model: ModelConfig,
    tensors: NativeTensorEntry[],
    options: NativeEngineOptions,
    onEvents: (batch: NativeEventBatch) => void,
  ): Promise<NativeEngine>;
  /** A constraint that allows only these token ids. */
  createAllowedTokensConstraint(ids: Int32Array): NativeConstraint;
  /**
   * An adapter from its deltas' stored bytes (src/engine/lora.ts), decoded and packed on a worker
   * thread; rejects where a delta's sizes do not fit `shape`.
   */
  createLoraAdapterAsync(shape: LoraShape, deltas: LoraRawDelta[]): Promise<NativeLora>;
  /** NCCL's unique id (hex) for a new tensor-parallel group; throws when the build has no NCCL. */
  ncclUniqueId?(): string;
  /**
   * Ranks > 0 of a tensor-parallel engine: loads this rank's shard on GPU `rank`, joins the group
   * and replays rank 0's steps; resolves when rank 0 closes its engine, rejects on a failure.
   */
  runTensorParallelWorker?(model: ModelConfig, tensors: NativeTensorEntry[], options: NativeEngineOptions, tp: NativeTensorParallelRank): Promise<void>;
}
