// What every route shares: the engine (once loaded), the tokenizer and template, options,
// metrics, admission, and the set of requests in flight (for drain and close).
import { randomUUID } from 'node:crypto';
import type { ChatTemplate } from '../chat/chat-template.js';
import type { LongTextTokenizer } from '../chat/tokenize-thread.js';
import type { Tokenizer } from '../chat/tokenizer.js';
import type { EngineInfo, GenerationEngine } from '../engine/types.js';
import { Admission } from './admission.js';
import { ApiError, badRequest, modelNotFound, notReady, shuttingDown } from './errors.js';
import type { StreamDecoder } from './generate.js';
import { ServerMetrics } from './metrics.js';
import type { ConstraintCompiler } from './openai/constraints.js';
import type { TemplateMessage } from './openai/chat-messages.js';
import { wordBans, type WordBans } from './openai/token-rules.js';
import { namesServedModel } from './ollama/model-name.js';
import type { ServerOptions } from './options.js';
import { ResponseStore } from './responses-store.js';
import { LoraAdapters } from './lora-adapters.js';
import { badInput } from '../util/errors.js';
import type { RequestTemplates } from './openai/request-templates.js';

export interface RenderOptions {
  addGenerationPrompt: boolean;
  enableThinking: boolean;
  tools?: unknown[];
  /** chat_template_kwargs beyond enable_thinking. */
  kwargs?: Record<string, unknown>;
  /** The prompt ends inside the last (assistant) message, which the model continues. */
  continueFinalMessage?: boolean;
  /** A request's own chat_template, where the server trusts them; else the model's. */
  template?: ChatTemplate;
}

/** The checkpoint's chat template applied and tokenized (user-typed special tokens stay text; a long prompt tokenized off the event loop). */
export type RenderFn = (messages: TemplateMessage[], opts: RenderOptions) => Promise<{ text: string; ids: number[] }>;

/** What the server knows of its model beyond the engine, for routes that describe it (Ollama's /api/show). */
export interface ServedModel {
  /** The chat template's Jinja source. */
  template: string;
  /** The folder the model was loaded from (an engine folder or a checkpoint), when known. */
  dir?: string;
  /** Requests' own chat templates, compiled; only where the conf trusts them (trust_request_chat_template). */
  requestTemplates?: RequestTemplates;
}

/** One log line; `error` for what an operator must see (a failed load, a 500), the rest `info`. */
export type LogFn = (line: string, level?: 'info' | 'warn' | 'error') => void;

export type DecoderFactory = (skipSpecialTokens: boolean) => StreamDecoder;

export type ServerState = 'loading' | 'ready' | 'failed' | 'draining' | 'closed';

/** The longest prompt + answer (maxSeqLen) and prompt (maxInputLen) the server accepts. */
export type ContextLimits = Pick<EngineInfo, 'maxSeqLen' | 'maxInputLen'>;

/**
 * The engine's limits, capped by the tokens its KV pool holds. A pool sized from free memory
 * can be smaller than max_seq_len; a request past the pool would be admitted, generate until
 * the cache is full and then fail with a 500 (or fail at once, for a prompt past it), so it is
 * refused up front as past the context instead, and /v1/models lists the length that can be served.
 */
export function contextLimits(engine: GenerationEngine): ContextLimits {
  const { maxSeqLen, maxInputLen } = engine.info;
  let kvTokens = 0;
  try {
    const s = engine.stats();
    kvTokens = s.kvBlocksTotal * s.kvBlockSize;
  } catch {
    // An engine without pool figures keeps its own limits.
  }
  if (!(kvTokens > 0) || kvTokens >= maxSeqLen) return { maxSeqLen, maxInputLen };
  return { maxSeqLen: kvTokens, maxInputLen: Math.min(maxInputLen, kvTokens) };
}

const version = '0.1.0';

export class ServerContext {
  readonly metrics = new ServerMetrics();
  readonly admission: Admission;
  readonly inflight = new Set<AbortController>();
  /** /v1/responses answers kept for previous_response_id and GET. */
  readonly responses = new ResponseStore();
  /** LoRA adapters served under their own model names (lora_modules, /v1/load_lora_adapter). */
  readonly loras: LoraAdapters;
  state: ServerState = 'loading';
  loadError?: string;
  private loaded?: GenerationEngine;
  private contextLimits: ContextLimits = { maxSeqLen: 0, maxInputLen: 0 };
  private stopIds: number[] = [];
  private confBans: WordBans = {};

  constructor(
    readonly options: ServerOptions,
    readonly tokenizer: Tokenizer,
    /** The tokenizer for request texts: long ones are encoded on a thread of their own. */
    readonly texts: LongTextTokenizer,
    readonly render: RenderFn,
    readonly decoder: DecoderFactory,
    readonly log: LogFn,
    readonly constraints?: ConstraintCompiler,
    readonly served: ServedModel = { template: '' },
  ) {
    this.admission = new Admission(options.maxConcurrency, options.maxQueue);
    this.loras = new LoraAdapters(() => this.servedNames, options.maxLoraRank);
    const ids = [tokenizer.eosTokenId, tokenizer.tokenToId('<|im_end|>'), tokenizer.tokenToId('<|endoftext|>'), options.endTokenId];
    // A conf stop word that is one special token ("<|im_start|>") stops at that token, as
    // TensorRT-LLM's stop-word ids do: matched as text it would never appear, since special
    // tokens are left out of the text.
    for (const word of options.stopWords) {
      const id = tokenizer.tokenToId(word);
      if (id !== undefined && tokenizer.specialMask[id]) ids.push(id);
    }
    this.stopIds = [...new Set(ids.filter((x): x is number => x !== undefined))];
    this.confBans = wordBans(options.badWords, tokenizer, (i) => log(`bad_words: "${options.badWords[i]}" is only spaces, so it bans nothing`));
  }

