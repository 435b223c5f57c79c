// --backend trtllm: the seed's TensorRT-LLM commands, run in a staging folder beside the output.
// The intermediate TensorRT-LLM checkpoint goes to <staging>/tllm_checkpoint, the engine to the
// staging folder itself; build.log collects every line the tools print. For a Qwen3-MoE checkpoint the
// TensorRT-LLM checkpoint's expert routing is set to the source's before trtllm-build (moe-routing.ts).
import { copyFileSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { GrpstError } from '../../util/errors.js';
import { ENGINE_FORMAT, ENGINE_FORMAT_VERSION } from '../manifest.js';
import type { BuildSettings } from '../options.js';
import type { Reporter } from '../progress.js';
import { Staging } from '../staging.js';
import { openSource, sourceName } from '../native/source.js';
import { checkBuildInputs } from '../checks.js';
import { loadTextSet } from '../native/text-data.js';
import { needsQuantizeScript, trtllmSteps, type TrtllmDirs, type TrtllmStep } from './commands.js';
import { ignoredSettings } from '../native/plan.js';
import { locateTools, plannedTools } from './locate.js';
import { runStep } from './run-step.js';
import { applyMoeRouting } from './moe-routing.js';

export const LOG_FILE = 'build.log';
export const CHECKPOINT_DIR = 'tllm_checkpoint';
/** --calib_dataset as the local dataset folder quantize.py reads (see TrtllmDirs.calib). */
export const CALIB_DIR = 'calib_dataset';
/** The build record of a TensorRT-LLM engine folder: engine.json with backend "trtllm" (no tensor table). */
export const RECORD_FILE = 'engine.json';

export interface TrtllmBuildResult {
  output: string;
  steps: TrtllmStep[];
  log: string;
}

/** The commands a dry run prints: paths as they will be once the build is in place. */
export function plannedTrtllmSteps(s: BuildSettings, preQuantized: boolean, moe = false, env: NodeJS.ProcessEnv = process.env): TrtllmStep[] {
  const dirs: TrtllmDirs = { checkpoint: join(s.output_dir, CHECKPOINT_DIR), engine: s.output_dir, calib: join(s.output_dir, CALIB_DIR) };
  return trtllmSteps(s, plannedTools(s, env), dirs, preQuantized, moe);
}

/** Settings a TensorRT-LLM build ignores: its scripts take an AWQ checkpoint's format and group as they are, and only quantize.py calibrates. */
export function trtllmNotes(s: BuildSettings, given: ReadonlySet<string>, awqGroup: number | undefined): string[] {
  const preQuantized = awqGroup !== undefined;
  return ignoredSettings(s, given, { qformat: preQuantized ? 'int4_awq' : s.qformat, awqGroup, calibrates: needsQuantizeScript(s, preQuantized), preQuantized });
}

export async function buildTrtllm(
  s: BuildSettings,
  ctx: { reporter: Reporter; version: string; signal?: AbortSignal; env?: NodeJS.ProcessEnv; given?: ReadonlySet<string> },
): Promise<TrtllmBuildResult> {
  const { reporter } = ctx;
  const env = ctx.env ?? process.env;
  reporter.phase('check', s.model_dir);
  const src = openSource(s.model_dir);
  const preQuantized = Boolean(src.awq);
  checkBuildInputs(s, src);
  const quantize = needsQuantizeScript(s, preQuantized);
  const tools = locateTools(s, { convert: !quantize, quantize }, env);
  const staging = Staging.begin(s.output_dir, s.force, s.model_dir);
  for (const dir of staging.removedStale) reporter.info(`removed ${dir}, left by an interrupted build`);
  const log = staging.path(LOG_FILE);
  writeFileSync(log, `# grpst ${ctx.version}: TensorRT-LLM build of ${src.checkpoint.dir}\n`);
  reporter.done(`TensorRT-LLM at ${tools.trtllmDir}`);
  for (const note of trtllmNotes(s, ctx.given ?? new Set(), src.awq?.group)) reporter.info(note);
  const moe = src.checkpoint.model.moe;
  const steps = trtllmSteps(s, tools, { checkpoint: staging.path(CHECKPOINT_DIR), engine: staging.tmp, calib: staging.path(CALIB_DIR) }, preQuantized, Boolean(moe));
  try {
    // quantize.py is the only step that calibrates (commands.ts passes it --calib_dataset).
    if (s.calib_dataset && quantize) writeCalibDataset(s.calib_dataset, staging.path(CALIB_DIR));
    for (const step of steps) {
      if (step.name === 'engine' && moe) {
        const note = applyMoeRouting(staging.path(CHECKPOINT_DIR), moe.normTopkProb, log);
        if (note) reporter.info(note);
      }
      reporter.phase(step.name, basename(step.argv[1] ?? step.argv[0]));
      await runStep(step, { log, reporter, signal: ctx.signal, env: { ...env } });
      reporter.done();
    }
    reporter.phase('write', 'tokenizer and engine.json');
    if (!s.keep_checkpoint) rmSync(staging.path(CHECKPOINT_DIR), { recursive: true, force: true });
    rmSync(staging.path(CALIB_DIR), { recursive: true, force: true });
    for (const f of src.tokenizerFiles) copyFileSync(join(src.checkpoint.dir, f), staging.path(f));
    const manifest = {
      format: ENGINE_FORMAT,
      format_version: ENGINE_FORMAT_VERSION,
      backend: 'trtllm',
      created_by: `grpst ${ctx.version}`,
      source: { name: sourceName(src), ...(preQuantized ? { quantized: 'awq' } : {}) },
      dtype: s.dtype,
      quantization: { qformat: preQuantized ? 'int4_awq' : s.qformat, ...(s.qformat === 'int4_awq' && !preQuantized ? { awq_block_size: s.awq_block_size } : {}) },
      kv_cache: { dtype: s.kv_cache_dtype === 'auto' ? s.dtype : s.kv_cache_dtype },
      limits: { max_batch_size: s.max_batch_size, max_input_len: s.max_input_len, max_seq_len: s.max_seq_len, max_num_tokens: s.max_num_tokens },
      mapping: { tp_size: s.tp_size, pp_size: 1 },
      tokenizer_files: src.tokenizerFiles,
      commands: steps.map((st) => st.argv.map((a) => a.split(staging.tmp).join(staging.output))),
    };
    writeFileSync(staging.path(RECORD_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    staging.commit(s.force);
    reporter.done();
    return { output: staging.output, steps, log: join(staging.output, LOG_FILE) };
  } catch (e) {
    // The log of a failed build outlives the staging folder: it is what the person needs next.
    const kept = join(tmpdir(), `grpst-build-${basename(staging.output)}-${process.pid}.log`);
    try {
      if (statSync(log).isFile()) copyFileSync(log, kept);
    } catch {
      /* no log yet */
    }
    staging.abort();
    if (e instanceof GrpstError && e.hint?.startsWith('see the whole log')) {
      throw new GrpstError(e.message, { exitCode: e.exitCode, hint: `see the whole log in ${kept}`, cause: e.cause });
    }
    throw e;
  }
}

/**
 * The passages of a .txt / .jsonl calibration file (grpst's reading of it, as for native builds) as
 * a dataset folder that Hugging Face `datasets` loads with split "train" and a "text" column, which
 * is what quantize.py's calibration loader asks of a local dataset.
 */
function writeCalibDataset(file: string, dir: string): void {
  const set = loadTextSet(file, 'calibration');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'train.jsonl'), set.passages.map((text) => `${JSON.stringify({ text })}\n`).join(''));
}
