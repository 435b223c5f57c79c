// The contract between the serving layer (server, `grpst run`, benchmarks) and the native
// runtime. Everything above src/engine speaks these types; only src/engine talks to the addon.
import { ExitCode, GrpstError } from '../util/errors.js';
import type { LoraTargetName, ReadLoraOptions } from './lora.js';

/** A load stopped by its AbortSignal: everything it took is freed; not a fault of the model. */
export class LoadCancelled extends GrpstError {
  constructor(source: string) {
    super(`loading ${source} was cancelled`, { exitCode: ExitCode.failed });
    this.name = 'LoadCancelled';
  }
}

/**
 * Sampling settings of one request. Defaults follow vLLM/OpenAI: temperature 1, no truncation.
 * Applied in this order: logit_bias and masks, penalties, temperature, then top_k -> top_p ->
 * min_p (vLLM V0's order; V1 applies min_p first, so its top_p measures the mass min_p kept and
 * can cut a few more tokens).
 */
export interface SamplingParams {
  /** 0 means greedy (argmax), whatever the other fields say. */
  temperature: number;
  /** 0 or less: no top-k. */
  topK: number;
  /** 1: no nucleus truncation. */
  topP: number;
  /** 0: no min-p truncation. */
  minP: number;
  /** HF/vLLM repetition penalty over prompt and output tokens; 1 = off. */
  repetitionPenalty: number;
  /** OpenAI presence penalty over output tokens; 0 = off. */
  presencePenalty: number;
  /** OpenAI frequency penalty over output tokens; 0 = off. */
  frequencyPenalty: number;
  /** Same seed and same prompt give the same tokens. Undefined: a fresh random seed. */
  seed?: number;
}

export const defaultSampling: SamplingParams = {
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
};

export interface ThinkBudget {
  maxTokens: number;
  openToken: number;
  closeToken: number;
}

