// Calibration of a Qwen3-MoE model on the GPU (`grpst build --device cuda` in a calibrated format):
// the CUDA forward hands each expert's inputs to the calibration as the CPU forward does (its own
// rows, per step). Against the CPU runner on the same checkpoint and text: the layers' inputs as
// calibration-checks.ts holds them, each expert's routed-token count and its inputs' per-channel
// statistics, then int4_awq, fp8 and int8_sq builds calibrated and verified on each device, whose
// accuracy reports against the float model must agree. Run by moe-checks.ts.
//
// The GPU routes its bf16 activations, the CPU its fp32 ones: a token near a router tie can go to
// another expert (the checkpoint's routers are 16x sharper than the fixtures' to make that rare,
// moe-quant-checks.ts), moving a few rows between experts. So the counts are held to a share of the
// routed rows and an expert's statistics to a bound looser than a layer input's.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { calibrationSequences, loadTextSet } from '../../src/build/native/text-data.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { repoRoot } from '../helpers/fixtures.js';
import { compareCapture, compareDeviceBuilds, relL2 } from './calibration-checks.js';
import { writeSharpRouterMoe } from './moe-quant-checks.js';
import { checkRecorder, type CheckOutcome } from './parity-checks.js';
import { buildForChecks } from './quant-build.js';

/** Routed rows that may sit with another expert on the GPU than on the CPU. */
const MOVED_ROWS = 0.03;
/**
 * An expert's per-channel max and mean |x|, relative L2 over its channels (experts of MIN_ROWS rows
 * or more). A channel's max is one row's: a row moved to another expert moves it (H100: 0.068 and
 * 0.078 worst over tiny-moe's two sparse layers, with 7 and 9 of 5,192 rows moved); a row or
 * expert mixed up moves it by tens of percent.
 */
const EXPERT_STAT_TOL = 0.12;
const MIN_ROWS = 32;
/** Accuracy reports of the same format calibrated on either device. */
const TOP1_TOL = 0.05;
const KL_REL_TOL = 0.35;
const KL_ABS_TOL = 0.02;

export async function moeCalibrationChecks(log: (line: string) => void = () => {}): Promise<CheckOutcome[]> {
  const { out, add } = checkRecorder(log);
  const work = mkdtempSync(join(tmpdir(), 'grpst-moe-calibration-'));
  try {
    const model = join(work, 'checkpoint');
    writeSharpRouterMoe(model);
    const tokenizer = Tokenizer.fromDir(model);
    const set = loadTextSet(join(repoRoot, 'data', 'calibration.txt'), 'calibration');
    // sequences of 600 tokens: past one GPU step of 512, so a sequence spans two steps
    const joined = Int32Array.from(calibrationSequences(set, (t) => tokenizer.encode(t), 24, 600).flatMap((q) => [...q]));
    const sequences: Int32Array[] = [];
    for (let at = 0; at < joined.length; at += 600) sequences.push(joined.slice(at, at + 600));
    const bridge = await loadRuntimeBridge();
    const req = { sequences, sampleRows: 64 };
    const gpu = await bridge.calibrate(model, { ...req, device: 'cuda' });
    const cpu = await bridge.calibrate(model, { ...req, device: 'cpu' });
    add('MoE calibration ran on the GPU', (gpu.ranOn ?? '').includes('cuda') && (cpu.ranOn ?? '').startsWith('CPU'),
      `${gpu.ranOn} and ${cpu.ranOn} over ${sequences.length} passages`);
    for (const [l, c] of cpu.layers.entries()) {
      const g = gpu.layers[l];
      if (!g) {
        add(`MoE calibration layer ${l} reported`, false, 'missing on the GPU');
        continue;
      }
      compareCapture(`MoE calibration layer ${l} mlp_in`, g.captures.mlp_in, c.captures.mlp_in, add);
      const ce = c.experts ?? [];
      const ge = g.experts ?? [];
      if (ce.length === 0) {
        add(`MoE calibration layer ${l}: dense on both`, ge.length === 0, `${ge.length} experts on the GPU`);
        continue;
      }
      const routed = ce.reduce((a, e) => a + e.tokens, 0);
      const moved = ce.reduce((a, e, x) => a + Math.abs(e.tokens - (ge[x]?.tokens ?? 0)), 0) / 2;
      add(`MoE calibration layer ${l}: every expert's routed rows`, ge.length === ce.length && routed > 0 && moved <= MOVED_ROWS * routed,
        `${moved} of ${routed} rows with another expert on the GPU (tol ${(MOVED_ROWS * 100).toFixed(0)}%); per expert ${ge.map((e) => e.tokens).join(' ')} / ${ce.map((e) => e.tokens).join(' ')}`);
      let worst = 0;
      let compared = 0;
      let samples = true;
      for (const [x, e] of ce.entries()) {
        const h = ge[x];
        if (!h || e.tokens < MIN_ROWS || h.tokens < MIN_ROWS) continue;
        compared++;
        for (const [a, b] of [[h.gateUp, e.gateUp], [h.down, e.down]]) {
          worst = Math.max(worst, relL2(a.absMax, b.absMax), relL2(a.absMean, b.absMean));
          samples &&= a.samples.rows > 0 && a.samples.cols === b.samples.cols;
        }
      }
      // The sampled tokens' rows per expert: the same as the CPU's but where a moved row was one.
      const keptMoved = ce.reduce((a, e, x) => a + Math.abs(e.gateUp.samples.rows - (ge[x]?.gateUp.samples.rows ?? 0)) +
        Math.abs(e.down.samples.rows - (ge[x]?.down.samples.rows ?? 0)), 0) / 4;
      add(`MoE calibration layer ${l}: each expert's gate/up and down inputs`, compared > 0 && worst <= EXPERT_STAT_TOL && samples && keptMoved <= moved,
        `worst per-channel max / mean ${worst.toExponential(2)} relative L2 (tol ${EXPERT_STAT_TOL}) over ${compared} experts of ${MIN_ROWS}+ rows; sampled rows kept: ${samples}, ${keptMoved} of them with another expert (at most the ${moved} moved rows)`);
    }

    for (const qformat of ['int4_awq', 'fp8', 'int8_sq'] as const) {
      const settings = { model_dir: model, qformat, calib_size: 32, awq_block_size: 16, eval_tokens: 256, max_batch_size: 8 };
      await compareDeviceBuilds(`MoE build ${qformat} calibrated on the GPU`,
        (device) => buildForChecks({ ...settings, output_dir: join(work, `${qformat}-${device}`), device }, 'moe-calibration-checks'),
        join(work, `${qformat}-cuda`), { top1: TOP1_TOL, klRel: KL_REL_TOL, klAbs: KL_ABS_TOL }, add);
    }
  } catch (err) {
    add('MoE calibration on the GPU ran', false, err instanceof Error ? err.message : String(err));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return out;
}
