// The steps of a native build, decided once from the settings and the checkpoint. The pipeline runs
// exactly these steps in this order and --dry-run prints them, so what a dry run promises is what
// the build does: the format and block size an AutoAWQ checkpoint imposes, whether an FP8
// checkpoint is dequantized first, where calibration runs (the float model, or the engine itself
// when there is none) and whether an accuracy report can be made at all.
import { basename } from 'node:path';
import { needsCalibration, type LayerFormat } from '../../quant/layer.js';
import type { BuildSettings, QFormat } from '../options.js';
import { layerFormat } from './pack.js';
import { sourceName, type SourceModel } from './source.js';
import { describeExperts, sparseLayerIndices } from '../../model/moe-tensors.js';

/** Phase names, as the progress output and the --json summary's `steps` show them. */
export type NativePhase = 'check' | 'dequantize' | 'calibrate' | 'quantize' | 'write' | 'verify';

export interface PlanStep {
  phase: NativePhase;
  /** calibrate only: the float model before quantizing, or the written engine (an AWQ checkpoint has no float model). */
  on?: 'float' | 'engine';
  /** What the step does, as the dry run prints it: starts with the phase's name. */
  text: string;
}

export interface NativePlan {
  /** The engine's weight format: an AWQ checkpoint's own int4_awq whatever --qformat says. */
  qformat: QFormat;
  /** int4_awq's group along the input: the AWQ checkpoint's group_size, else --awq_block_size. */
  awqBlockSize?: number;
  /** The layers' quantizer (undefined: float weights, or an AWQ checkpoint converted as it is). */
  format?: LayerFormat;
  /** The float model that calibration and the report run on: the checkpoint, its dequantized copy, or none. */
  floatModel?: 'checkpoint' | 'dequantized';
  /** Where a quantized KV cache's scales come from: the float model's calibration, or the engine's own. */
  kvScalesFrom?: 'float' | 'engine';
  /** The accuracy report's reference, when there is one; `dir` undefined means the dequantized copy. */
  reference?: { dir?: string; name: string };
  /** Why there is no accuracy report, when there is none. */
  noReport?: string;
  steps: PlanStep[];
  /** Settings given that this build does not use, said rather than silently dropped. */
  notes: string[];
}

export interface PlanOptions {
  /** false: int4 by round-to-nearest, which needs no calibration (tests measure AWQ against it). */
  awqSearch?: boolean;
  /** Keys the recipe or the command line set explicitly (for the notes on ignored ones). */
  given?: ReadonlySet<string>;
}

