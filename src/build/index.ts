// `grpst build` as a library call: resolves nothing itself (settings come resolved), runs the
// chosen backend, and returns the summary the CLI prints (or emits as --json).
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { checkOutput } from './staging.js';
import type { AccuracyReport } from './manifest.js';
import type { BuildSettings } from './options.js';
import type { Reporter } from './progress.js';
import { shellLine } from '../util/shell.js';
import { buildNative } from './native/pipeline.js';
import { checkBuildInputs } from './checks.js';
import type { RuntimeBridge } from './native/runtime-bridge.js';
import { openSource } from './native/source.js';
import { buildTrtllm, plannedTrtllmSteps } from './trtllm/backend.js';
import { flagNames } from './options.js';

export interface BuildSummary {
  ok: true;
  backend: BuildSettings['backend'];
  output_dir: string;
  model_dir: string;
  qformat: string;
  dtype: string;
  kv_cache_dtype: string;
  seconds: number;
  /** Weight bytes (native) or engine bytes (trtllm). */
  bytes: number;
  accuracy?: AccuracyReport;
  /** trtllm: the commands that ran. */
  commands?: string[];
  log?: string;
}

export interface BuildContext {
  reporter: Reporter;
  version: string;
  bridge: () => Promise<RuntimeBridge>;
  signal?: AbortSignal;
  /** false: int4 by round-to-nearest (tests compare AWQ against it). */
  awqSearch?: boolean;
}

export async function runBuild(s: BuildSettings, ctx: BuildContext): Promise<BuildSummary> {
  const start = Date.now();
  const base = { ok: true as const, backend: s.backend, model_dir: resolve(s.model_dir), dtype: s.dtype, kv_cache_dtype: s.kv_cache_dtype };
  if (s.backend === 'trtllm') {
    const r = await buildTrtllm(s, { reporter: ctx.reporter, version: ctx.version, signal: ctx.signal });
    let bytes = 0;
    try {
      bytes = statSync(`${r.output}/rank0.engine`).size;
    } catch {
      /* engines of tp > 1 are rank<N>.engine */
    }
    return { ...base, output_dir: r.output, qformat: s.qformat, seconds: (Date.now() - start) / 1000, bytes, commands: r.steps.map((st) => shellLine(st.argv)), log: r.log };
  }
  const r = await buildNative(s, { reporter: ctx.reporter, bridge: ctx.bridge, version: ctx.version, awqSearch: ctx.awqSearch, signal: ctx.signal });
  return { ...base, output_dir: r.output, qformat: r.manifest.quantization.qformat, seconds: (Date.now() - start) / 1000, bytes: r.bytes, accuracy: r.accuracy };
}

/** What --dry-run prints: shell-quoted commands (trtllm) or the equivalent grpst call and its steps (native). */
export function dryRunPlan(s: BuildSettings): string[] {
  const src = openSource(s.model_dir);
  checkBuildInputs(s, src);
  checkOutput(resolve(s.output_dir), s.force, s.model_dir); // the real build's refusal, not a plan that would fail
  if (s.backend === 'trtllm') {
    return [
      `# TensorRT-LLM build of ${s.model_dir}; grpst runs these in a staging folder beside ${s.output_dir} and renames it at the end`,
      ...plannedTrtllmSteps(s, Boolean(src.awq)).map((st) => shellLine(st.argv)),
    ];
  }
  const argv = ['grpst', 'build'];
  for (const key of flagNames) {
    const v = s[key as keyof BuildSettings];
    if (v === undefined || v === false || key === 'backend' || key.startsWith('trtllm') || key === 'python' || key === 'keep_checkpoint') continue;
    argv.push(v === true ? `--${key}` : `--${key}=${v}`);
  }
  const q = src.awq ? 'int4_awq (pre-quantized AWQ checkpoint, converted as it is)' : src.fp8 ? `${s.qformat} (from the FP8 checkpoint, dequantized from its [${src.fp8.block}] blocks)` : s.qformat;
  const calibrated = !src.awq && (['int4_awq', 'fp8', 'int8_sq'].includes(s.qformat) || s.kv_cache_dtype !== 'auto');
  const head = s.quantize_lm_head ? `lm_head in ${s.qformat}` : `lm_head in ${s.dtype}`;
  const m = src.checkpoint.model;
  return [
    `# native build of ${s.model_dir} (${m.numLayers} layers, hidden ${m.hiddenSize}) into ${s.output_dir}`,
    shellLine(argv),
    `# 1. check the checkpoint and hash its files`,
    ...(calibrated ? [`# 2. calibrate on ${s.calib_dataset ?? 'the built-in calibration text'} (up to ${s.calib_size} samples of ${s.calib_max_seq_length} tokens)`] : []),
    `# ${calibrated ? 3 : 2}. quantize and pack: ${q}, dtype ${s.dtype}, ${head}, kv cache ${s.kv_cache_dtype}`,
    `# ${calibrated ? 4 : 3}. write engine.json and the tokenizer files`,
    src.fp8 && !s.reference_dir && s.qformat === 'full_prec' && s.kv_cache_dtype === 'auto'
      ? `# ${calibrated ? 5 : 4}. no accuracy report: the engine is the FP8 checkpoint dequantized (--reference_dir compares it with another model)`
      : `# ${calibrated ? 5 : 4}. accuracy report against ${src.fp8 && !s.reference_dir ? `the FP8 checkpoint dequantized to ${s.dtype} (a copy inside the staging folder while the build runs)` : 'the unquantized model'} on ${s.eval_dataset ?? 'the built-in held-out text'}`,
  ];
}
