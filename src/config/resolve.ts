// Maps the two confs onto what the runtime and the server take (LoadOptions, ServerOptions) in
// one place, and resolves every path in them against the deploy folder.
import fs from 'node:fs';
import path from 'node:path';
import type { LoadOptions, SamplingParams, SpeculativeOptions } from '../engine/types.js';
import { defaultServerOptions, type ServerOptions } from '../server/options.js';
import { badInput, GrpstError } from '../util/errors.js';
import { describeDefaults, readGenerationDefaults } from './generation-config.js';
import { requireEngineFolder, requireTokenizerDir, type EngineBackend } from './engine-folder.js';
import { inferenceConfSchema, servedModelNames, tensorrtOnlyInfererKeys, type InferenceConf, type InfererArgs, type SpeculativeConfig } from './inference-schema.js';
import { defaultPort, envVars, isInside, resolveConfPath } from './paths.js';
import { serverConfSchema, type ServerConf } from './server-schema.js';
import { suggest, validateConf } from './validate.js';
import { parseYamlText, readYamlFile, type YamlFile } from './yaml-file.js';
import { hubModelPath } from '../hub/conf-paths.js';
import { parseModelRef } from '../hub/hub-env.js';

/** A remark about a conf key, located later by the caller (file:line). */
export interface ConfNote {
  /** 'command line': a flag (keyPath its name) that took the place of a conf key. */
  file: 'inference' | 'server' | 'command line';
  keyPath: (string | number)[];
  text: string;
}

export interface RuntimeOptions {
  load: LoadOptions;
  server: ServerOptions;
  /** The RPC port of "http,rpc" (shown by ps; only HTTP is served). */
  rpcPort?: number;
  /** Keys accepted but without effect for this backend: one warning line each. */
  notes: ConfNote[];
}

// Keys that mean something to the native runtime only; ignored (with a note) under trtllm-serve.
const nativeOnlyKeys = ['device', 'threads', 'sampling_threads', 'kv_block_size', 'kv_cache_bytes', 'kv_cache_dtype', 'generation_config', 'scheduling_policy', 'speculative_config', 'lora_modules', 'max_lora_rank', 'allow_runtime_lora_updating', 'use_mmap', 'use_mlock'] as const;
// TensorRT-LLM keys that `grpst start` passes on to trtllm-serve for a TensorRT-LLM engine.
export const keysPassedToTrtllm = new Set(['max_tokens_in_paged_kv_cache', 'kv_cache_host_memory_bytes', 'batch_scheduler_policy', 'enable_kv_cache_reuse', 'kv_cache_free_gpu_mem_fraction', 'enable_chunked_context']);

/**
 * The one mapping from inference.yml + server.yml onto LoadOptions + ServerOptions. Pure apart
 * from `apiKey`, which the caller reads (env, api_key_file) and hands in.
 */