export function planNativeBuild(s: BuildSettings, src: SourceModel, opts: PlanOptions = {}): NativePlan {
  const qformat: QFormat = src.awq ? 'int4_awq' : s.qformat;
  const awqBlockSize = qformat === 'int4_awq' ? (src.awq?.group ?? s.awq_block_size) : undefined;
  const format = src.awq ? undefined : layerFormat(qformat, opts.awqSearch ?? true);
  const wantKv = s.kv_cache_dtype !== 'auto';
  const weightsCalibrated = format !== undefined && needsCalibration(format);
  // An FP8 checkpoint's float copy is written only when something runs it: calibration, or the
  // report of a quantized format (or cache) that no --reference_dir replaces. A full_prec engine
  // with the model's own KV cache is the float model itself: nothing to calibrate or compare.
  // A merged LoRA adapter is the same: the adapted float model exists only as the build writes it.
  const noFloatOnDisk = Boolean(src.fp8) || Boolean(src.lora);
  const dequantize = noFloatOnDisk && (wantKv || weightsCalibrated || (format !== undefined && !s.reference_dir));
  const floatModel = src.awq ? undefined : noFloatOnDisk ? (dequantize ? 'dequantized' : undefined) : 'checkpoint';
  const calibrateFloat = floatModel !== undefined && (weightsCalibrated || wantKv);
  // A float model always yields the KV cache's statistics while calibrating; only an AWQ
  // checkpoint's cache is calibrated on the engine it becomes, once that engine is written.
  const calibrateEngine = wantKv && !calibrateFloat;

  const name = sourceName(src);
  const merged = src.lora ? ` with ${src.lora.name} merged` : '';
  const reference = s.reference_dir
    ? { dir: s.reference_dir, name: basename(s.reference_dir) }
    : floatModel === 'checkpoint'
      ? { dir: src.checkpoint.dir, name }
      : floatModel === 'dequantized'
        ? { name: `${name}${merged} (${src.fp8 ? 'dequantized' : 'written'} to ${s.dtype})` }
        : undefined;
  const noReport = reference
    ? undefined
    : src.fp8
      ? `the engine is the FP8 checkpoint dequantized${merged}, the float model itself; pass --reference_dir with the unquantized model to compare`
      : src.lora
        ? `the engine is the checkpoint${merged}, the float model itself`
        : 'the checkpoint came quantized; pass --reference_dir with the unquantized model to compare';

  const calibText = `${s.calib_dataset ?? 'the built-in calibration text'} (up to ${s.calib_size} samples of ${s.calib_max_seq_length} tokens)`;
  const kind =
    (src.awq ? `AutoAWQ int4, group ${src.awq.group}` : src.fp8 ? `block-scaled FP8, [${src.fp8.block}] blocks` : 'unquantized') +
    (src.checkpoint.model.moe ? `; ${describeExperts(src.checkpoint.model)}` : '') +
    (src.lora ? `; the LoRA adapter ${src.lora.name}, rank ${src.lora.rank} on ${src.lora.targets.join(' ')}` : '');
  const from = src.awq ? ' (the AWQ checkpoint converted as it is)' : src.fp8 ? ` (from the FP8 checkpoint dequantized${merged})` : src.lora ? ` (${src.lora.name} merged: W + scale * B A)` : '';
  const weights = qformat === 'int4_awq' ? `int4_awq, block ${awqBlockSize}` : qformat;
  const head = s.quantize_lm_head ? `lm_head in ${qformat}` : `lm_head in ${s.dtype}`;
  // Where calibration and the report run, when the build was told (auto decides at run time).
  const device = s.device;
  const where = device === 'cuda' ? ', on the GPU' : device === 'cpu' ? ', on the CPU' : '';
  const calibrated = [weightsCalibrated ? `${qformat} weights` : '', wantKv ? `the ${s.kv_cache_dtype} KV cache` : ''].filter(Boolean).join(' and ');

  const steps: PlanStep[] = [{ phase: 'check', text: `check the checkpoint (${kind}) and hash its files` }];
  if (dequantize)
    steps.push({
      phase: 'dequantize',
      text: src.fp8
        ? `dequantize the FP8 checkpoint${merged} to a ${s.dtype} copy inside the staging folder, for calibration and the accuracy report`
        : `write the checkpoint${merged} as a ${s.dtype} copy inside the staging folder, for calibration and the accuracy report`,
    });
  if (calibrateFloat) steps.push({ phase: 'calibrate', on: 'float', text: `calibrate on ${calibText}: ${calibrated}, running ${floatModel === 'dequantized' ? `the ${src.fp8 ? 'dequantized' : 'merged'} copy` : 'the checkpoint'}${where}` });
  steps.push({ phase: 'quantize', text: `quantize and pack: ${weights}${from}, dtype ${s.dtype}${expertsText(src, qformat, weights, s.dtype)}, ${head}${s.tp_size > 1 ? `, ${s.tp_size} rank shards` : ''}` });
  steps.push({ phase: 'write', text: `write engine.json (kv cache ${s.kv_cache_dtype === 'auto' ? s.dtype : s.kv_cache_dtype}) and the tokenizer files` });
  if (calibrateEngine) steps.push({ phase: 'calibrate', on: 'engine', text: `calibrate on ${calibText}: the ${s.kv_cache_dtype} KV cache, running the engine itself (an AWQ checkpoint has no float model)${where}` });
  if (reference) steps.push({ phase: 'verify', text: `verify: accuracy report against ${reference.name} on ${s.eval_dataset ?? 'the built-in held-out text'} (up to ${s.eval_tokens} tokens)${wantKv ? `, the engine running its ${s.kv_cache_dtype} KV cache` : ''}${where}` });

  const notes = ignoredSettings(s, opts.given ?? new Set(), { qformat, awqGroup: src.awq?.group, calibrates: calibrateFloat || calibrateEngine, preQuantized: Boolean(src.awq) });
  const kvScalesFrom = wantKv ? (calibrateEngine ? 'engine' : 'float') : undefined;
  return { qformat, awqBlockSize, format, floatModel, kvScalesFrom, reference, noReport, steps, notes };
}

/** A Qwen3-MoE's experts and routers in the quantize step ("" for a dense model). */
function expertsText(src: SourceModel, qformat: QFormat, weights: string, dtype: string): string {
  const m = src.checkpoint.model;
  if (!m.moe) return '';
  const layers = sparseLayerIndices(m).length;
  const calibrated = qformat !== 'full_prec' && needsCalibration(qformat) ? ', each expert calibrated on the tokens routed to it' : '';
  const experts = src.awq ? "the experts' projections as the AWQ checkpoint stores them" : `the experts' projections in ${weights === 'full_prec' ? dtype : weights}${calibrated}`;
  return `; ${m.moe.numExperts} experts in each of ${layers} sparse layers: ${experts}, the routers unquantized in ${dtype}`;
}

/**
 * Notes on settings that a build of this kind does not use (a format's own knob given with another
 * format, a calibration file where nothing is calibrated), for either backend.
 */
export function ignoredSettings(
  s: BuildSettings,
  given: ReadonlySet<string>,
  b: { qformat: QFormat; awqGroup?: number; calibrates: boolean; preQuantized: boolean },
): string[] {
  const notes: string[] = [];
  if (given.has('awq_block_size')) {
    if (b.awqGroup !== undefined && s.awq_block_size !== b.awqGroup) notes.push(`note: --awq_block_size ${s.awq_block_size} is ignored: the AWQ checkpoint's own group size, ${b.awqGroup}, is used`);
    else if (b.qformat !== 'int4_awq') notes.push(`note: --awq_block_size applies to int4_awq only; ignored for ${b.qformat}`);
  }
  if (given.has('smoothquant_alpha') && b.qformat !== 'int8_sq') notes.push(`note: --smoothquant_alpha applies to int8_sq only; ignored for ${b.qformat}`);
  if (given.has('calib_dataset') && !b.calibrates) {
    const what = b.preQuantized ? 'a pre-quantized AWQ checkpoint' : b.qformat;
    const cache = s.kv_cache_dtype === 'auto' ? " with the model's own KV cache dtype" : '';
    notes.push(`note: --calib_dataset is used to calibrate int4_awq, fp8, int8_sq and fp8 / int8 KV caches; ignored for ${what}${cache}`);
  }
  return notes;
}
