// `grpst serve --inference_conf ... [--server_conf ...]`: the server in the foreground (containers,
// systemd). `grpst start` runs the same command as its daemon, with the hidden daemon options.
// `grpst serve --model_dir DIR` serves a folder with every setting at its default, no conf needed.
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { servedKvCacheDtypes, type ServedKvCacheDtype } from '../build/choices.js';
import { envVars } from '../config/paths.js';
import { badInput } from '../util/errors.js';
import { shellQuote } from '../util/shell.js';
import { positiveInt } from './options.js';
import { namesHubModelFrom } from '../hub/conf-paths.js';
import { parseModelRef } from '../hub/hub-env.js';
import { hubModelFolder, pullHubModelsOf } from './hub-model.js';

interface ServeOptions {
  inference_conf?: string;
  model_dir?: string;
  served_model_name?: string;
  device?: 'cpu' | 'cuda' | 'auto';
  host?: string;
  port?: number;
  server_conf?: string;
  deploy_path?: string;
  log_file?: string;
  port_file?: string;
  exit_with_parent?: boolean;
  mpi_np: number;
  max_model_len?: number;
  max_num_seqs?: number;
  max_num_batched_tokens?: number;
  kv_cache_dtype?: ServedKvCacheDtype;
  speculative_config?: Record<string, unknown>;
  lora_modules?: string[];
  api_key?: string;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the server in the foreground (a conf, or --model_dir alone); SIGTERM drains in-flight requests, then exits 0')
    .option('--inference_conf <file>', 'inference conf')
    .option('--model_dir <dir>', 'serve this engine folder (or Hugging Face checkpoint) with default settings, instead of --inference_conf')
    .option('--served_model_name <name>', 'with --model_dir: the model id clients send (default: qwen3; the Hub id when --model_dir is one)', modelName)
    .option('--max_model_len <n>', "with --model_dir: the longest prompt plus answer, in tokens, at most the folder's (default: the engine's max_seq_len, or the checkpoint's positions)", maxModelLen)
    .option('--max_num_seqs <n>', "with --model_dir: the most sequences decoding together, as vLLM's --max-num-seqs (default: the engine's max_batch_size, or 16)", positiveInt('--max_num_seqs'))
    .option('--max_num_batched_tokens <n>', "with --model_dir: the most tokens one step computes (decode rows and prompt chunks), as vLLM's --max-num-batched-tokens (default: the engine's max_num_tokens, or 512)", positiveInt('--max_num_batched_tokens'))
    .addOption(
      new Option('--kv_cache_dtype <dtype>', "with --model_dir: the KV cache's element type, as vLLM's --kv-cache-dtype (default: auto, the engine's or the model's)").choices(servedKvCacheDtypes),
    )
    .addOption(new Option('--device <device>', 'with --model_dir: where the model runs (default: auto)').choices(['cpu', 'cuda', 'auto']))
    .option('--speculative_config <json>', 'with --model_dir: speculative decoding, as vLLM\'s --speculative-config: by prompt lookup, e.g. \'{"method": "ngram", "num_speculative_tokens": 4}\', or by a draft model, e.g. \'{"model": "qwen3-0.6b", "num_speculative_tokens": 4}\'', speculativeConfig)
    .option('--lora_modules <name=path...>', "with --model_dir: PEFT LoRA adapters served beside the model, each under its own model name, as vLLM's --lora-modules (e.g. sql-lora=./adapters/sql)", loraModule)
    .option('--server_conf <file>', 'server conf')
    .option('--host <address>', "address to listen on (default: the server conf's, else 0.0.0.0)")
    .option('--port <n>', "port to listen on, 0 for any free one (default: the server conf's, else 9997)", portArg)
    .option('--api_key <key>', `the key clients must send as Bearer (default: ${envVars.apiKey}, else the server conf's)`)
    .option('--deploy_path <dir>', 'folder that relative conf paths start from (default: the current folder)')
    .option('--mpi_np <n>', 'processes, one per GPU', positiveInt('--mpi_np'), 1)
    .addOption(new Option('--log_file <file>', 'daemon: the log stdout appends to (rotated daily)').hideHelp())
    .addOption(new Option('--port_file <file>', 'daemon: where to write the bound port').hideHelp())
    .addOption(new Option('--exit_with_parent', 'grpst chat --model_dir: stop when the process that started this server is gone').hideHelp())
    // `grpst serve DIR`, as `vllm serve DIR`: answered with the flag to use, not commander's "too many arguments".
    .allowExcessArguments()
    .action(async (opts: ServeOptions, command: Command) => {
      refusePositional(command.args, opts);
      checkConfChoice(opts);
      checkApiKey(opts.api_key);
      await checkSpeculativeConfig(opts.speculative_config);
      const modelDir = opts.model_dir === undefined ? undefined : await hubModelFolder(opts.model_dir, '--model_dir');
      // Hugging Face ids in a conf are pulled here; the daemon grpst start launched finds them cached.
      if (opts.inference_conf !== undefined && process.env.GRPST_DAEMON !== '1') await pullHubModelsOf(opts.inference_conf, opts.deploy_path);
      // Served from a Hub id, the model answers to that id unless told otherwise, as in vLLM.
      const servedModelName = opts.served_model_name ?? (modelDir !== opts.model_dir ? parseModelRef(opts.model_dir!)?.id : undefined);
      const { runServe } = await import('../daemon/serve.js');
      const code = await runServe({
        inferenceConf: opts.inference_conf,
        modelDir,
        servedModelName,
        device: opts.device,
        listen: { host: opts.host, port: opts.port },
        serverConf: opts.server_conf,
        deployPath: opts.deploy_path,
        logFile: opts.log_file,
        portFile: opts.port_file,
        exitWithParent: opts.exit_with_parent === true,
        tpSize: opts.mpi_np,
        maxModelLen: opts.max_model_len,
        maxNumSeqs: opts.max_num_seqs,
        maxNumBatchedTokens: opts.max_num_batched_tokens,
        kvCacheDtype: opts.kv_cache_dtype,
        speculativeConfig: await draftModelFolder(opts.speculative_config),
        loraModules: opts.lora_modules && (await Promise.all(opts.lora_modules.map(adapterFolder))),
        apiKey: opts.api_key,
      });
      process.exit(code);
    });
}