export function mapConfs(inference: InferenceConf, server: ServerConf, opts: { backend?: EngineBackend; apiKey?: string; listen?: Listen } = {}): RuntimeOptions {
  const backend = opts.backend ?? 'native';
  const model = inference.models[0];
  const args = model.inferer_args;
  const argsPath = ['models', 0, 'inferer_args'];
  const notes: ConfNote[] = [];

  for (const [key, why] of Object.entries(tensorrtOnlyInfererKeys)) {
    const value = (args as Record<string, unknown>)[key];
    if (!isSet(value)) continue;
    if (backend === 'trtllm' && keysPassedToTrtllm.has(key)) continue;
    notes.push({ file: 'inference', keyPath: [...argsPath, key], text: `ignored (${why})` });
  }
  if (backend === 'trtllm') {
    for (const key of nativeOnlyKeys) {
      if (args[key] === undefined) continue;
      const text =
        key === 'generation_config'
          ? "ignored: grpst's own server applies generation_config.json; trtllm-serve chooses its sampling defaults itself"
          : key === 'scheduling_policy'
            ? "ignored: trtllm-serve schedules requests itself (batch_scheduler_policy is passed on)"
            : key === 'speculative_config'
              ? 'ignored: a TensorRT-LLM engine speculates as it was built (trtllm-build --speculative_decoding_mode)'
              : key === 'lora_modules' || key === 'max_lora_rank' || key === 'allow_runtime_lora_updating'
                ? "ignored: a TensorRT-LLM engine takes LoRA adapters at build (trtllm-build --lora_plugin, --lora_dir)"
                : key === 'use_mmap' || key === 'use_mlock'
                  ? 'ignored: trtllm-serve reads a TensorRT-LLM engine itself (into GPU memory)'
                  : 'ignored: trtllm-serve runs a TensorRT-LLM engine on the GPU';
      notes.push({ file: 'inference', keyPath: [...argsPath, key], text });
    }
    // trtllm-serve names its model by the path it was given; grpst passes no name on (older releases take none).
    if (args.served_model_name !== undefined)
      notes.push({ file: 'inference', keyPath: [...argsPath, 'served_model_name'], text: 'not applied: trtllm-serve lists the model under its engine path (GET /v1/models shows it)' });
  } else {
    if (args.batch_scheduler_policy === 'max_utilization') {
      notes.push({ file: 'inference', keyPath: [...argsPath, 'batch_scheduler_policy'], text: 'max_utilization ignored: the native scheduler never evicts a started request (guaranteed_no_evict)' });
    }
    if (args.exclude_input_in_output === false) {
      notes.push({ file: 'inference', keyPath: [...argsPath, 'exclude_input_in_output'], text: 'false ignored: chat responses never repeat the prompt (use /v1/completions with echo)' });
    }
  }
  if (server.interface?.framework && server.interface.framework !== 'http') {
    notes.push({ file: 'server', keyPath: ['interface', 'framework'], text: `${server.interface.framework}: only HTTP is served; the RPC port is not opened` });
  }
  if (server.gpu) notes.push({ file: 'server', keyPath: ['gpu'], text: 'ignored: GPU monitoring is not built in (see /metrics for engine statistics)' });

  const load: LoadOptions = dropUndefined({
    device: args.device ?? deviceOfModel(model.device),
    threads: args.threads,
    samplingThreads: args.sampling_threads,
    maxBatchSize: args.max_batch_size,
    maxNumTokens: args.max_num_tokens,
    maxSeqLen: args.max_seq_len,
    kvBlockSize: args.kv_block_size,
    maxTokensInPagedKvCache: args.max_tokens_in_paged_kv_cache,
    kvCacheBytes: args.kv_cache_bytes,
    kvCacheFreeMemFraction: args.kv_cache_free_gpu_mem_fraction,
    kvCacheDtype: args.kv_cache_dtype,
    enablePrefixCaching: args.enable_kv_cache_reuse,
    schedulingPolicy: args.scheduling_policy,
    speculative: args.speculative_config && speculationOf(args.speculative_config),
    useMmap: args.use_mmap,
    useMlock: args.use_mlock,
  });

  const { httpPort: confPort, rpcPort } = portsOf(server);
  // --port wins over the conf's: the port checked is the one the server will listen on.
  const httpPort = opts.listen?.port ?? confPort;
  if (browserBlockedPorts.has(httpPort)) {
    const text = `${httpPort} is a port browsers refuse to open (the fetch standard's bad ports): the API answers, the chat page will not load there`;
    notes.push(opts.listen?.port !== undefined ? { file: 'command line', keyPath: ['--port'], text } : { file: 'server', keyPath: ['interface', 'port'], text });
  }
  const serverOptions: ServerOptions = {
    ...defaultServerOptions,
    host: opts.listen?.host ?? server.interface?.host ?? defaultServerOptions.host,
    port: httpPort,
    ...servedModelNames(args.served_model_name, defaultServerOptions.modelId),
    apiKey: opts.apiKey,
    authHealth: server.auth?.health ?? defaultServerOptions.authHealth,
    authMetrics: server.auth?.metrics ?? defaultServerOptions.authMetrics,
    maxConcurrency: server.max_concurrency ?? defaultServerOptions.maxConcurrency,
    maxQueue: server.max_queue ?? defaultServerOptions.maxQueue,
    maxConnections: server.max_connections ?? defaultServerOptions.maxConnections,
    maxBodyBytes: server.max_body_bytes ?? defaultServerOptions.maxBodyBytes,
    requestTimeoutMs: server.request_timeout_s !== undefined ? server.request_timeout_s * 1000 : undefined,
    // The seed turns thinking on when the conf does not say.
    enableThinking: args.enable_thinking ?? true,
    reasoningParser: args.reasoning_parser !== undefined && args.reasoning_parser !== false,
    thinkingTokenBudget: args.thinking_token_budget,
    trustRequestChatTemplate: args.trust_request_chat_template ?? defaultServerOptions.trustRequestChatTemplate,
    sampling: samplingOf(args),
    endTokenId: args.end_token_id,
    stopWords: args.stop_words ?? [],
    badWords: args.bad_words ?? [],
    skipSpecialTokens: Array.isArray(args.skip_special_tokens) ? args.skip_special_tokens.length > 0 : (args.skip_special_tokens ?? true),
    skipTokenIds: Array.isArray(args.skip_special_tokens) && args.skip_special_tokens.length > 0 ? args.skip_special_tokens : undefined,
    webUi: server.web_ui ?? defaultServerOptions.webUi,
    accessLog: server.log?.access_log ?? defaultServerOptions.accessLog,
    ...(backend === 'native' && args.lora_modules
      ? { loraModules: args.lora_modules.map((m) => dropUndefined({ name: m.name, path: m.path, baseModelName: m.base_model_name })) }
      : {}),
    ...(backend === 'native' ? dropUndefined({ maxLoraRank: args.max_lora_rank, allowRuntimeLoraUpdating: args.allow_runtime_lora_updating }) : {}),
  };
  return { load, server: serverOptions, rpcPort, notes };
}

