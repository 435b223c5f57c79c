// The runtime bridge over the native addon's model tools (native/src/addon/model_tools.cpp):
// a model without a scheduler that returns full log-prob rows, or calibration statistics.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadAddon } from '../../engine/addon.js';
import { readEngineFolder } from '../../engine/engine-folder.js';
import type { NativeTensorEntry } from '../../engine/native.js';
import type { ModelConfig } from '../../model/config.js';
import { openCheckpoint } from '../../model/checkpoint.js';
import type { CapturePoint } from '../../quant/smoothing.js';
import type { CaptureStats, LayerCalibration } from '../../quant/layer.js';
import type { CalibrationRequest, RuntimeBridge, Scorer } from './runtime-bridge.js';

interface RawCapture {
  absMax: Float32Array;
  absMean: Float32Array;
  samples: Float32Array;
  sampleRows: number;
  cols: number;
}

type RawLayer = Record<CapturePoint, RawCapture> & { kAmax: number; vAmax: number };

interface NativeModelTool {
  logprobs(tokens: Int32Array): Promise<Float32Array>;
  calibrate(sequences: Int32Array[], sampleRows: number): Promise<{ tokens: number; layers: RawLayer[] }>;
  close(): void;
}

interface ModelToolAddon {
  awqLoss(x: Float32Array, n: number, K: number, w: Float32Array, rows: number, scales: Float32Array | null, group: number): number;
  createModelTool(
    config: ModelConfig,
    tensors: NativeTensorEntry[],
    options: { threads?: number; cpuKernels?: string; quantization: string; maxSeqLen: number },
  ): Promise<NativeModelTool>;
}

interface Loaded {
  model: ModelConfig;
  tensors: NativeTensorEntry[];
  quantization: string;
}

function loadModel(dirArg: string): Loaded {
  const dir = resolve(dirArg);
  if (existsSync(join(dir, 'engine.json'))) {
    const f = readEngineFolder(dir);
    return { model: f.model, tensors: f.tensors, quantization: f.quantization };
  }
  const ck = openCheckpoint(dir);
  const tensors = [...ck.tensors.values()].map((t) => ({ name: t.name, file: t.file, offset: t.offset, nbytes: t.nbytes, dtype: t.dtype, shape: t.shape }));
  return { model: ck.model, tensors, quantization: 'none' };
}

async function openTool(dir: string, maxSeqLen: number): Promise<{ tool: NativeModelTool; model: ModelConfig }> {
  const addon = loadAddon() as unknown as ModelToolAddon;
  const m = loadModel(dir);
  const tool = await addon.createModelTool(m.model, m.tensors, {
    quantization: m.quantization,
    maxSeqLen,
    cpuKernels: process.env.GRPST_CPU_KERNELS || undefined,
  });
  return { tool, model: m.model };
}

function capture(raw: RawCapture): CaptureStats {
  return { absMax: raw.absMax, absMean: raw.absMean, samples: { data: raw.samples, rows: raw.sampleRows, cols: raw.cols } };
}

export async function createAddonBridge(): Promise<RuntimeBridge> {
  const addon = loadAddon() as unknown as Partial<ModelToolAddon>;
  if (typeof addon.createModelTool !== 'function') throw new Error('the native addon predates its model tools; rebuild it');
  const native = addon as ModelToolAddon;
  return {
    awqLoss: (x, w, s, group) => {
      if (typeof native.awqLoss !== 'function') throw new Error('the native addon predates its AWQ objective; rebuild it with npm run build:native');
      return native.awqLoss(x.data, x.rows, x.cols, w.data, w.rows, s, group);
    },
    async calibrate(modelDir: string, req: CalibrationRequest): Promise<LayerCalibration[]> {
      const longest = Math.max(16, ...req.sequences.map((s) => s.length));
      const { tool } = await openTool(modelDir, longest);
      try {
        req.onProgress?.(0);
        const r = await tool.calibrate(req.sequences, req.sampleRows);
        req.onProgress?.(1);
        return r.layers.map((l) => ({
          captures: { attn_in: capture(l.attn_in), o_in: capture(l.o_in), mlp_in: capture(l.mlp_in), down_in: capture(l.down_in) },
          kAmax: l.kAmax,
          vAmax: l.vAmax,
        }));
      } finally {
        tool.close();
      }
    },
    async openScorer(dir: string): Promise<Scorer> {
      const { tool, model } = await openTool(dir, 1024);
      return {
        vocabSize: model.vocabSize,
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
