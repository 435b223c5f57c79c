// Everything the HTTP server needs to know, already resolved from server.yml and the inference
// conf (src/config maps the YAML files onto this; `grpst serve` and tests build it directly).
import type { SamplingParams } from '../engine/types.js';

export interface ServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** The id /v1/models lists first, answers report and requests may name (default "qwen3"). */
  modelId: string;
  /** More names requests may send for the same model (served_model_name's list after its first); /v1/models lists each. */
  modelAliases?: string[];
  /** When set, /v1/* and /tokenize, /detokenize require `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** With apiKey set: whether /health and /metrics demand it too. */
  authHealth: boolean;
  authMetrics: boolean;
  /** Requests generating at once; more wait in a queue of maxQueue, beyond that 429. */
  maxConcurrency: number;
  maxQueue: number;
  /** Open sockets at once (node:http maxConnections). */
  maxConnections: number;
  /** Request bodies above this get 413. */
  maxBodyBytes: number;
  /**
   * Milliseconds a client may take to send a whole request (headers and body; not the answer)
   * and its headers alone; slower ones get 408. Defaults: DEFAULT_REQUEST_TIMEOUT_MS and
   * DEFAULT_HEADERS_TIMEOUT_MS (never above the request timeout).
   */
  requestTimeoutMs?: number;
  headersTimeoutMs?: number;
  /** Default for requests that do not say (enable_thinking or chat_template_kwargs.enable_thinking). */
  enableThinking: boolean;
  /** Render a request's own chat_template (vLLM's --trust-request-chat-template); else such requests get 400. */
  trustRequestChatTemplate?: boolean;
  /** true: the think block goes to reasoning_content; false: kept inline in content, as grps_trtllm does. */
  reasoningParser: boolean;
  /** The think block's most tokens for requests that set no budget (inference conf thinking_token_budget); undefined: unbounded. */
  thinkingTokenBudget?: number;
  /** Defaults for sampling fields a request leaves out (the inference conf's sampling section). */
  sampling: Partial<SamplingParams>;
  /**
   * The answer's length when a request sets none (generation_config.json's max_new_tokens);
   * undefined: the rest of the context. A request's own max_tokens always wins.
   */
  defaultMaxTokens?: number;
  /** Generation also ends at this token (inference conf end_token_id, TensorRT-LLM's end_id). */
  endTokenId?: number;
  /** Extra stop strings applied to every request (inference conf stop_words). */
  stopWords: string[];
  /** Strings whose tokens are never generated (inference conf bad_words). */
  badWords: string[];
  skipSpecialTokens: boolean;
  /** The ids skipping leaves out when the conf lists them (skip_special_tokens: [ids]); else every special token. */
  skipTokenIds?: number[];
  /** Serve the web chat page at GET / (server.yml switch). */
  webUi: boolean;
  /** Log one line per answered request (server.yml log.access_log). */
  accessLog: boolean;
  /** LoRA adapters served beside the model under their own names (vLLM's --lora-modules); paths absolute. */
  loraModules?: LoraModule[];
  /** vLLM's --max-lora-rank: adapters of a higher rank are refused; undefined: any rank. */
  maxLoraRank?: number;
  /** POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING). */
  allowRuntimeLoraUpdating?: boolean;
}

/** One adapter of lora_modules: the name requests send as "model", and its PEFT folder. */
export interface LoraModule {
  name: string;
  path: string;
  /** The model /v1/models lists as its parent (default: the served model's id). */
  baseModelName?: string;
}

/** Node's own defaults: 5 minutes for a whole request, one for its headers. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;

export const defaultServerOptions: ServerOptions = {
  host: '0.0.0.0',
  port: 9997,
  modelId: 'qwen3',
  authHealth: false,
  authMetrics: false,
  maxConcurrency: 32,
  maxQueue: 256,
  maxConnections: 1024,
  maxBodyBytes: 16 * 1024 * 1024,
  enableThinking: false,
  trustRequestChatTemplate: false,
  reasoningParser: false,
  sampling: {},
  stopWords: [],
  badWords: [],
  skipSpecialTokens: true,
  webUi: true,
  accessLog: true,
};
