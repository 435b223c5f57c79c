// Engine: the GenerationEngine over the native runtime. Requests go to the native scheduler
// with a numeric id; the engine thread's outputs arrive in batches (one JS call per step or
// fewer) and are fanned out here to each request's AsyncIterable.
import { createHash } from 'node:crypto';
import { badInput, failed } from '../util/errors.js';
import type { ModelConfig } from '../model/config.js';
import { loraShapeOf, planLoraAdapter, readLoraRawDeltas, type LoraShape, type ReadLoraOptions } from './lora.js';
import { RequestStream } from './request-stream.js';
import {
  nativeFinishReasons,
  type NativeAddon,
  type NativeConstraint,
  type NativeEngine,
  type NativeEngineInfo,
  type NativeEngineOptions,
  type NativeEngineStats,
  type NativeEventBatch,
  type NativeLora,
  type NativePromptLogprobs,
  type NativeRequestParams,
  type NativeTensorEntry,
} from './native.js';
import { LoadCancelled, type LoadedLora, type EngineInfo, type EngineStats, type GenerationEngine, type SubmitRequest, type TokenEvent, type TopLogprob } from './types.js';

interface Pending {
  stream: RequestStream;
  wantsTop: boolean;
  detach?: () => void;
}

export class Engine implements GenerationEngine {
  readonly info: EngineInfo;
  /** The runtime's own view, including KV pool size and the weight bytes a decode step reads. */
  readonly nativeInfo: NativeEngineInfo;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /**
   * Set when close() starts. From then on the native engine refuses every call, and close() itself
   * finishes every request as cancelled, so a cancel (an abort, a loop left early) has nothing to do.
   */
  private closing: Promise<void> | undefined;
  private native!: NativeEngine;

  private constructor(
    private readonly addon: NativeAddon,
    native: NativeEngine,
    private readonly loraShape: LoraShape,
    maxInputLen?: number,
    embeddingOnly?: boolean,
    /** A Qwen3-MoE model: its MLPs are experts, which LoRA adapters of gate/up/down do not describe. */
    private readonly moe = false,
  ) {
    this.native = native;
    this.nativeInfo = native.info();
    const n = this.nativeInfo;
    this.info = {
      device: n.device,
      kernels: n.kernels,
      threads: n.threads,
      samplingThreads: n.samplingThreads,
      maxBatchSize: n.maxBatchSize,
      maxSeqLen: n.maxSeqLen,
      maxInputLen: Math.min(maxInputLen ?? n.maxSeqLen, n.maxSeqLen),
      maxNumTokens: n.maxNumTokens,
      vocabSize: n.vocabSize,
      hiddenSize: n.hiddenSize,
      quantization: n.quantization,
      kvCacheDtype: n.kvCacheDtype,
      schedulingPolicy: n.schedulingPolicy,
      lora: n.lora === true,
      ...(embeddingOnly ? { embeddingOnly } : {}),
      ...(n.speculative ? { speculative: { ...n.speculative } } : {}),
      ...(n.weights ? { weights: { ...n.weights } } : {}),
    };
  }

  /** Loads a model from a tensor table on the runtime's worker thread. */
  static async create(
    addon: NativeAddon,
    model: ModelConfig,
    tensors: NativeTensorEntry[],
    options: NativeEngineOptions,
    source: string,
    signal?: AbortSignal,
    traits: Pick<EngineInfo, 'embeddingOnly'> = {},
  ): Promise<Engine> {
    let engine: Engine | undefined;
    let native: NativeEngine;
    // The loading thread reads the flag between layers; shared memory, as it is read off the JS thread.
    const cancelFlag = signal ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
    const cancel = () => Atomics.store(cancelFlag!, 0, 1);
    if (signal?.aborted) cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      native = await addon.createEngine(model, tensors, cancelFlag ? { ...options, cancelFlag } : options, (batch) => engine?.onEvents(batch));
    } catch (e) {
      const message = (e as Error).message;
      // A load that fails with its flag set was stopped on request, whatever ended it.
      if (cancelFlag && Atomics.load(cancelFlag, 0) !== 0) throw new LoadCancelled(source);
      // The runtime's KV messages name the fix themselves (the inference conf's keys).
      const fix = /KV cache/.test(message) ? 'see the message above: the KV cache settings in the inference conf' : 'check the model folder and the load options';
      throw badInput(`cannot load ${source}: ${message}`, fix);
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
    engine = new Engine(addon, native, loraShapeOf(model), options.maxInputLen, traits.embeddingOnly, model.moe !== undefined);
    return engine;
  }

