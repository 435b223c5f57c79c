// The native backend: checkpoint -> (dequantize) -> (calibrate) -> quantize and pack -> engine
// folder -> (calibrate the engine's KV cache) -> (accuracy report), the steps plan.ts decides,
// written in a staging folder and renamed into place only when every step succeeded.
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Tokenizer } from '../../chat/tokenizer.js';
import { objectiveOf } from '../../quant/awq.js';
import type { KvAmax, ModelCalibration } from '../../quant/layer.js';
import {
  ENGINE_FORMAT,
  ENGINE_FORMAT_VERSION,
  MANIFEST_FILE,
  manifestSchema,
  type AccuracyReport,
  type EngineManifest,
} from '../manifest.js';
import type { BuildSettings } from '../options.js';
import type { Reporter } from '../progress.js';
import { explainWriteError, Staging } from '../staging.js';
import { accuracyReport, formatAccuracy, NonFiniteLogits } from './accuracy.js';
import { explainNonFiniteLogits } from './non-finite.js';
import { packWeights, type FallbackExperts, type PackResult } from './pack.js';
import { planNativeBuild, type NativePlan } from './plan.js';
import type { RuntimeBridge } from './runtime-bridge.js';
import { requireDeviceBuilt } from '../../daemon/device-check.js';
import { copyTokenizerFiles, openSource, sourceName, type SourceModel } from './source.js';
import { checkBuildInputs } from '../checks.js';
import { calibrationSequences, heldoutTokens, loadTextSet, type TextSet } from './text-data.js';
import { sha256Files } from '../../util/sha256-files.js';
import { formatBytes } from '../../util/format-bytes.js';
import { kvCacheScales } from './kv-scales.js';
import { DEQUANTIZED_DIR, writeDequantizedCheckpoint } from './dequantized.js';
import { cpuKernelsOverride } from '../../engine/load.js';
import { describeExperts, routerModule, sparseLayerIndices } from '../../model/moe-tensors.js';

export interface NativeBuildContext {
  reporter: Reporter;
  /** The runtime; loaded on first use (calibration, accuracy report). */
  bridge: () => Promise<RuntimeBridge>;
  /** false: int4 without AWQ's search (the round-to-nearest baseline). */
  awqSearch?: boolean;
  version: string;
  signal?: AbortSignal;
  /** Settings the recipe or command line gave explicitly: those this build ignores are noted. */
  given?: ReadonlySet<string>;
}

export interface NativeBuildResult {
  manifest: EngineManifest;
  output: string;
  bytes: number;
  accuracy?: AccuracyReport;
}

/** Rows of calibration activations kept per layer input for AWQ's search. */
const AWQ_SAMPLE_ROWS = 256;

async function sourceIdentity(src: SourceModel, signal: AbortSignal): Promise<Record<string, string>> {
  const files = [join(src.checkpoint.dir, 'config.json'), ...src.checkpoint.files];
  // A merged adapter's files are part of what the engine was made from, under its folder's name.
  const adapterFiles = src.lora ? ['adapter_config.json', 'adapter_model.safetensors'].map((f) => join(src.lora!.path, f)) : [];
  const hashes = await sha256Files([...files, ...adapterFiles], { signal });
  return Object.fromEntries([...files.map((f) => basename(f)), ...adapterFiles.map((f) => `${src.lora!.name}/${basename(f)}`)].map((name, i) => [name, hashes[i]]));
}

type Calibration = ModelCalibration & { set: TextSet; samples: number; tokens: number; ranOn?: string };

async function calibrate(s: BuildSettings, modelDir: string, tokenizer: Tokenizer, ctx: NativeBuildContext, where: string): Promise<Calibration> {
  const set = loadTextSet(s.calib_dataset, 'calibration');
  const sequences = calibrationSequences(set, (t) => tokenizer.encode(t), s.calib_size, s.calib_max_seq_length);
  const tokens = sequences.reduce((a, q) => a + q.length, 0);
  ctx.reporter.phase('calibrate', `${sequences.length} samples, ${tokens} tokens from ${set.name === 'builtin' ? 'the built-in set' : set.name}${where}`);
  const bridge = await ctx.bridge();
  const { layers, head, ranOn } = await bridge.calibrate(modelDir, { sequences, sampleRows: AWQ_SAMPLE_ROWS, onProgress: (f) => ctx.reporter.progress(f), signal: ctx.signal, device: s.device });
  ctx.reporter.done(ranOn ? `on ${ranOn}` : undefined);
  return { layers, head, set, samples: sequences.length, tokens, ranOn };
}