/** One source of the model's settings: a conf file, or a folder served with the defaults. */
function checkConfChoice(opts: ServeOptions): void {
  if (opts.inference_conf && opts.model_dir) {
    throw badInput('--inference_conf and --model_dir are both given', 'pass one: --model_dir serves a folder with default settings, --inference_conf applies a conf');
  }
  if (!opts.inference_conf && !opts.model_dir) {
    throw badInput('grpst serve needs --inference_conf FILE or --model_dir DIR', 'e.g. grpst serve --model_dir /tmp/Qwen3-8B/engine');
  }
  // Each flag's key in the conf (--max_model_len is vLLM's name for the conf's max_seq_len).
  for (const [flag, value, key] of [['--served_model_name', opts.served_model_name, 'served_model_name'], ['--device', opts.device, 'device'], ['--max_model_len', opts.max_model_len, 'max_seq_len'], ['--max_num_seqs', opts.max_num_seqs, 'max_batch_size'], ['--max_num_batched_tokens', opts.max_num_batched_tokens, 'max_num_tokens'], ['--kv_cache_dtype', opts.kv_cache_dtype, 'kv_cache_dtype'], ['--speculative_config', opts.speculative_config, 'speculative_config'], ['--lora_modules', opts.lora_modules, 'lora_modules']] as const) {
    if (value !== undefined && opts.inference_conf) {
      throw badInput(`${flag} goes with --model_dir`, `set ${key} under models[0].inferer_args in ${opts.inference_conf}`);
    }
  }
}

function refusePositional(args: string[], opts: ServeOptions): void {
  if (args.length === 0) return;
  const [first] = args;
  throw badInput(
    args.length === 1 ? `grpst serve takes the folder to serve as --model_dir, not as an argument (got "${first}")` : `grpst serve takes no arguments (got ${args.map((a) => `"${a}"`).join(' ')})`,
    opts.model_dir === undefined && opts.inference_conf === undefined ? `grpst serve --model_dir ${shellQuote(first)}` : 'pass everything as a flag: grpst serve --model_dir DIR or --inference_conf FILE (see grpst serve --help)',
  );
}

