// `grpst build [RECIPE] --model_dir DIR --output_dir DIR [--qformat ...]`: the seed's build flags,
// a recipe file holding the same keys, unattended-friendly output (plain lines off a terminal,
// --json summary on stdout, distinct exit codes).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { backends, dtypes, kvCacheDtypes, qformats } from '../build/choices.js';
import { errorText, GrpstError, ExitCode } from '../util/errors.js';
import { formatBytes } from '../util/format-bytes.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number.');
  return n;
}

function fraction(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError('expected a number from 0 to 1.');
  return n;
}

export function grpstVersion(): string {
  try {
    const here = dirname(fileURLToPath(import.meta.url));
    return (JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** Commander's parsed flags, recipe-shaped (only the flags actually given), for parseSettings. */
function givenFlags(opts: Record<string, unknown>): Record<string, unknown> {
  const picked: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || k === 'dryRun' || k === 'json') continue;
    picked[k] = v;
  }
  return picked;
}

export function register(program: Command): void {
  program
    .command('build')
    .description('build an engine from a Hugging Face Qwen3 checkpoint (bf16 or quantized: int8_wo, int4_awq, fp8, int8_sq)')
    .argument('[recipe]', 'a recipe .yml holding these settings (flags given here override it)')
    .option('--model_dir <dir>', 'Hugging Face checkpoint folder (config.json, *.safetensors, tokenizer.json)')
    .option('--output_dir <dir>', 'engine folder to write (must not exist, or be empty, unless --force)')
    .addOption(new Option('--dtype <dtype>', 'float type of unquantized weights (default bfloat16)').choices(dtypes))
    .addOption(new Option('--qformat <format>', 'quantization (default full_prec)').choices(qformats))
    .addOption(new Option('--kv_cache_dtype <dtype>', 'KV cache type (default auto: the dtype)').choices(kvCacheDtypes))
    .option('--awq_block_size <n>', 'int4_awq: weights per scale group along the input dimension (default 128)', positiveInt)
    .option('--calib_size <n>', 'calibration samples, at most (default 512)', positiveInt)
    .option('--calib_max_seq_length <n>', 'tokens per calibration sample, at most (default 512)', positiveInt)
    .option('--calib_dataset <file>', 'calibration text: .txt (passages separated by blank lines) or .jsonl ({"text": ...} per line)')
    .option('--smoothquant_alpha <a>', 'int8_sq: SmoothQuant migration strength (default 0.5)', fraction)
    .option('--quantize_lm_head', 'quantize lm_head in the --qformat too (default: kept in --dtype; faster decode, slightly less accurate)')
    .option('--max_batch_size <n>', 'engine limit: requests per step (default 16)', positiveInt)
    .option('--max_input_len <n>', 'engine limit: prompt tokens (default 32256)', positiveInt)
    .option('--max_seq_len <n>', 'engine limit: prompt + output tokens (default 32768)', positiveInt)
    .option('--max_num_tokens <n>', 'engine limit: tokens per step (default 32256)', positiveInt)
    .option('--tp_size <n>', 'tensor parallel ranks: one weight shard per GPU (default 1)', positiveInt)
    .addOption(new Option('--backend <backend>', 'native (default) or trtllm (TensorRT-LLM\'s own tools)').choices(backends))
    .option('--trtllm_dir <dir>', 'TensorRT-LLM source checkout (its examples/); also TRTLLM_DIR')
    .option('--python <path>', 'Python with tensorrt_llm installed; also TRTLLM_PYTHON (default python3)')
    .option('--trtllm_build <path>', 'trtllm-build executable; also TRTLLM_BUILD (default: beside that Python, then PATH)')
    .option('--keep_checkpoint', 'trtllm: keep the intermediate tllm_checkpoint folder')
    .option('--merge_lora <dir>', 'a PEFT LoRA adapter folder merged into the weights before quantizing: the engine is the adapted model (native backend)')
    .option('--reference_dir <dir>', 'unquantized checkpoint for the accuracy report (default: --model_dir when unquantized)')
    .option('--eval_dataset <file>', 'held-out text for the accuracy report (default: the built-in set)')
    .option('--eval_tokens <n>', 'held-out tokens the accuracy report scores, at most what the held-out text holds (default 1024; the built-in text has 606)', positiveInt)
    .addOption(new Option('--device <device>', 'where calibration and the accuracy report run the model: auto (default: the GPU where the runtime has the CUDA backend and one is visible), cpu or cuda').choices(['auto', 'cpu', 'cuda']))
    .option('--force', 'replace an existing --output_dir that holds an engine (engine.json); an empty one needs no --force')
    .option('--dry-run', 'print the commands (trtllm) or steps (native) without running them')
    .option('--json', 'print a JSON summary on stdout (progress goes to stderr)')
    .action(async (recipePath: string | undefined, opts: Record<string, unknown>) => {
      const json = opts.json === true;
      try {
        // The build pipeline's modules load here, not when the CLI starts.
        const [{ dryRunPlan, runBuild }, { checkRecipePaths, loadRecipe }, { parseSettings, resolveSettings }, { createReporter }, { loadRuntimeBridge }] = await Promise.all([
          import('../build/index.js'),
          import('../build/recipe.js'),
          import('../build/options.js'),
          import('../build/progress.js'),
          import('../build/native/runtime-loader.js'),
        ]);
        const recipe = recipePath ? loadRecipe(recipePath).settings : {};
        const flags = parseSettings(givenFlags(opts), 'command line');
        if (recipePath) checkRecipePaths(recipePath, recipe, flags);
        const settings = resolveSettings(recipe, flags);
        // A format's own knob given with another format does nothing: the build says so, once it
        // has read the checkpoint (an AWQ one imposes its own format and group).
        const given = new Set(Object.entries({ ...recipe, ...flags }).filter(([, v]) => v !== undefined).map(([k]) => k));
        // A Hugging Face id as --model_dir / --reference_dir / --merge_lora: the cached snapshot, pulled first if
        // needed (a dry run downloads nothing: it needs the model cached).
        const reporter = createReporter({ stream: json ? process.stderr : process.stdout });
        const { namesHubModel, resolveModelSource } = await import('../hub/model-source.js');
        for (const key of ['model_dir', 'reference_dir', 'merge_lora'] as const) {
          const value = settings[key];
          if (value === undefined || !namesHubModel(value)) continue;
          settings[key] = await resolveModelSource(value, { flag: `--${key}`, userAgent: `grpst/${grpstVersion()}`, reporter: opts.dryRun ? undefined : reporter });
        }
        if (opts.dryRun) {
          const { lines, steps } = dryRunPlan(settings, given);
          process.stdout.write(json ? `${JSON.stringify({ ok: true, dry_run: true, backend: settings.backend, steps, plan: lines }, null, 2)}\n` : `${lines.join('\n')}\n`);
          return;
        }
        const abort = new AbortController();
        const onSignal = (sig: NodeJS.Signals) => {
          if (abort.signal.aborted) process.exit(130);
          reporter.info(`${sig}: stopping; the partial build is removed`);
          abort.abort(new GrpstError(`build interrupted by ${sig}`, { exitCode: ExitCode.failed }));
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        try {
          const summary = await runBuild(settings, { reporter, version: grpstVersion(), bridge: loadRuntimeBridge, signal: abort.signal, given }).catch((e) => {
            reporter.fail();
            throw abort.signal.aborted ? abort.signal.reason : e;
          });
          if (json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
          else process.stdout.write(`engine written to ${summary.output_dir} (${formatBytes(summary.bytes)}, ${summary.seconds.toFixed(1)} s)\n`);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      } catch (e) {
        if (json) {
          const g = e instanceof GrpstError ? e : undefined;
          process.stdout.write(`${JSON.stringify({ ok: false, error: errorText(e), exit_code: g?.exitCode ?? ExitCode.failed }, null, 2)}\n`);
        }
        throw e;
      }
    });
}