  /** A constraint that lets only these tokens be sampled (a simple SubmitRequest.constraint). */
  allowedTokensConstraint(ids: number[]): NativeConstraint {
    return this.addon.createAllowedTokensConstraint(Int32Array.from(ids));
  }

  async loadLoraAdapter(dir: string, opts: ReadLoraOptions = {}): Promise<LoadedLora> {
    if (this.moe)
      throw badInput(
        'LoRA adapters are not served for Qwen3-MoE models: their MLPs are experts, which an adapter of gate/up/down projections does not describe',
        'serve the adapter with the dense Qwen3 model it was trained on',
      );
    if (!this.info.lora)
      throw badInput(
        `LoRA adapters are served by one process (the CPU or one GPU); this engine runs on ${this.info.device} with tensor parallelism`,
        'serve the adapter with tensor_parallel_size 1, or build an engine with it merged: grpst build --merge_lora ADAPTER_DIR',
      );
    // Checked here; read, decoded and packed off the event loop (an 8B model's adapter is seconds of work).
    const plan = planLoraAdapter(dir, this.loraShape, opts);
    const raw = await readLoraRawDeltas(plan);
    let handle: NativeLora;
    try {
      handle = await this.addon.createLoraAdapterAsync(this.loraShape, raw);
    } catch (e) {
      throw badInput(`cannot load the LoRA adapter ${plan.path}: ${(e as Error).message}`, 'serve the adapter with the base model it was trained on');
    }
    return { path: plan.path, rank: plan.rank, targets: plan.targets, handle };
  }

  submit(req: SubmitRequest): AsyncIterable<TokenEvent> {
    if (this.closing) throw failed('the engine is closed', 'load it again with loadEngine');
    if (!(req.tokens instanceof Int32Array) && !req.tokens.every((t) => Number.isInteger(t))) {
      throw badInput('prompt tokens must be integers (token ids)');
    }
    const tokens = req.tokens instanceof Int32Array ? req.tokens : Int32Array.from(req.tokens);
    if (tokens.length === 0) throw badInput('the prompt is empty', 'send at least one token');
    if (tokens.length >= this.info.maxSeqLen) {
      throw badInput(
        `the prompt has ${tokens.length} tokens but the engine's max_seq_len is ${this.info.maxSeqLen}`,
        'shorten the prompt or load the engine with a larger maxSeqLen',
      );
    }
    const id = this.nextId++;
    const stream = new RequestStream(() => this.cancel(id));
    const entry: Pending = { stream, wantsTop: (req.logprobs ?? 0) > 0 };
    if (req.signal?.aborted) {
      stream.push({ tokens: [], finishReason: 'cancelled' });
      return stream;
    }
    const params: NativeRequestParams = {
      ...req.sampling,
      maxTokens: req.maxTokens,
      stopTokenIds: req.stopTokenIds,
      ignoreEos: req.ignoreEos,
      minTokens: req.minTokens,
      logprobs: req.logprobs ?? -1,
      promptLogprobs: req.promptLogprobs,
      promptTopLogprobs: req.promptTopLogprobs,
      cacheSalt: req.cacheSalt === undefined ? undefined : createHash('sha256').update(req.cacheSalt).digest('hex').slice(0, 16),
      priority: req.priority,
      embed: req.embed,
      scoreIds: req.scoreIds,
      badTokenIds: req.badTokenIds,
      badSequences: req.badSequences,
      logitBias: req.logitBias?.flat(),
      thinkBudget: req.thinkBudget,
      constraint: req.constraint as NativeConstraint | undefined,
      lora: req.lora as NativeLora | undefined,
    };
    try {
      this.native.submit(id, tokens, params);
    } catch (e) {
      throw badInput(`invalid request: ${(e as Error).message}`);
    }
    this.pending.set(id, entry);
    if (req.signal) {
      const signal = req.signal;
      const onAbort = () => this.cancel(id);
      signal.addEventListener('abort', onAbort, { once: true });
      entry.detach = () => signal.removeEventListener('abort', onAbort);
    }
    return stream;
  }

  private cancel(id: number): void {
    // Runs from AbortSignal listeners, where a throw would be an uncaught exception.
    if (this.pending.has(id) && !this.closing) this.native.cancel(id);
  }

