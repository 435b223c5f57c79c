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
import { buildTrtllm, plannedTrtllmSteps, trtllmNotes } from './trtllm/backend.js';
import { routingPlanNote } from './trtllm/moe-routing.js';
import { flagNames } from './options.js';
import { planNativeBuild, type NativePlan } from './native/plan.js';
import { describeExperts } from '../model/moe-tensors.js';

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
  /** The phases that ran, in order: what --dry-run's `steps` lists for the same settings. */
  steps: string[];
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
  /** Settings the recipe or command line gave explicitly: those the build ignores are noted. */
  given?: ReadonlySet<string>;
}

/** Forwards to the build's reporter and keeps the name of every phase started. */
function recordPhases(reporter: Reporter, steps: string[]): Reporter {
  return {
    phase: (name, detail) => {
      steps.push(name);
      reporter.phase(name, detail);
    },
    progress: (f, d) => reporter.progress(f, d),
    info: (line) => reporter.info(line),
    done: (d) => reporter.done(d),
    fail: () => reporter.fail(),
  };
}

export async function runBuild(s: BuildSettings, ctx: BuildContext): Promise<BuildSummary> {
  const start = Date.now();
  const base = { ok: true as const, backend: s.backend, model_dir: resolve(s.model_dir), dtype: s.dtype, kv_cache_dtype: s.kv_cache_dtype };
  const steps: string[] = [];
  const reporter = recordPhases(ctx.reporter, steps);
  if (s.backend === 'trtllm') {
    const r = await buildTrtllm(s, { reporter, version: ctx.version, signal: ctx.signal, given: ctx.given });
    let bytes = 0;
    try {
      bytes = statSync(`${r.output}/rank0.engine`).size;
    } catch {
      /* engines of tp > 1 are rank<N>.engine */
    }
    return { ...base, output_dir: r.output, qformat: s.qformat, seconds: (Date.now() - start) / 1000, bytes, steps, commands: r.steps.map((st) => shellLine(st.argv)), log: r.log };
  }
  const r = await buildNative(s, { reporter, bridge: ctx.bridge, version: ctx.version, awqSearch: ctx.awqSearch, signal: ctx.signal, given: ctx.given });
  return { ...base, output_dir: r.output, qformat: r.manifest.quantization.qformat, seconds: (Date.now() - start) / 1000, bytes: r.bytes, steps, accuracy: r.accuracy };
}

export interface DryRun {
  /** The lines --dry-run prints. */
  lines: string[];
  /** The phases the build would run, in order (the summary's `steps` of the real build). */
  steps: string[];
}

/** What --dry-run prints: shell-quoted commands (trtllm) or the equivalent grpst call and its steps (native). */
export function dryRunPlan(s: BuildSettings, given: ReadonlySet<string> = new Set()): DryRun {
  const src = openSource(s.model_dir, s.backend === 'native' ? s.merge_lora : undefined);
  checkBuildInputs(s, src);
  checkOutput(resolve(s.output_dir), s.force, s.model_dir); // the real build's refusal, not a plan that would fail
  if (s.backend === 'trtllm') {
    const planned = plannedTrtllmSteps(s, Boolean(src.awq), Boolean(src.checkpoint.model.moe));
    const moe = src.checkpoint.model.moe;
    const notes = [...trtllmNotes(s, given, src.awq?.group), ...(moe ? [routingPlanNote(moe.normTopkProb)] : [])];
    return {
      lines: [
        `# TensorRT-LLM build of ${s.model_dir}; grpst runs these in a staging folder beside ${s.output_dir} and renames it at the end`,
        ...notes.map((n) => `# ${n}`),
        ...planned.map((st) => shellLine(st.argv)),
      ],
      steps: ['check', ...planned.map((st) => st.name), 'write'],
    };
  }
  const plan = planNativeBuild(s, src, { given });
  const m = src.checkpoint.model;
  return {
    lines: [
      `# native build of ${s.model_dir} (${m.numLayers} layers, hidden ${m.hiddenSize}${m.moe ? `; ${describeExperts(m)}` : ''}) into ${s.output_dir}`,
      shellLine(equivalentCommand(s, plan)),
      ...plan.notes.map((n) => `# ${n}`),
      ...plan.steps.map((st, i) => `# ${i + 1}. ${st.text}`),
      ...(plan.noReport ? [`# no accuracy report: ${plan.noReport}`] : []),
    ],
    steps: plan.steps.map((st) => st.phase),
  };
}

/**
 * The grpst call that builds this plan, with what the build takes from the checkpoint (an AWQ
 * checkpoint's format and group) and without the knobs it ignores (another format's, calibration's
 * where nothing is calibrated, the report's where there is none), so running it changes nothing.
 */
function equivalentCommand(s: BuildSettings, plan: NativePlan): string[] {
  const calibrates = plan.steps.some((st) => st.phase === 'calibrate');
  const effective: Partial<Record<string, unknown>> = { ...s, qformat: plan.qformat, awq_block_size: plan.awqBlockSize };
  const unused = new Set<string>(['backend', 'trtllm_dir', 'trtllm_build', 'python', 'keep_checkpoint']);
  if (plan.qformat !== 'int8_sq') unused.add('smoothquant_alpha');
  if (!calibrates) for (const k of ['calib_size', 'calib_max_seq_length', 'calib_dataset']) unused.add(k);
  if (!plan.reference) for (const k of ['eval_dataset', 'eval_tokens']) unused.add(k);
  if (!calibrates && !plan.reference) unused.add('device');
  const argv = ['grpst', 'build'];
  for (const key of flagNames) {
    const v = effective[key];
    if (v === undefined || v === false || unused.has(key)) continue;
    argv.push(v === true ? `--${key}` : `--${key}=${v}`);
  }
  return argv;
}
