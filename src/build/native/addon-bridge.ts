// The runtime bridge over the native addon's model tools (native/src/addon/model_tools.cpp):
// a model without a scheduler that returns full log-prob rows, or calibration statistics.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadAddon } from '../../engine/addon.js';
import { readEngineFolder } from '../../engine/engine-folder.js';
import { resolveKvCache, type KvCacheChoice } from '../../engine/kv-cache.js';
import type { NativeTensorEntry } from '../../engine/native.js';
import type { ModelConfig } from '../../model/config.js';
import { openCheckpoint } from '../../model/checkpoint.js';
import type { ModelCalibration } from '../../quant/layer.js';
import { finish, merge, type Merged, type RawCapture, type RawLayer } from './calibration-merge.js';
import { objectiveOf, type AwqLossFn, type AwqObjective } from '../../quant/awq.js';
import type { CalibrationRequest, RunDevice, RuntimeBridge, Scorer } from './runtime-bridge.js';
import { cpuKernelsOverride } from '../../engine/load.js';
import { missingTool } from '../../util/errors.js';
import { nativeQuantKernels, type NativeQuantPasses } from './native-quant-kernels.js';

interface NativeModelTool {
  /** "cpu" or "cuda", and the kernels: the CPU's SIMD level or the GPU's name. */
  device: string;
  kernels: string;
  logprobs(tokens: Int32Array): Promise<Float32Array>;
  calibrate(sequences: Int32Array[], sampleRows: number, stride: number, firstToken: number): Promise<{ tokens: number; layers: RawLayer[]; head: RawCapture }>;
  close(): void;
}

interface AwqGpuSearch {
  load(x: Float32Array, n: number, K: number, w: Float32Array, rows: number): void;
  loss(scales: Float32Array | null, group: number): number;
}

interface ModelToolAddon extends Partial<NativeQuantPasses> {
  /** Only in a runtime built with the CUDA backend; its constructor throws where no GPU is usable. */
  AwqGpuSearch?: new () => AwqGpuSearch;
  awqLoss(x: Float32Array, n: number, K: number, w: Float32Array, rows: number, scales: Float32Array | null, group: number): number;
  createModelTool(
    config: ModelConfig,
    /** One table, or one per rank of a tensor-parallel engine (run together on the CPU). */
    tensors: NativeTensorEntry[] | NativeTensorEntry[][],
    options: { threads?: number; cpuKernels?: string; quantization: string; maxSeqLen: number; kvCacheDtype?: string; kvCacheScales?: [number, number][]; device?: RunDevice },
  ): Promise<NativeModelTool>;
}

interface Loaded {
  model: ModelConfig;
  tensors: NativeTensorEntry[] | NativeTensorEntry[][];
  quantization: string;
  /** An engine's fp8 / int8 KV cache (kv_cache.scales), which its scores must include. */
  kv?: KvCacheChoice;
}