  stats(): EngineStats {
    if (this.closing) throw failed('the engine is closed');
    const s = this.native.stats();
    return {
      running: s.running,
      waiting: s.waiting,
      kvBlocksTotal: s.kvBlocksTotal,
      kvBlocksUsed: s.kvBlocksUsed,
      kvBlockSize: s.kvBlockSize,
      prefixCacheHitTokens: s.prefixCacheHitTokens,
      prefixCacheQueryTokens: s.prefixCacheQueryTokens,
      promptTokensTotal: s.promptTokensTotal,
      generatedTokensTotal: s.generatedTokensTotal,
      steps: s.steps,
      stepSeconds: s.stepSeconds,
      forwardSeconds: s.forwardSeconds,
      ...(this.info.speculative ? { specDecode: { drafts: s.specDrafts, draftTokens: s.specDraftTokens, acceptedTokens: s.specAcceptedTokens } } : {}),
      kvCacheDtype: this.nativeInfo.kvCacheDtype,
    };
  }

  /** The runtime's counters, including preemptions (beyond EngineStats). */
  runtimeStats(): NativeEngineStats {
    if (this.closing) throw failed('the engine is closed');
    return this.native.stats();
  }

  /** Resolves once the engine thread has stopped; a second call waits for the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.native.close();  // delivers the final "cancelled" events first
      for (const [, p] of this.pending) {
        p.detach?.();
        p.stream.push({ tokens: [], finishReason: 'cancelled' });
      }
      this.pending.clear();
    })();
    return this.closing;
  }

  /** Fans a batch of native outputs out to the requests' streams. */
  private onEvents(b: NativeEventBatch): void {
    let t = 0;
    let k = 0;
    for (let i = 0; i < b.ids.length; i++) {
      const id = b.ids[i];
      const n = b.counts[i];
      const p = this.pending.get(id);
      const ev: TokenEvent = { tokens: Array.from(b.tokens.subarray(t, t + n)) };
      if (b.hasLogprobs[i]) ev.logprobs = Array.from(b.logprobs.subarray(t, t + n));
      // Alternatives are built only for requests that asked for them; the others just skip theirs.
      if (p?.wantsTop && n > 0) ev.topLogprobs = [];
      for (let j = 0; j < n; j++) {
        const c = b.topCounts[t + j];
        ev.topLogprobs?.push(topAt(b.topIds, b.topLogprobs, k, c));
        k += c;
      }
      t += n;
      const reason = nativeFinishReasons[b.finish[i]];
      if (reason) ev.finishReason = reason;
      if (reason === 'stop' && b.stopTokens[i] >= 0) {
        ev.stopTokenId = b.stopTokens[i];
        const c = b.stopTopCounts[i];
        if (!Number.isNaN(b.stopLogprobs[i])) ev.stopLogprob = { logprob: b.stopLogprobs[i], top: p?.wantsTop ? topAt(b.topIds, b.topLogprobs, k, c) : [] };
        k += c;
      }
      if (b.cachedPromptTokens[i] >= 0) ev.cachedPromptTokens = b.cachedPromptTokens[i];
      const err = b.errors[i];
      if (err !== undefined) ev.error = err;
      const pl = b.promptLogprobs[i];
      if (pl) ev.promptLogprobs = promptLogprobs(pl);
      const embedding = b.embeddings[i];
      if (embedding) ev.embedding = embedding;
      const scores = b.scores[i];
      if (scores) ev.scores = scores;
      if (!p) continue;
      p.stream.push(ev);
      if (reason) {
        p.detach?.();
        this.pending.delete(id);
      }
    }
  }
}

function promptLogprobs(p: NativePromptLogprobs): TokenEvent['promptLogprobs'] {
  const out: NonNullable<TokenEvent['promptLogprobs']> = [];
  let k = 0;
  for (let i = 0; i < p.logprobs.length; i++) {
    out.push(i === 0 ? null : { logprob: p.logprobs[i], rank: p.ranks[i], top: topAt(p.topIds, p.topLogprobs, k, p.topCounts[i]) });
    k += p.topCounts[i];
  }
  return out;
}

/** The `count` alternatives stored from index `start` of the flat id / logprob arrays. */
function topAt(ids: Int32Array, lps: Float32Array, start: number, count: number): TopLogprob[] {
  const top: TopLogprob[] = [];
  for (let q = start; q < start + count; q++) top.push({ token: ids[q], logprob: lps[q] });
  return top;
}