  /** Loads the conf's lora_modules for `engine`; throws a GrpstError naming the adapter and the fix. */
  async loadLoraModules(engine: GenerationEngine): Promise<void> {
    for (const module of this.options.loraModules ?? []) {
      try {
        await this.loras.add(engine, module, this.options.modelId);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        throw badInput(`lora_modules: ${module.name} (${module.path}): ${e.message}`, 'fix or remove that entry of lora_modules');
      }
    }
    if (this.loras.size > 0) this.log(`LoRA adapters served: ${this.loras.list().map((a) => `${a.name} (rank ${a.loaded.rank}, ${a.loaded.targets.join(' ')})`).join(', ')}`);
  }

  setEngine(engine: GenerationEngine): void {
    this.loaded = engine;
    this.contextLimits = contextLimits(engine);
    if (this.state === 'loading') this.state = 'ready';
  }

  setFailed(message: string): void {
    this.loadError = message;
    if (this.state === 'loading') this.state = 'failed';
  }

  get engine(): GenerationEngine | undefined {
    return this.loaded;
  }

  /** What a request may hold once the engine is loaded: see contextLimits. */
  get limits(): ContextLimits {
    return this.contextLimits;
  }

  /** The engine, or 503 while loading / after a failed load / while draining. */
  requireEngine(): GenerationEngine {
    if (this.state === 'draining' || this.state === 'closed') throw shuttingDown();
    if (!this.loaded) throw notReady(this.state === 'failed' ? `loading failed: ${this.loadError}` : 'loading');
    return this.loaded;
  }

  /** The engine, for a route that generates text: an embedding model (no LM head) is a 400 that says where it serves. */
  requireGenerator(): GenerationEngine {
    const engine = this.requireEngine();
    if (engine.info.embeddingOnly)
      throw badRequest(
        `'${this.options.modelId}' is an embedding model (a base model without an LM head): it serves POST /v1/embeddings and Ollama's /api/embed, not text generation. Serve a causal LM checkpoint for this route.`,
        'model',
        'model_not_supported',
      );
    return engine;
  }

  /** Every name the model is served under (served_model_name): the one answers report first, then its aliases. */
  get servedNames(): string[] {
    return [this.options.modelId, ...(this.options.modelAliases ?? [])];
  }

  /** The served name a client's model name means (Ollama's "qwen3:latest" included), if any. */
  servedName(model: string): string | undefined {
    return this.servedNames.find((name) => namesServedModel(model, name));
  }

  /**
   * A request that names no model (absent, null or "") means the served one, as vLLM reads it; so
   * does each of its names (served_model_name may list several, as vLLM's --served-model-name),
   * and the name Ollama's listing gives it ("qwen3:latest"), which tools that list models
   * through /api/tags send to /v1.
   */
  checkModel(model: string | null | undefined): void {
    if (model && !this.servedName(model) && !this.loras.get(model)) throw modelNotFound(model, this.options.modelId, this.options.modelAliases, this.loras.names());
  }

  /**
   * The engine a generating route runs `model` on, and the name its answers report: the served
   * model's (requireGenerator), or a LoRA adapter's, whose requests all carry the adapter.
   */
  generatorFor(model: string | null | undefined): { engine: GenerationEngine; name: string } {
    return this.bind(model, () => this.requireGenerator());
  }

  /** generatorFor for routes an embedding model serves too (embeddings). */
  engineFor(model: string | null | undefined): { engine: GenerationEngine; name: string } {
    return this.bind(model, () => this.requireEngine());
  }

  /** A route that serves the base model only: a LoRA adapter's name is a 400 that says so. */
  checkBaseModel(model: string | null | undefined, route: string): void {
    this.checkModel(model);
    if (model && !this.servedName(model) && this.loras.get(model))
      throw badRequest(`${route} runs the base model; the LoRA adapter '${model}' serves chat, completions, responses, messages and embeddings. Send "model": "${this.options.modelId}".`, 'model', 'model_not_supported');
  }

  private bind(model: string | null | undefined, base: () => GenerationEngine): { engine: GenerationEngine; name: string } {
    this.checkModel(model);
    const engine = base();
    const adapter = model && !this.servedName(model) ? this.loras.get(model) : undefined;
    if (!adapter) return { engine, name: this.options.modelId };
    return { engine: this.loras.engineFor(engine, adapter), name: adapter.name };
  }

  get stopTokenIds(): number[] {
    return this.stopIds;
  }

  /** The inference conf's bad_words as bans (every request's, beside its own). */
  get bans(): WordBans {
    return this.confBans;
  }

  get fingerprint(): string {
    const info = this.loaded?.info;
    return info ? `fp_grpst_${version}_${info.device}_${info.quantization}` : `fp_grpst_${version}`;
  }

  newId(prefix: 'chatcmpl' | 'cmpl' | 'resp' | 'rerank' | 'score'): string {
    if (prefix === 'resp') return `resp_${randomUUID().replace(/-/g, '')}`;
    return `${prefix}-${randomUUID().replace(/-/g, '')}`;
  }

  /** Registers a request so drain can wait for it and close can cancel it. */
  track(ac: AbortController): () => void {
    this.inflight.add(ac);
    return () => this.inflight.delete(ac);
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError;
}