function writeManifest(staging: Staging, manifest: EngineManifest): void {
  const text = `${JSON.stringify(manifestSchema.parse(manifest), null, 2)}\n`;
  staging.account(Buffer.byteLength(text));
  writeFileSync(staging.path(MANIFEST_FILE), text);
}

export async function buildNative(s: BuildSettings, ctx: NativeBuildContext): Promise<NativeBuildResult> {
  const { reporter } = ctx;
  reporter.phase('check', s.model_dir);
  const src = openSource(s.model_dir, s.merge_lora);
  checkBuildInputs(s, src);
  // Calibration and the report run the runtime: a bad GRPST_CPU_KERNELS, or --device cuda on a
  // runtime without the CUDA backend, is refused before any work.
  cpuKernelsOverride();
  await requireDeviceBuilt(s.device, { asks: '--device cuda asks for the GPU', change: 'pass --device cpu or auto' });
  const plan = planNativeBuild(s, src, { awqSearch: ctx.awqSearch, given: ctx.given });
  const tokenizer = Tokenizer.fromDir(src.checkpoint.dir);
  const staging = Staging.begin(s.output_dir, s.force, s.model_dir);
  for (const dir of staging.removedStale) reporter.info(`removed ${dir}, left by an interrupted build`);
  // The checkpoint's files hash on worker threads while the weights are packed.
  const hashing = new AbortController();
  const identityHashed = sourceIdentity(src, hashing.signal);
  identityHashed.catch(() => undefined); // awaited below; a failed build stops it instead
  try {
    const fp8 = src.fp8 ? `, FP8 e4m3 in [${src.fp8.block}] blocks` : '';
    const lora = src.lora ? `, LoRA ${src.lora.name} (rank ${src.lora.rank}, ${src.lora.targets.join(' ')}) merged` : '';
    const experts = src.checkpoint.model.moe ? `, ${describeExperts(src.checkpoint.model)}` : '';
    reporter.done(`${sourceName(src)}: ${src.checkpoint.model.numLayers} layers, hidden ${src.checkpoint.model.hiddenSize}${experts}${src.awq ? `, AWQ int4 group ${src.awq.group}` : fp8}${lora}`);
    for (const note of plan.notes) reporter.info(note);

    // The plan's steps in its order, the list --dry-run prints.
    let floatDir = plan.floatModel === 'checkpoint' ? src.checkpoint.dir : undefined;
    let calib: Calibration | undefined;
    let packed: PackResult | undefined;
    let manifest: EngineManifest | undefined;
    let accuracy: AccuracyReport | undefined;
    for (const step of plan.steps) {
      switch (step.phase) {
        case 'check':
          break; // ran above: the plan is made from what it opened
        case 'dequantize':
          reporter.phase('dequantize', `the ${src.fp8 ? 'FP8 checkpoint' : 'checkpoint'}${src.lora ? ` with ${src.lora.name} merged` : ''} as ${s.dtype}, for calibration and the accuracy report`);
          floatDir = await writeDequantizedCheckpoint(src, s.dtype, staging, reporter, ctx.signal);
          reporter.done();
          break;
        case 'calibrate':
          if (step.on === 'engine') {
            const own = await calibrate(s, staging.tmp, tokenizer, ctx, ', run on the engine');
            setKvScales(s, plan, required(manifest), staging, own.layers.map((l) => ({ k: l.kAmax, v: l.vAmax })), reporter);
          } else {
            calib = await calibrate(s, required(floatDir), tokenizer, ctx, '');
          }
          break;
        case 'quantize':
          packed = await quantize(s, src, plan, calib, staging, ctx);
          break;
        case 'write': {
          reporter.phase('write', 'tokenizer and engine.json');
          const written = required(packed);
          manifest = await engineManifest(s, src, plan, written, calib, await identityHashed, staging, ctx.version);
          writeManifest(staging, manifest);
          // Scales from the float model's calibration are known now; an AWQ checkpoint's come in a later step.
          if (plan.kvScalesFrom === 'float') setKvScales(s, plan, manifest, staging, required(written.kvAmax), reporter);
          reporter.done();
          break;
        }
        case 'verify': {
          const m = required(manifest);
          accuracy = await measureAccuracy(s, src, required(plan.reference), floatDir, tokenizer, staging, ctx);
          m.accuracy = accuracy;
          writeManifest(staging, m);
          reporter.info(formatAccuracy(accuracy));
          break;
        }
      }
    }
    if (plan.noReport) reporter.info(`accuracy report skipped: ${plan.noReport}`);
    rmSync(staging.path(DEQUANTIZED_DIR), { recursive: true, force: true });
    // A signal that came during the last phase still stops the build: nothing is committed.
    ctx.signal?.throwIfAborted();
    staging.commit(s.force);
    return { manifest: required(manifest), output: staging.output, bytes: required(packed).bytes, accuracy };
  } catch (e) {
    hashing.abort();
    staging.abort();
    throw explainWriteError(e, staging.output);
  }
}