// Refused here: an empty name would fail the conf's schema, whose fix names a conf no one wrote.
function modelName(value: string): string {
  if (value === '') throw new InvalidArgumentError('--served_model_name takes the model id clients send, got an empty one');
  return value;
}

function portArg(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n > 65535) throw new InvalidArgumentError(`--port takes a port from 0 to 65535, got "${value}"`);
  return n;
}

/** One --lora_modules entry, name=path; the path is read from the current folder (the generated conf's own folder is elsewhere). */
function loraModule(value: string, previous: string[] | undefined): string[] {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1 || /\s/.test(value.slice(0, eq)))
    throw new InvalidArgumentError(`--lora_modules takes name=path entries (the name requests send as "model", the adapter's folder), got ${JSON.stringify(value)}`);
  // A Hub id (vLLM's --lora-modules sql=someone/qwen3-sql-lora) stays as it is: the action finds it in the cache or pulls it.
  const where = value.slice(eq + 1);
  return [...(previous ?? []), `${value.slice(0, eq)}=${namesHubModelFrom(process.cwd(), where) ? where : path.resolve(where)}`];
}

/** --speculative_config: a JSON object (its fields are checked in the action: checkSpeculativeConfig). */
function speculativeConfig(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new InvalidArgumentError(`--speculative_config takes a JSON object, e.g. '{"method": "ngram", "num_speculative_tokens": 4}', got ${JSON.stringify(value)}`);
  return parsed as Record<string, unknown>;
}

/** Its fields, checked against the conf's schema (loaded here, not at startup: --help stays light). */
async function checkSpeculativeConfig(config: Record<string, unknown> | undefined): Promise<void> {
  if (config === undefined) return;
  const { speculativeConfigSchema } = await import('../config/inference-schema.js');
  const checked = speculativeConfigSchema.safeParse(config);
  if (checked.success) return;
  const why = checked.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
  throw badInput(
    `--speculative_config ${JSON.stringify(config)}: ${why}`,
    `pass e.g. '{"method": "ngram", "num_speculative_tokens": 4}' (prompt_lookup_min / prompt_lookup_max optional) or '{"model": "DRAFT_DIR", "num_speculative_tokens": 4}'`,
  );
}

/**
 * A draft model's path on the command line is read from the current folder (the generated conf's
 * own folder is elsewhere); a Hub id there (vLLM's `"model": "Qwen/Qwen3-0.6B"`) is the cached
 * snapshot, pulled first when needed.
 */
async function draftModelFolder(config: Record<string, unknown> | undefined): Promise<Record<string, unknown> | undefined> {
  if (config === undefined || typeof config.model !== 'string') return config;
  return { ...config, model: path.resolve(await hubModelFolder(config.model, '--speculative_config model')) };
}

// --max_seq_len's floor: a sequence holds the prompt and at least one new token.
function maxModelLen(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 2) throw new InvalidArgumentError(`--max_model_len takes a whole number of tokens, at least 2, got "${value}"`);
  return n;
}

// As GRPST_API_KEY and server.yml's api_key: a short key is guessed. Checked here, not by a
// commander parser, whose message would repeat the key on the terminal.
function checkApiKey(key: string | undefined): void {
  if (key !== undefined && key.length < 8) throw badInput('--api_key is shorter than 8 characters', `use a longer, random key (or set ${envVars.apiKey}, which keeps it out of the process list)`);
}

/** name=path of --lora_modules with a Hub id in place of the path: the cached (or pulled) snapshot. */
async function adapterFolder(entry: string): Promise<string> {
  const eq = entry.indexOf('=');
  const where = entry.slice(eq + 1);
  return `${entry.slice(0, eq)}=${path.resolve(await hubModelFolder(where, `--lora_modules ${entry.slice(0, eq)}`))}`;
}