function samplingOf(args: InfererArgs): Partial<SamplingParams> {
  const s = args.sampling ?? {};
  return dropUndefined({
    temperature: s.temperature,
    topK: s.top_k,
    topP: s.top_p,
    minP: s.min_p,
    repetitionPenalty: s.repetition_penalty,
    presencePenalty: s.presence_penalty,
    frequencyPenalty: s.frequency_penalty,
    seed: s.seed,
  });
}

function speculationOf(c: SpeculativeConfig): SpeculativeOptions {
  // The draft's path as written; loadDeployment resolves it against the deploy folder.
  if (c.method === 'draft_model') return { method: 'draft_model', numSpeculativeTokens: c.num_speculative_tokens, model: c.model };
  return dropUndefined({ method: 'ngram' as const, numSpeculativeTokens: c.num_speculative_tokens, promptLookupMin: c.prompt_lookup_min, promptLookupMax: c.prompt_lookup_max });
}

function deviceOfModel(device: string | undefined): LoadOptions['device'] {
  if (device === undefined || device === 'auto' || device === 'original') return 'auto';
  if (device === 'cpu') return 'cpu';
  return 'cuda';
}

/** Ports at or above 1024 that browsers and fetch() refuse (the fetch standard's "bad ports"). */
const browserBlockedPorts = new Set([1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080]);

export function portsOf(server: ServerConf): { httpPort: number; rpcPort?: number } {
  const written = server.interface?.port;
  if (written === undefined) return { httpPort: defaultPort };
  if (typeof written === 'number') return { httpPort: written };
  const [http, rpc] = written.split(',').map((p) => Number(p.trim()));
  for (const p of [http, rpc]) {
    if (p !== undefined && (p > 65535 || !Number.isInteger(p))) throw badInput(`interface.port: ${p} is not a port`, 'use a port between 1 and 65535');
  }
  return { httpPort: http, rpcPort: rpc };
}

/** Everything `serve` and `start` need, with every path resolved and checked. */
export interface Deployment {
  deployPath: string;
  inferenceConfFile: string;
  serverConfFile?: string;
  backend: EngineBackend;
  enginePath: string;
  tokenizerPath: string;
  endTokenId?: number;
  padTokenId?: number;
  skipTokenIds?: number[];
  inference: InferenceConf;
  serverConf: ServerConf;
  runtime: RuntimeOptions;
  log: { dir: string; backupCount: number };
  /** One line per accepted-but-ignored key, "file:line:col: key: why". */
  warnings: string[];
  /** "file:line:col" of an inferer_args key of the inference conf (of its nearest written parent where it is not written). */
  argLocation: (key: string) => string;
  /** The sampling defaults taken from generation_config.json (those the conf's sampling did not set), for the log. */
  generationDefaults?: { file: string; applied: string; ignored: string[] };
}