function loadModel(dirArg: string, withKvCache: boolean): Loaded {
  const dir = resolve(dirArg);
  if (existsSync(join(dir, 'engine.json'))) {
    const f = readEngineFolder(dir);
    const tensors = f.tpSize > 1 ? f.rankTensors : f.tensors;
    // Calibration runs an fp32 cache, so an engine whose int8 cache has no scales yet (an AWQ
    // checkpoint's, calibrated on the engine precisely to get them) still loads for it.
    if (!withKvCache) return { model: f.model, tensors, quantization: f.quantization };
    const kv = resolveKvCache(undefined, f.manifest.kv_cache, dir);
    return { model: f.model, tensors, quantization: f.quantization, kv: kv.kvCacheScales ? kv : undefined };
  }
  const ck = openCheckpoint(dir);
  const tensors = [...ck.tensors.values()].map((t) => ({ name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
  return { model: ck.model, tensors, quantization: 'none' };
}

/** Where a runtime with the CUDA backend finds no GPU, for --device cuda. */
const noGpu = (message: string) => missingTool(`--device cuda: ${message}`, 'pass --device cpu or auto, or build where a GPU is visible');

/**
 * `withKvCache`: run an engine's quantized KV cache (scoring); calibration runs an fp32 cache on
 * the CPU, bf16 on the GPU.
 */
async function openTool(dir: string, maxSeqLen: number, device: RunDevice, withKvCache = false): Promise<{ tool: NativeModelTool; model: ModelConfig }> {
  const addon = loadAddon() as unknown as ModelToolAddon;
  const m = loadModel(dir, withKvCache);
  const tool = await addon
    .createModelTool(m.model, m.tensors, {
      quantization: m.quantization,
      maxSeqLen,
      device,
      // Checked as every engine load checks it: a bad value is refused naming the variable.
      cpuKernels: cpuKernelsOverride(),
      ...(withKvCache && m.kv ? m.kv : {}),
    })
    .catch((e: unknown) => {
      // A runtime with the CUDA backend on a machine where no GPU is visible.
      if (e instanceof Error && e.message.startsWith('device "cuda" is not available')) throw noGpu(e.message);
      throw e;
    });
  return { tool, model: m.model };
}

const CALIB_BATCH_TOKENS = 4096;

function* batches(sequences: Int32Array[]): Generator<Int32Array[]> {
  let batch: Int32Array[] = [];
  let tokens = 0;
  for (const s of sequences) {
    batch.push(s);
    tokens += s.length;
    if (tokens >= CALIB_BATCH_TOKENS) {
      yield batch;
      batch = [];
      tokens = 0;
    }
  }
  if (batch.length) yield batch;
}

const ranOn = (tool: NativeModelTool): string => (tool.device === 'cpu' ? `CPU (${tool.kernels})` : tool.kernels);

export async function createAddonBridge(): Promise<RuntimeBridge> {
  const addon = loadAddon() as unknown as Partial<ModelToolAddon>;
  if (typeof addon.createModelTool !== 'function') throw new Error('the native addon predates its model tools; rebuild it');
  const native = addon as ModelToolAddon;
  const cpuAwqLoss: AwqLossFn = (x, w, s, group) => {
    if (typeof native.awqLoss !== 'function') throw new Error('the native addon predates its AWQ objective; rebuild it with npm run build:native');
    return native.awqLoss(x.data, x.rows, x.cols, w.data, w.rows, s, group);
  };
  const quantKernels = nativeQuantKernels(native);
  return {
    awqLoss: cpuAwqLoss,
    ...(quantKernels ? { quantKernels } : {}),
    awqObjectiveFor(device) {
      const cpu = { objective: objectiveOf(cpuAwqLoss), ranOn: `CPU (${loadAddon().probe().bestCpuKernels})` };
      if (device === 'cpu' || !native.AwqGpuSearch) return cpu;
      let gpu: AwqGpuSearch;
      try {
        gpu = new native.AwqGpuSearch();
      } catch (e) {
        if (device === 'cuda') throw noGpu((e as Error).message);
        return cpu;
      }
      // A search opens the objective once per linear group: x and w go to the device then, and
      // each of its ~20 candidates costs one quantization pass and one product there.
      const objective: AwqObjective = (x, w, group) => {
        gpu.load(x.data, x.rows, x.cols, w.data, w.rows);
        return (s) => gpu.loss(s, group);
      };
      return { objective, ranOn: 'the GPU' };
    },
    async calibrate(modelDir: string, req: CalibrationRequest): Promise<ModelCalibration & { ranOn?: string }> {
      const longest = Math.max(16, ...req.sequences.map((s) => s.length));
      const total = req.sequences.reduce((a, s) => a + s.length, 0);
      const stride = Math.max(1, Math.floor(total / Math.max(1, req.sampleRows)));
      const { tool } = await openTool(modelDir, longest, req.device ?? 'auto');
      try {
        // Several calls of about CALIB_BATCH_TOKENS tokens each, so progress can be shown.
        let merged: Merged | undefined;
        let done = 0;
        for (const batch of batches(req.sequences)) {
          req.signal?.throwIfAborted();
          const kept = merged ? merged.layers[0].attn_in.rows.length : 0;
          const r = await tool.calibrate(batch, Math.max(0, req.sampleRows - kept), stride, done);
          merged = merge(merged, r.layers, r.head, r.tokens);
          done += r.tokens;
          req.onProgress?.(done / total);
        }
        return { ...finish(merged!), ranOn: ranOn(tool) };
      } finally {
        tool.close();
      }
    },
    async openScorer(dir: string, device: RunDevice = 'auto'): Promise<Scorer> {
      const { tool, model } = await openTool(dir, 1024, device, true);
      return {
        vocabSize: model.vocabSize,
        ranOn: ranOn(tool),
        async logprobs(tokens, onRows) {
          if (tokens.length > 1024) throw new Error(`scorer windows hold at most 1024 tokens (${tokens.length} given)`);
          const rows = await tool.logprobs(tokens);
          onRows(0, rows, tokens.length);
        },
        async close() {
          tool.close();
        },
      };
    },
  };
}
