// Calibration on the GPU (`grpst build --device cuda|auto`): the CUDA runner reduces each capture
// point's input to per-column |x| max and sum on the device and copies out only the sampled rows;
// AWQ's scale search evaluates its candidates there too.
// Against the CPU runner on the same checkpoint and text: every statistic the build uses (the four
// linear inputs of every layer and the head's, k / v maxima, the sampled rows), then whole builds
// (int4_awq, int8_sq, fp8 with an fp8 KV cache) calibrated and verified on each device, whose
// accuracy reports against the float model must agree. Shared by model-parity.test.ts and
// scripts/gpu/parity.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BuildSummary } from '../../src/build/index.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { calibrationSequences, loadTextSet } from '../../src/build/native/text-data.js';
import type { QFormat } from '../../src/build/options.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import type { CaptureStats, ModelCalibration } from '../../src/quant/layer.js';
import { repoRoot } from '../helpers/fixtures.js';
import { buildForChecks, writeGpuShapedCheckpoint } from './quant-build.js';
import { checkRecorder, type CheckOutcome } from './parity-checks.js';

// The GPU keeps activations in bf16 as transformers does, the CPU in fp32: a bf16 rounding is
// 2^-9 relative, and two layers of random weights compound it a little. Maxima and means are
// relative L2 over the channels, the sampled rows relative L2 over their values. A wrong row,
// channel order, norm or missed chunk moves these by whole units.
const STAT_TOL = 0.03;
const SAMPLE_TOL = 0.03;
// Accuracy reports of the same format calibrated on either device: top-1 agreement within 3 points
// of 601 predictions, mean KL within 25% (or 0.01 nats, for the formats near zero).
const TOP1_TOL = 0.03;
const KL_REL_TOL = 0.25;
const KL_ABS_TOL = 0.01;