export interface LoadDeploymentInput {
  inferenceConf: string;
  serverConf?: string;
  /** Base of relative paths inside the confs. */
  deployPath: string;
  /** How to show the conf paths in messages (defaults to the paths themselves). */
  shownInference?: string;
  shownServer?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * Checks paths against a folder other than deployPath (start validates the freshly extracted
   * copy before it takes the deploy folder's place). Messages still show deployPath.
   */
  checkRoot?: string;
  /** The inference conf's YAML itself (`grpst serve --model_dir`); inferenceConf then only names it in messages. */
  inferenceText?: string;
  /** Command-line --host / --port: win over the server conf's interface. */
  listen?: Listen;
  /** Command-line --api_key (`grpst serve`): wins over GRPST_API_KEY and the server conf's key. */
  apiKey?: string;
}

export interface Listen {
  host?: string;
  port?: number;
}

export function loadDeployment(input: LoadDeploymentInput): Deployment {
  const env = input.env ?? process.env;
  const shownInference = input.shownInference ?? input.inferenceConf;
  const infFile = input.inferenceText !== undefined ? parseYamlText(input.inferenceText, shownInference) : readYamlFile(input.inferenceConf, shownInference, 'inference conf');
  const inference = validateConf(inferenceConfSchema, infFile, 'inference conf');
  checkDag(inference, infFile);
  let srvFile: YamlFile | undefined;
  let serverConf: ServerConf = {};
  if (input.serverConf) {
    srvFile = readYamlFile(input.serverConf, input.shownServer ?? input.serverConf, 'server conf');
    serverConf = validateConf(serverConfSchema, srvFile, 'server conf');
  }
  const base = input.deployPath;
  // Only paths inside the deploy folder live in the staging copy; absolute ones stay where they are.
  const checkPath = (p: string) => (input.checkRoot && isInside(base, p) ? path.join(input.checkRoot, path.relative(base, p)) : p);
  const shownFrom = (p: string) => (input.checkRoot && isInside(input.checkRoot, p) ? path.join(base, path.relative(input.checkRoot, p)) : p);
  const args = inference.models[0].inferer_args;
  const argsWhere = (key: string) => `${infFile.where(['models', 0, 'inferer_args', key])}: ${key}`;

  // A value that is no path from the deploy folder but a Hugging Face id names the cached model
  // (grpst start and serve pulled it first: conf-models.ts); not cached, the path's own error follows.
  const modelPath = (written: string, where: string) => {
    const resolved = resolveConfPath(base, written, where);
    const cached = !fs.existsSync(checkPath(resolved)) && !path.isAbsolute(written) && parseModelRef(written) !== undefined ? hubModelPath(written, env) : undefined;
    return cached ?? resolved;
  };
  const enginePath = modelPath(args.gpt_model_path, argsWhere('gpt_model_path'));
  const backend = withShownPaths(() => requireEngineFolder(checkPath(enginePath), argsWhere('gpt_model_path')), input.checkRoot, base);
  const tokenizerWritten = modelPath(args.tokenizer_path, argsWhere('tokenizer_path'));
  const tokenizerChecked = withShownPaths(() => requireTokenizerDir(checkPath(tokenizerWritten), argsWhere('tokenizer_path')), input.checkRoot, base);
  const tokenizerPath = input.checkRoot ? shownFrom(tokenizerChecked) : tokenizerChecked;

  const apiKey = input.apiKey ?? readApiKey(serverConf, srvFile, base, checkPath, env);
  if (apiKey && backend === 'trtllm') {
    throw badInput(
      `${input.apiKey !== undefined ? '--api_key' : (srvFile?.where(['api_key']) ?? envVars.apiKey)}: an API key cannot be enforced for a TensorRT-LLM engine (trtllm-serve has no key check)`,
      'remove api_key (and GRPST_API_KEY) and put an authenticating proxy in front, or serve a native engine',
    );
  }
  const runtime = mapConfs(inference, serverConf, { backend, apiKey, listen: input.listen });
  const spec = runtime.load.speculative;
  if (spec?.method === 'draft_model' && backend === 'native') {
    const where = `${argsWhere('speculative_config')}.model`;
    spec.model = modelPath(spec.model, where);
    if (!fs.existsSync(checkPath(spec.model)))
      throw badInput(`${where}: the draft model ${spec.model} does not exist`, 'point it at a Qwen3 checkpoint folder or a grpst engine folder of a smaller model of the same family');
  }
  (runtime.server.loraModules ?? []).forEach((m, i) => {
    const where = `${infFile.where(['models', 0, 'inferer_args', 'lora_modules', i])}: lora_modules[${i}] (${m.name})`;
    m.path = modelPath(m.path, where);
    if (!fs.existsSync(checkPath(m.path)))
      throw badInput(`${where}: the LoRA adapter folder ${m.path} does not exist`, 'point it at a folder holding a PEFT adapter (adapter_config.json and adapter_model.safetensors)');
  });
  const generationDefaults = backend === 'native' && args.generation_config !== 'none' ? applyGenerationConfig(runtime.server, [checkPath(enginePath), tokenizerChecked], shownFrom) : undefined;
  const logDirWritten = serverConf.log?.log_dir ?? './logs';
  const logDir = resolveConfPath(base, logDirWritten, `${srvFile?.where(['log', 'log_dir']) ?? 'server conf'}: log.log_dir`);
  const warnings = runtime.notes.map((n) => {
    const file = n.file === 'inference' ? infFile : n.file === 'server' ? srvFile : undefined;
    const key = n.keyPath.filter((k) => typeof k === 'string').slice(-2).join('.');
    return `${file ? file.where(n.keyPath) : n.file}: ${key}: ${n.text}`;
  });
  return {
    deployPath: base,
    inferenceConfFile: input.inferenceConf,
    serverConfFile: input.serverConf,
    backend,
    enginePath,
    tokenizerPath,
    endTokenId: args.end_token_id,
    padTokenId: args.pad_token_id,
    skipTokenIds: Array.isArray(args.skip_special_tokens) ? args.skip_special_tokens : undefined,
    inference,
    serverConf,
    runtime,
    log: { dir: logDir, backupCount: serverConf.log?.log_backup_count ?? 7 },
    warnings,
    argLocation: (key) => infFile.where(['models', 0, 'inferer_args', key]),
    generationDefaults,
  };
}

/** Fills the sampling defaults the conf leaves out from the checkpoint's generation_config.json (the conf wins). */
function applyGenerationConfig(server: ServerOptions, dirs: string[], shown: (p: string) => string): Deployment['generationDefaults'] {
  const found = readGenerationDefaults(dirs);
  if (!found.file) return undefined;
  const applied = Object.fromEntries(Object.entries(found.sampling).filter(([k]) => server.sampling[k as keyof SamplingParams] === undefined)) as Partial<SamplingParams>;
  server.sampling = { ...applied, ...server.sampling };
  const maxTokens = server.defaultMaxTokens === undefined ? found.maxTokens : undefined;
  if (maxTokens !== undefined) server.defaultMaxTokens = maxTokens;
  return { file: shown(found.file), applied: describeDefaults(applied, maxTokens), ignored: found.ignored };
}

// The dag must run the one declared model, named "<name>-<version>" as in the seed.
function checkDag(inference: InferenceConf, file: YamlFile): void {
  if (!inference.dag) return;
  const declared = inference.models.map((m) => `${m.name}-${m.version}`);
  inference.dag.nodes.forEach((node, i) => {
    if (!declared.includes(node.model)) {
      throw badInput(
        `${file.where(['dag', 'nodes', i, 'model'])}: dag.nodes[${i}].model: "${node.model}" is not a declared model${suggest(node.model, declared).replace('valid keys here', 'declared models')}`,
        `write the model as <name>-<version> of models[], e.g. ${declared[0]}`,
      );
    }
  });
}

function readApiKey(conf: ServerConf, file: YamlFile | undefined, base: string, checkPath: (p: string) => string, env: NodeJS.ProcessEnv): string | undefined {
  const fromEnv = env[envVars.apiKey];
  if (conf.api_key !== undefined && conf.api_key_file !== undefined) {
    throw badInput(`${file?.where(['api_key_file']) ?? 'server conf'}: api_key and api_key_file are both set`, 'keep one of them');
  }
  if (fromEnv !== undefined && fromEnv !== '') {
    if (fromEnv.length < 8) throw badInput(`${envVars.apiKey} is shorter than 8 characters`, 'use a longer, random key');
    return fromEnv;
  }
  if (conf.api_key_file !== undefined) {
    const where = `${file?.where(['api_key_file']) ?? 'server conf'}: api_key_file`;
    const keyFile = resolveConfPath(base, conf.api_key_file, where);
    let key: string;
    try {
      key = fs.readFileSync(checkPath(keyFile), 'utf8').trim();
    } catch {
      throw badInput(`${where}: cannot read ${keyFile}`, 'create the file with the key on one line, readable by the user who starts the server');
    }
    if (key.length < 8) throw badInput(`${where}: the key in ${keyFile} is shorter than 8 characters`, 'use a longer, random key');
    return key;
  }
  return conf.api_key;
}

// Path checks ran against the staging copy; messages name the deploy path the user will see.
function withShownPaths<T>(fn: () => T, root: string | undefined, base: string): T {
  try {
    return fn();
  } catch (err) {
    if (root && err instanceof GrpstError) throw new GrpstError(err.message.replaceAll(root, base), { hint: err.hint?.replaceAll(root, base), exitCode: err.exitCode });
    throw err;
  }
}

function isSet(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

function dropUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
