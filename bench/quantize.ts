// npm run bench:quantize — seconds to quantize one decoder layer of a Qwen3-shaped model (random
// weights, random calibration statistics) in each format, with the TypeScript reference passes and
// with the runtime's native ones (src/quant/kernels.ts), in the same run. Both give the same bytes
// (test/unit/quant-native-kernels.test.ts); this measures what a build saves per layer. AWQ's
// search uses the runtime's CPU objective in both columns (on the GPU a build moves it there),
// so int4_awq's row shows the passes around it.
//
//   npm run bench:quantize [-- --shape qwen3-8b|qwen3-1.7b|qwen3-0.6b --formats int8_wo,fp8,... --samples N]
import { parseArgs } from 'node:util';
import { loadRuntimeBridge } from '../src/build/native/runtime-loader.js';
import { objectiveOf } from '../src/quant/awq.js';
import { referenceKernels, type QuantKernels } from '../src/quant/kernels.js';
import { quantizeLayer, type CaptureStats, type LayerCalibration, type LayerFormat, type LayerWeights } from '../src/quant/layer.js';
import { linearNames, type LinearName } from '../src/quant/smoothing.js';
import type { Matrix } from '../src/quant/types.js';

const shapes = {
  'qwen3-0.6b': { hidden: 1024, inter: 3072, heads: 16, kvHeads: 8, headDim: 128 },
  'qwen3-1.7b': { hidden: 2048, inter: 6144, heads: 16, kvHeads: 8, headDim: 128 },
  'qwen3-8b': { hidden: 4096, inter: 12288, heads: 32, kvHeads: 8, headDim: 128 },
};

const { values } = parseArgs({
  options: { shape: { type: 'string', default: 'qwen3-8b' }, formats: { type: 'string', default: 'int8_wo,fp8,int8_sq,int4_rtn,int4_awq' }, samples: { type: 'string', default: '64' } },
});
const shape = shapes[values.shape as keyof typeof shapes];
if (!shape) throw new Error(`--shape must be one of ${Object.keys(shapes).join(', ')}`);
const samples = Number(values.samples);

function fill(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = ((s / 2 ** 32) * 2 - 1) * scale;
  }
  return a;
}

const q = shape.heads * shape.headDim;
const kv = shape.kvHeads * shape.headDim;
const dims: Record<LinearName, [number, number]> = {
  'self_attn.q_proj': [q, shape.hidden],
  'self_attn.k_proj': [kv, shape.hidden],
  'self_attn.v_proj': [kv, shape.hidden],
  'self_attn.o_proj': [shape.hidden, q],
  'mlp.gate_proj': [shape.inter, shape.hidden],
  'mlp.up_proj': [shape.inter, shape.hidden],
  'mlp.down_proj': [shape.hidden, shape.inter],
};

function layer(): LayerWeights {
  const linears = {} as Record<LinearName, Matrix>;
  linearNames.forEach((n, i) => (linears[n] = { data: fill(dims[n][0] * dims[n][1], 11 + i, 0.05), rows: dims[n][0], cols: dims[n][1] }));
  return { inputNorm: fill(shape.hidden, 3).map((v) => 1 + v / 4), postNorm: fill(shape.hidden, 4).map((v) => 1 + v / 4), linears };
}

function capture(cols: number, seed: number): CaptureStats {
  const x = fill(samples * cols, seed, 2);
  const absMax = new Float32Array(cols);
  const absMean = new Float32Array(cols);
  for (let i = 0; i < x.length; i++) {
    const c = i % cols;
    absMax[c] = Math.max(absMax[c], Math.abs(x[i]));
    absMean[c] += Math.abs(x[i]) / samples;
  }
  return { absMax, absMean, samples: { data: x, rows: samples, cols } };
}

const calibration: LayerCalibration = {
  captures: { attn_in: capture(shape.hidden, 21), o_in: capture(q, 22), mlp_in: capture(shape.hidden, 23), down_in: capture(shape.inter, 24) },
  kAmax: 4,
  vAmax: 3,
  vAbsMax: fill(kv, 25).map((v) => 1 + Math.abs(v)),
};

const bridge = await loadRuntimeBridge();
const native = bridge.quantKernels;
if (!native) throw new Error('the native addon has no quantization passes; rebuild it with npm run build:native');
const awqLoss = objectiveOf(bridge.awqLoss);
const attention = { numHeads: shape.heads, numKvHeads: shape.kvHeads, headDim: shape.headDim };

function seconds(format: LayerFormat, kernels: QuantKernels): number {
  const weights = layer(); // fresh: quantizing folds factors into the weights in place
  const t0 = performance.now();
  quantizeLayer(0, weights, calibration, { format, group: 128, alpha: 0.5, attention, awqLoss, kernels });
  return (performance.now() - t0) / 1000;
}

const params = linearNames.reduce((a, n) => a + dims[n][0] * dims[n][1], 0);
console.log(`one ${values.shape}-shaped decoder layer (${(params / 1e6).toFixed(1)}M weights), ${samples} calibration samples; seconds, TypeScript passes / native passes`);
for (const format of values.formats!.split(',') as LayerFormat[]) {
  const ts = seconds(format, referenceKernels);
  const nat = seconds(format, native);
  console.log(`${format.padEnd(8)} ${ts.toFixed(2)} s / ${nat.toFixed(2)} s  (${(ts / nat).toFixed(1)}x)`);
}