/** What an earlier step of the plan made; missing only if the plan put a step before the one it needs. */
function required<T>(v: T | undefined): T {
  if (v === undefined) throw new Error('build plan out of order: a step ran before the one it needs');
  return v;
}

async function quantize(s: BuildSettings, src: SourceModel, plan: NativePlan, calib: Calibration | undefined, staging: Staging, ctx: NativeBuildContext): Promise<PackResult> {
  const { reporter } = ctx;
  const { qformat, format } = plan;
  const from = (src.awq ? ', from the AWQ checkpoint' : src.fp8 ? ', from the FP8 checkpoint dequantized' : '') + (src.lora ? `, ${src.lora.name} merged` : '');
  reporter.phase('quantize', qformat === 'full_prec' ? `copy weights as ${s.dtype}${from}` : `${qformat}${qformat === 'int4_awq' ? ` (block ${plan.awqBlockSize})` : ''}${from}${s.quantize_lm_head ? ', lm_head too' : ''}`);
  // AWQ's scale search (int4_awq from a float model) where --device puts it: most of the build's
  // arithmetic, on the GPU where one is usable; every format's whole-matrix passes in native code.
  const bridge = format ? await ctx.bridge() : undefined;
  const search = bridge && format === 'int4_awq' && calib && (ctx.awqSearch ?? true) ? bridge.awqObjectiveFor?.(s.device) : undefined;
  let packed: PackResult;
  try {
    // Every float weight passes through bf16 decoding once: natively too where the runtime is loaded.
    const kernels = bridge?.quantKernels;
    packed = await packWeights(
      kernels ? { ...src, decodeBf16: kernels.decodeBf16 } : src,
      {
        dtype: s.dtype,
        qformat,
        awqBlockSize: plan.awqBlockSize ?? s.awq_block_size,
        smoothquantAlpha: s.smoothquant_alpha,
        awqSearch: ctx.awqSearch ?? true,
        calibration: calib?.layers,
        awqLoss: search?.objective ?? (bridge ? objectiveOf(bridge.awqLoss) : undefined),
        kernels,
        tp: s.tp_size,
        quantizeLmHead: s.quantize_lm_head,
        headCalibration: calib?.head,
      },
      staging,
      reporter,
      ctx.signal,
    );
  } catch (e) {
    throw explainWriteError(e, staging.output);
  }
  reporter.done(`${formatBytes(packed.bytes)}${search ? `; AWQ scale search on ${search.ranOn}` : ''}`);
  const unrouted = describeFallbackExperts(packed.fallbackExperts, format === 'int4_awq');
  if (unrouted) reporter.info(unrouted);
  return packed;
}

async function engineManifest(
  s: BuildSettings,
  src: SourceModel,
  plan: NativePlan,
  packed: PackResult,
  calib: Calibration | undefined,
  identity: Record<string, string>,
  staging: Staging,
  version: string,
): Promise<EngineManifest> {
  const { qformat } = plan;
  const tokenizerFiles = copyTokenizerFiles(src, (f) => staging.path(f));
  const files: EngineManifest['files'] = Object.fromEntries(packed.files.map((f) => [f.file, { bytes: f.bytes, sha256: f.sha256 }]));
  const tokenizerHashes = await sha256Files(tokenizerFiles.map((f) => staging.path(f)));
  tokenizerFiles.forEach((f, i) => (files[f] = { bytes: statSync(staging.path(f)).size, sha256: tokenizerHashes[i] }));
  const { quantization_config: _dropped, ...modelConfig } = src.checkpoint.hf as Record<string, unknown>;
  return {
    format: ENGINE_FORMAT,
    format_version: ENGINE_FORMAT_VERSION,
    backend: 'native',
    created_by: `grpst ${version}`,
    source: {
      name: sourceName(src),
      sha256: identity,
      ...(src.awq ? { quantized: 'awq' } : src.fp8 ? { quantized: 'fp8' } : {}),
      ...(src.lora ? { merged_lora: { name: src.lora.name, rank: src.lora.rank, targets: src.lora.targets } } : {}),
      ...(src.checkpoint.headless ? { embedding_only: true } : {}),
    },
    model_config: modelConfig,
    dtype: s.dtype,
    quantization: {
      qformat,
      ...(qformat === 'int4_awq' ? { awq_block_size: plan.awqBlockSize } : {}),
      ...(qformat === 'int8_sq' ? { smoothquant_alpha: s.smoothquant_alpha } : {}),
      excluded: excludedLinears(src, qformat, s.quantize_lm_head),
      ...(calib ? { calibration: { dataset: calib.set.name, sha256: calib.set.sha256, samples: calib.samples, tokens: calib.tokens, ...(calib.ranOn ? { device: calib.ranOn } : {}) } } : {}),
    },
    kv_cache: { dtype: s.kv_cache_dtype === 'auto' ? s.dtype : s.kv_cache_dtype },
    limits: { max_batch_size: s.max_batch_size, max_input_len: s.max_input_len, max_seq_len: s.max_seq_len, max_num_tokens: s.max_num_tokens },
    mapping: { tp_size: s.tp_size, pp_size: 1 },
    ranks: packed.ranks,
    tokenizer_files: tokenizerFiles,
    files: Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1))),
  };
}