export interface SubmitRequest {
  /** Prompt token ids (already templated and tokenized). */
  tokens: Int32Array | number[];
  sampling: SamplingParams;
  /** Generation stops after this many new tokens (finish reason "length"). */
  maxTokens: number;
  /** Token ids that end generation (finish reason "stop"); the stop token itself is not emitted. */
  stopTokenIds?: number[];
  /**
   * Keep generating past every id in stopTokenIds (lm-eval, benchmarks). The server's ignore_eos
   * passes only the model's end tokens, as vLLM's does: it leaves them out of stopTokenIds when
   * the client sent stop_token_ids of its own (src/server/openai/sampling.ts stopTokens).
   */
  ignoreEos?: boolean;
  /** The stop tokens cannot be sampled before this many new tokens (vLLM's min_tokens). */
  minTokens?: number;
  /**
   * Return the logprob of each sampled token and this many alternatives (0 = just the token).
   * Undefined: none. They are the model's raw distribution (log-softmax of the logits before
   * logit_bias, penalties and temperature), as vLLM V1 reports by default.
   */
  logprobs?: number;
  /** Return logprobs of the prompt tokens themselves (position 0 has none), with `logprobs` alternatives. */
  promptLogprobs?: boolean;
  /** Alternatives per prompt position with promptLogprobs (default: `logprobs`'s count). */
  promptTopLogprobs?: number;
  /**
   * vLLM's cache_salt: only requests with the same salt share cached prompt blocks, so one
   * tenant cannot time another's prompts through the prefix cache.
   */
  cacheSalt?: string;
  /** vLLM's priority, under the "priority" scheduling policy: lower runs first; ties by arrival. Default 0. */
  priority?: number;
  /**
   * An embedding request: the prompt is computed and nothing is sampled (maxTokens is ignored);
   * the one event carries `embedding`, the final norm's output at the last prompt token (last-token
   * pooling, unnormalized), and finishes with "length".
   */
  embed?: boolean;
  /**
   * A scoring request (rerankers): the prompt is computed and nothing is sampled (maxTokens is
   * ignored); the one event carries `scores`, the raw logprob of each of these token ids at the
   * prompt's last position, and finishes with "length".
   */
  scoreIds?: number[];
  /** Token ids that may never be sampled (bad words of one token). */
  badTokenIds?: number[];
  /**
   * Token sequences never generated whole (bad words of several tokens, as vLLM and TensorRT-LLM
   * ban them): each one's last token is banned right after the rest of it among the generated
   * tokens; the prompt does not count.
   */
  badSequences?: number[][];
  /** OpenAI logit_bias: [token id, bias] pairs added to the logits before sampling (logprobs stay the model's). */
  logitBias?: [number, number][];
  /**
   * A thinking token budget (vLLM's thinking_token_budget): once the think block opened by
   * openToken (in the prompt or generated) holds maxTokens tokens, the next token is closeToken,
   * whatever the logits say (its logprob, when asked, is still the model's). Only the first block
   * of the answer is bounded.
   */
  thinkBudget?: ThinkBudget;
  /** Compiled constrained-decoding grammar handle (structured outputs); undefined = free text. */
  constraint?: unknown;
  /** A LoRA adapter the model runs with (GenerationEngine.loadLoraAdapter's handle); undefined = the base model. */
  lora?: unknown;
  /** Abort: frees the sequence and its KV blocks at once; the iterator then ends with finish reason "cancelled". */
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface TopLogprob {
  token: number;
  logprob: number;
}

/** What the iterator of one request yields: one or more new tokens, in order. */
export interface TokenEvent {
  /** New token ids since the previous event (at least one, except in the final event). */
  tokens: number[];
  /** logprobs[i] belongs to tokens[i]; present when the request asked for logprobs. */
  logprobs?: number[];
  /** topLogprobs[i]: the alternatives at the step that produced tokens[i]. */
  topLogprobs?: TopLogprob[][];
  /** Set on the last event of the request. */
  finishReason?: FinishReason;
  /** On the last event when finishReason is "stop": the stop token id that ended it. */
  stopTokenId?: number;
  /** With stopTokenId, when logprobs were asked: the stop token's logprob and alternatives. */
  stopLogprob?: { logprob: number; top: TopLogprob[] };
  /** On the first event when promptLogprobs was asked: one entry per prompt token (null for position 0). */
  promptLogprobs?: (null | { logprob: number; rank: number; top: TopLogprob[] })[];
  /** Prompt tokens found in the prefix cache (not recomputed), on the first event. */
  cachedPromptTokens?: number;
  /** Error message when finishReason is "error". */
  error?: string;
  /** An embedding request's one event: the final norm's output at the prompt's last token, [hidden size]. */
  embedding?: Float32Array;
  /** A scoring request's one event: the logprob of each of its scoreIds at the prompt's last position. */
  scores?: Float32Array;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksTotal: number;
  kvBlocksUsed: number;
  kvBlockSize: number;
  prefixCacheHitTokens: number;
  prefixCacheQueryTokens: number;
  promptTokensTotal: number;
  generatedTokensTotal: number;
  steps: number;
  /** Wall time of those steps, and the part of it inside the model runner (forward pass); the rest is host work between forward passes (scheduling, sampling on the host, events). */
  stepSeconds: number;
  forwardSeconds: number;
  /** With speculative decoding on: steps of a sequence that carried drafts, the drafts checked, and those the model's own sampling agreed with. */
  specDecode?: { drafts: number; draftTokens: number; acceptedTokens: number };
  /** Element type of the KV cache blocks: bfloat16, float32, fp8 (e4m3) or int8 (as EngineInfo.kvCacheDtype). */
  kvCacheDtype: string;
}

export interface EngineInfo {
  /** "cpu" or "cuda". */
  device: string;
  /** CPU kernels chosen at run time: avx512bf16, avx512, avx2, scalar; or the GPU's name. */
  kernels: string;
  threads: number;
  /** Threads that read a step's host rows at once (draws, prompt logprobs; LoadOptions.samplingThreads). */
  samplingThreads: number;
  maxBatchSize: number;
  maxSeqLen: number;
  /** Prompt tokens a request may carry (an engine's --max_input_len; else maxSeqLen). */
  maxInputLen: number;
  maxNumTokens: number;
  vocabSize: number;
  /** Width of the hidden state: the length of an embedding. */
  hiddenSize: number;
  quantization: string;
  kvCacheDtype: string;
  /** "fcfs": requests run in arrival order; "priority": by SubmitRequest.priority, then arrival (LoadOptions.schedulingPolicy). */
  schedulingPolicy: SchedulingPolicy;
  /** A base model without an LM head (Qwen3-Embedding's layout): it serves embeddings only. */
  embeddingOnly?: boolean;
  /** Whether requests may carry LoRA adapters (one process, on the CPU or one GPU: no tensor parallelism). */
  lora?: boolean;
  /** Speculative decoding as resolved (LoadOptions.speculative); absent when off. */
  speculative?: ResolvedSpeculation;
  /** How the weights files are held (LoadOptions.useMmap / useMlock); absent where the engine has no files. */
  weights?: WeightsInfo;
}

/** How the runtime holds the weights files, as loaded. */
export interface WeightsInfo {
  /** true: mapped (the pages stay the file's); false: read into memory of the process's own. */
  mapped: boolean;
  /** LoadOptions.useMlock was asked for. */
  lockAsked: boolean;
  /** Every weights file is locked in RAM. */
  locked: boolean;
  /** Bytes of the weights files. */
  bytes: number;
  /** Why a lock was refused, with the fix; absent when none was. */
  lockWarning?: string;
  /**
   * The weights were uploaded to the GPU and the host copy (mapping or memory read) released after
   * the load: the files may change or go, and mapped / locked describe nothing held. Such a copy is
   * never locked (it does not outlive the load; GPU memory is never paged out).
   */
  hostCopyReleased: boolean;
}

export type SchedulingPolicy = 'fcfs' | 'priority';

/**
 * vLLM's speculative_config. Drafts are proposed for each decoding sequence and one step checks
 * them all; every emitted token is still drawn from the model's own logits with the request's
 * sampling settings, so outputs are the same as without (bit for bit on the CPU; on a GPU up to
 * the rounding of the multi-row path), and a step that agrees with k drafts emits k + 1 tokens.
 */
export type SpeculativeOptions = NgramSpeculation | DraftModelSpeculation;

/** Method "ngram" (prompt lookup): the sequence's last tokens are looked up earlier in its own prompt and output, and what followed is proposed. */
export interface NgramSpeculation {
  method: 'ngram';
  /** Most draft tokens one step checks (1-16). */
  numSpeculativeTokens: number;
  /** Shortest suffix that counts as a match (default: 2, or promptLookupMax when smaller). */
  promptLookupMin?: number;
  /** Longest suffix tried first (default: 4, or promptLookupMin when larger). */
  promptLookupMax?: number;
}

/**
 * Method "draft_model": a smaller model of the same family (the same vocabulary) proposes the
 * next tokens greedily, running beside the model on the CPU backend with a KV cache of its own
 * (as many tokens as the model's, at the draft's bytes per token).
 */
export interface DraftModelSpeculation {
  method: 'draft_model';
  /** Most draft tokens one step checks (1-16). */
  numSpeculativeTokens: number;
  /** The draft: a Qwen3 checkpoint folder or a grpst engine folder (any qformat). */
  model: string;
}

/** Speculative decoding as the runtime resolved it (EngineInfo.speculative). */
export type ResolvedSpeculation =
  | Required<NgramSpeculation>
  | {
      method: 'draft_model';
      numSpeculativeTokens: number;
      /** Bytes of the draft's KV cache. */
      draftKvBytes: number;
      /** Bytes its cache mirrors one token of the model's in (its pool also holds scratch blocks). */
      draftKvBytesPerToken: number;
      /** Weight bytes one draft step reads. */
      draftWeightBytesPerStep: number;
      /** Where the draft runs: the model's device. */
      draftDevice: 'cpu' | 'cuda';
      /** Whether its greedy proposals are drawn there (a GPU, or the GPU sampler's CPU twin): no logits go to the host. */
      draftSamplesOnDevice: boolean;
    };

/** What `loadEngine` takes besides the path; every field has a default fitted to the device. */
export interface LoadOptions {
  /** "cpu", "cuda" or "auto" (cuda where the CUDA backend was built and a GPU is present). */
  device?: 'cpu' | 'cuda' | 'auto';
  /** CPU worker threads; default: the machine's cores. */
  threads?: number;
  /**
   * Threads that read a step's rows on the host at once, one sequence per task: draws of requests
   * a GPU does not sample (more than 20 top logprobs, a think budget's forced token, a constraint
   * or think budget on a drafted row) and prompt logprobs. Default: the CPU backend's threads, or the machine's cores on a GPU, at most 8.
   */
  samplingThreads?: number;
  /**
   * CPU backend: draw the rows a GPU would draw on its device with that sampler's CPU twin instead
   * of the host sampler (same rules, the device's seeded stream), so the device path's scheduling
   * runs where no GPU is. Ignored where the runner samples on its device already.
   */
  deviceSamplerTwin?: boolean;
  maxBatchSize?: number;
  maxNumTokens?: number;
  maxSeqLen?: number;
  /** Prompt tokens a request may carry, at most maxSeqLen (default: maxSeqLen); an engine folder's max_input_len. */
  maxInputLen?: number;
  /** Tokens per KV block (default 16). */
  kvBlockSize?: number;
  /** KV pool size, in this order of precedence: exact token count, bytes, fraction of free memory. */
  maxTokensInPagedKvCache?: number;
  kvCacheBytes?: number;
  kvCacheFreeMemFraction?: number;
  /**
   * "auto" (the engine's: fp8 / int8 with its calibrated scales when built with --kv_cache_dtype,
   * else bfloat16), "bfloat16", "float32", "fp8", "int8". fp8 without calibrated scales runs with
   * scale 1.0; int8 needs an engine built with --kv_cache_dtype (docs/build.md, "Quantized KV cache").
   */
  kvCacheDtype?: string;
  enablePrefixCaching?: boolean;
  /**
   * vLLM's --scheduling-policy: "fcfs" (default) admits waiting requests in arrival order and,
   * when KV blocks run out, preempts the latest admitted; "priority" orders both by
   * SubmitRequest.priority (lower first), then arrival.
   */
  schedulingPolicy?: SchedulingPolicy;
  /** Speculative decoding by prompt lookup (vLLM's speculative_config, method "ngram"); off when absent. */
  speculative?: SpeculativeOptions;
  /**
   * true (default): map the weights files, as llama.cpp does; pages load on demand and stay the
   * files', so truncating or rewriting a file under a running engine kills it (SIGBUS) or changes
   * its weights. false: read them into memory of the process's own (RAM the size of the files),
   * after which the files may change or go without harm (llama.cpp's --no-mmap). On a GPU either
   * way lasts only for the load: the weights are uploaded, then the host copy is released.
   */
  useMmap?: boolean;
  /**
   * Lock the weights in RAM (mlock), so memory pressure never pages them out (llama.cpp's
   * --mlock). A lock the system refuses (RLIMIT_MEMLOCK, ulimit -l) is no error: the engine runs
   * unlocked and EngineInfo.weights.lockWarning says why, with the fix. Nothing to lock on a GPU,
   * whose engine keeps no host copy (EngineInfo.weights.hostCopyReleased).
   */
  useMlock?: boolean;
}

/** A loaded model that generates: the native runtime behind a typed facade. */
/** A LoRA adapter read for an engine (GenerationEngine.loadLoraAdapter). */
export interface LoadedLora {
  /** Its folder, absolute. */
  path: string;
  /** The largest rank of its projections. */
  rank: number;
  /** The projections it adapts (PEFT's names). */
  targets: LoraTargetName[];
  /** What SubmitRequest.lora takes. */
  handle: unknown;
}

export interface GenerationEngine {
  readonly info: EngineInfo;
  /** Starts a request; tokens arrive in batches as the native loop produces them. */
  submit(req: SubmitRequest): AsyncIterable<TokenEvent>;
  /** A SubmitRequest.constraint under which only these ids can be sampled (vLLM's allowed_token_ids); absent where the engine has none. */
  allowedTokensConstraint?(ids: number[]): unknown;
  /**
   * Reads a PEFT LoRA adapter folder for this model (its tensors read and packed off the event
   * loop): `handle` goes in SubmitRequest.lora. Rejects with a GrpstError naming the problem (a
   * missing or malformed folder, another model's shapes, an engine that cannot apply adapters).
   * Absent where the engine has no adapters.
   */
  loadLoraAdapter?(dir: string, opts?: ReadLoraOptions): Promise<LoadedLora>;
  stats(): EngineStats;
  /** Cancels everything, stops the native loop and unmaps the weights. */
  close(): Promise<void>;
}