export function relL2(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

export function compareCapture(name: string, gpu: CaptureStats, cpu: CaptureStats, add: (n: string, p: boolean, d: string) => void): void {
  const mx = relL2(gpu.absMax, cpu.absMax);
  const mean = relL2(gpu.absMean, cpu.absMean);
  add(`${name} per-channel max and mean |x|`, mx <= STAT_TOL && mean <= STAT_TOL,
    `max ${mx.toExponential(2)}, mean ${mean.toExponential(2)} relative L2 (tol ${STAT_TOL}) over ${cpu.absMax.length} channels`);
  const sameRows = gpu.samples.rows === cpu.samples.rows && gpu.samples.cols === cpu.samples.cols;
  const s = sameRows ? relL2(gpu.samples.data, cpu.samples.data) : Infinity;
  add(`${name} sampled rows`, sameRows && cpu.samples.rows > 0 && s <= SAMPLE_TOL,
    `${gpu.samples.rows} rows on the GPU, ${cpu.samples.rows} on the CPU; ${s.toExponential(2)} relative L2 (tol ${SAMPLE_TOL})`);
}

function compareCalibrations(gpu: ModelCalibration, cpu: ModelCalibration, add: (n: string, p: boolean, d: string) => void): void {
  add('calibration: every layer reported', gpu.layers.length === cpu.layers.length && cpu.layers.length > 0, `${gpu.layers.length} / ${cpu.layers.length}`);
  for (const [l, c] of cpu.layers.entries()) {
    const g = gpu.layers[l];
    if (!g) continue;
    for (const point of ['attn_in', 'o_in', 'mlp_in', 'down_in'] as const) compareCapture(`calibration layer ${l} ${point}`, g.captures[point], c.captures[point], add);
    const k = relDiff(g.kAmax, c.kAmax);
    const v = relDiff(g.vAmax, c.vAmax);
    const vc = relL2(g.vAbsMax, c.vAbsMax);
    add(`calibration layer ${l} k / v maxima`, k <= STAT_TOL && v <= STAT_TOL && vc <= STAT_TOL,
      `k ${g.kAmax.toFixed(4)} vs ${c.kAmax.toFixed(4)}, v ${g.vAmax.toFixed(4)} vs ${c.vAmax.toFixed(4)}, v per channel ${vc.toExponential(2)} (tol ${STAT_TOL})`);
  }
  compareCapture('calibration head input', gpu.head, cpu.head, add);
}

export interface AccuracyTolerance {
  top1: number;
  klRel: number;
  klAbs: number;
}

/**
 * One format built calibrated on the GPU and on the CPU (`build`; the GPU build's engine folder
 * `gpuDir`): its manifest names the GPU, and the two accuracy reports against the float model agree.
 */
export async function compareDeviceBuilds(tag: string, build: (device: 'cpu' | 'cuda') => Promise<BuildSummary>, gpuDir: string,
  tol: AccuracyTolerance, add: (n: string, p: boolean, d: string) => void): Promise<void> {
  try {
    const onGpu = await build('cuda');
    const onCpu = await build('cpu');
    const manifest = JSON.parse(readFileSync(join(gpuDir, 'engine.json'), 'utf8')) as { quantization?: { calibration?: { device?: string } } };
    const where = manifest.quantization?.calibration?.device ?? '';
    add(`${tag}: the manifest names the GPU`, where.includes('cuda'), where || 'no calibration device recorded');
    const g = onGpu.accuracy;
    const c = onCpu.accuracy;
    if (!g || !c) {
      add(`${tag}: accuracy reports`, false, 'a build wrote no accuracy report');
      return;
    }
    const klOk = Math.abs(g.mean_kl - c.mean_kl) <= Math.max(tol.klAbs, tol.klRel * c.mean_kl);
    add(`${tag}: accuracy as calibrated on the CPU`, Math.abs(g.top1_agreement - c.top1_agreement) <= tol.top1 && klOk,
      `top-1 ${(100 * g.top1_agreement).toFixed(2)}% vs ${(100 * c.top1_agreement).toFixed(2)}%, mean KL ${g.mean_kl.toExponential(3)} vs ${c.mean_kl.toExponential(3)} over ${g.tokens} predictions; builds ${onGpu.seconds.toFixed(1)} s / ${onCpu.seconds.toFixed(1)} s`);
  } catch (err) {
    add(`${tag} ran`, false, err instanceof Error ? err.message : String(err));
  }
}

function build(model: string, qformat: Exclude<QFormat, 'full_prec'>, out: string, device: 'cpu' | 'cuda'): Promise<BuildSummary> {
  return buildForChecks({ model_dir: model, output_dir: out, qformat, calib_size: 32, device, kv_cache_dtype: qformat === 'fp8' ? 'fp8' : 'auto' }, 'calibration-checks');
}

export async function calibrationChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const work = mkdtempSync(join(tmpdir(), 'grpst-calibration-checks-'));
  try {
    const model = join(work, 'checkpoint');
    writeGpuShapedCheckpoint(model, 6006);
    const tokenizer = Tokenizer.fromDir(model);
    // The built-in passages (under 200 tokens each) joined and cut into sequences of 700 tokens:
    // past one GPU step of 512, so a sequence spans two steps, and the last a shorter one.
    const set = loadTextSet(join(repoRoot, 'data', 'calibration.txt'), 'calibration');
    const joined = Int32Array.from(calibrationSequences(set, (t) => tokenizer.encode(t), 24, 700).flatMap((q) => [...q]));
    const sequences: Int32Array[] = [];
    for (let at = 0; at < joined.length; at += 700) sequences.push(joined.slice(at, at + 700));
    const bridge = await loadRuntimeBridge();
    const req = { sequences, sampleRows: 64 };
    const t0 = performance.now();
    const gpu = await bridge.calibrate(model, { ...req, device: 'cuda' });
    const t1 = performance.now();
    const cpu = await bridge.calibrate(model, { ...req, device: 'cpu' });
    const t2 = performance.now();
    const tokens = sequences.reduce((a, q) => a + q.length, 0);
    add('calibration ran on the GPU', (gpu.ranOn ?? '').includes('cuda') && (cpu.ranOn ?? '').startsWith('CPU'),
      `${gpu.ranOn} (${(t1 - t0).toFixed(0)} ms) and ${cpu.ranOn} (${(t2 - t1).toFixed(0)} ms) over ${sequences.length} passages, ${tokens} tokens`);
    compareCalibrations(gpu, cpu, add);

    // AWQ's search objective on the GPU against the CPU's native one: the layer 0 samples against a
    // weight of 384 x 128 (three of this model's groups of 64 along the input), unscaled and scaled.
    const x = cpu.layers[0].captures.attn_in.samples;
    const w = { data: Float32Array.from({ length: 384 * x.cols }, (_, i) => Math.sin(i * 0.37) * 0.05), rows: 384, cols: x.cols };
    const scales = Float32Array.from({ length: x.cols }, (_, i) => 0.5 + (i % 7) * 0.25);
    const onGpu = bridge.awqObjectiveFor?.('cuda');
    if (!onGpu) add('AWQ objective on the GPU', false, 'the bridge offers no GPU search');
    else {
      const lossOf = onGpu.objective(x, w, 64);
      const pairs = [null, scales].map((sc) => [lossOf(sc), bridge.awqLoss(x, w, sc, 64)]);
      const worst = Math.max(...pairs.map(([g, c]) => relDiff(g, c)));
      add('AWQ objective on the GPU', onGpu.ranOn === 'the GPU' && worst <= 1e-5 && pairs.every(([, c]) => c > 0),
        `${pairs.map(([g, c]) => `${g.toExponential(6)} vs ${c.toExponential(6)}`).join(', ')}: ${worst.toExponential(2)} relative (tol 1e-5)`);
    }

    for (const qformat of ['int4_awq', 'int8_sq', 'fp8'] as const) {
      const tag = `calibration build ${qformat}${qformat === 'fp8' ? ' (fp8 KV cache)' : ''}`;
      await compareDeviceBuilds(tag, (device) => build(model, qformat, join(work, `${qformat}-${device}`), device),
        join(work, `${qformat}-cuda`), { top1: TOP1_TOL, klRel: KL_REL_TOL, klAbs: KL_ABS_TOL }, add);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