/** The linears a quantized engine keeps float: lm_head (unless --quantize_lm_head) and a MoE model's routers. */
function excludedLinears(src: SourceModel, qformat: string, quantizeLmHead: boolean): string[] {
  if (qformat === 'full_prec') return [];
  const routers = sparseLayerIndices(src.checkpoint.model).map(routerModule);
  return [...(quantizeLmHead ? [] : ['lm_head']), ...routers];
}

/** Records a quantized KV cache's scales in engine.json and says so (and what the report runs, when there is one). */
function setKvScales(s: BuildSettings, plan: NativePlan, manifest: EngineManifest, staging: Staging, amax: KvAmax[], reporter: Reporter): void {
  const dtype = s.kv_cache_dtype as 'fp8' | 'int8';
  manifest.kv_cache.scales = kvCacheScales(amax, dtype);
  writeManifest(staging, manifest);
  const report = plan.reference ? `; the accuracy report below runs the engine with its ${dtype} KV cache` : '';
  reporter.info(`KV cache: ${dtype} scales for ${manifest.kv_cache.scales.length} layers in engine.json${report}`);
}

async function measureAccuracy(
  s: BuildSettings,
  src: SourceModel,
  ref: NonNullable<NativePlan['reference']>,
  floatDir: string | undefined,
  tokenizer: Tokenizer,
  staging: Staging,
  ctx: NativeBuildContext,
): Promise<AccuracyReport> {
  // No dir: the dequantized copy, which lives in the staging folder; the plan names the checkpoint it came from.
  const referenceDir = ref.dir ?? required(floatDir);
  const referenceName = ref.name;
  const set = loadTextSet(s.eval_dataset, 'heldout');
  const tokens = heldoutTokens(set, (t) => tokenizer.encode(t), s.eval_tokens);
  ctx.reporter.phase('verify', `${tokens.length} held-out tokens against ${referenceName}`);
  const bridge = await ctx.bridge();
  const reference = await bridge.openScorer(referenceDir, s.device);
  try {
    const engine = await bridge.openScorer(staging.tmp, s.device);
    try {
      try {
        const report = await accuracyReport(reference, engine, tokens, referenceName, (f) => ctx.reporter.progress(f), ctx.signal);
        const where = [...new Set([reference.ranOn, engine.ranOn].filter((w): w is string => !!w))];
        ctx.reporter.done(where.length ? `on ${where.join(' and ')}` : undefined);
        return report;
      } catch (e) {
        // A dequantized reference is blamed on the FP8 checkpoint's own tensors.
        throw e instanceof NonFiniteLogits ? explainNonFiniteLogits(e.side, s.reference_dir ?? src.checkpoint.dir, s.qformat) : e;
      }
    } finally {
      await engine.close();
    }
  } finally {
    await reference.close();
  }
}

/**
 * Says which experts had no calibration rows of their own and what they were calibrated on instead
 * (src/quant/expert-stats.ts); undefined when every expert had its own.
 */
function describeFallbackExperts(list: FallbackExperts[], awq: boolean): string | undefined {
  if (!list.length) return undefined;
  const count = list.reduce((a, l) => a + l.experts.length, 0);
  const where = list.map((l) => `layer ${l.layer}: ${l.experts.join(', ')}`).join('; ');
  const none = awq ? 'no calibration token, or none of the sampled ones,' : 'no calibration token';
  return `${count} expert${count === 1 ? '' : 's'} reached by ${none} (${where}): calibrated as if every token were routed to ${count === 1 ? 'it' : 'them'} (gate/up_proj on the layer's MLP input, down_proj on ${count === 1 ? 'its' : 'their'} own SwiGLU of it)`;
}
