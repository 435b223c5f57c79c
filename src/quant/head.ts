// Quantizes the output head (lm_head) in the engine's format, for builds that ask for it
// (--quantize_lm_head, as TensorRT-LLM's quantize.py offers). The head is the largest single
// linear of a Qwen3 model (vocabulary x hidden: 1.2 GB of an 8B model's 16 GB in bf16), so at batch
// 1 it bounds how much a quantized format can gain; it also decides the sampled token, which is why
// engines keep it in the float dtype unless asked. Its input is the final RMSNorm's output, so AWQ
// and SmoothQuant fold their per-channel factors into model.norm's weight, exactly as they fold the
// layers' factors into input_layernorm (smoothing.ts).
import { searchAwqScales } from './awq.js';
import { absMax, quantizeFp8 } from './fp8.js';
import { checkGroup, int4Linear, quantizeInt4Symmetric } from './int4.js';
import { quantizeInt8Sq, smoothQuantScales } from './int8-sq.js';
import { quantizeInt8Wo } from './int8-wo.js';
import type { CaptureStats, GroupNote, LayerFormat, LayerQuantOptions } from './layer.js';
import { divideVector, scaleColumns } from './smoothing.js';
import type { Matrix, QuantizedLinear } from './types.js';

export const HEAD_NAME = 'lm_head';

export interface HeadResult {
  /** model.norm's weight, divided by the factors folded into it (AWQ, SmoothQuant); else as given. */
  finalNorm: Float32Array;
  linear: QuantizedLinear;
  note?: GroupNote;
}

/** Formats whose head quantization reads calibration statistics of the head's input. */
export function headNeedsCalibration(format: LayerFormat): boolean {
  return format === 'int4_awq' || format === 'fp8' || format === 'int8_sq';
}

/**
 * @param weight [vocab, hidden] float weights of the head (modified in place by AWQ / SmoothQuant)
 * @param finalNorm [hidden] model.norm's weight (modified in place by AWQ / SmoothQuant)
 * @param capture statistics of the final norm's output over the calibration text
 */
export function quantizeHead(
  weight: Matrix,
  finalNorm: Float32Array,
  capture: CaptureStats | undefined,
  opts: Pick<LayerQuantOptions, 'format' | 'group' | 'alpha' | 'awqLoss'>,
): HeadResult {
  if (headNeedsCalibration(opts.format) && !capture) throw new Error(`${HEAD_NAME}: ${opts.format} needs calibration statistics of its input`);
  switch (opts.format) {
    case 'int8_wo':
      return { finalNorm, linear: quantizeInt8Wo(HEAD_NAME, weight) };
    case 'int4_rtn':
      checkGroup(HEAD_NAME, weight.cols, opts.group);
      return { finalNorm, linear: int4Linear(HEAD_NAME, quantizeInt4Symmetric(weight, opts.group)) };
    case 'int4_awq': {
      checkGroup(HEAD_NAME, weight.cols, opts.group);
      const r = searchAwqScales({ x: capture!.samples, xMean: capture!.absMean, weights: [weight], group: opts.group, loss: opts.awqLoss });
      scaleColumns(weight, r.scales);
      divideVector(finalNorm, r.scales);
      return {
        finalNorm,
        linear: int4Linear(HEAD_NAME, quantizeInt4Symmetric(weight, opts.group)),
        note: { input: 'head_in', ratio: r.ratio, loss: r.loss, rtnLoss: r.rtnLoss },
      };
    }
    case 'fp8':
      return { finalNorm, linear: quantizeFp8(HEAD_NAME, weight, absMax(weight.data), absMax(capture!.absMax)) };
    case 'int8_sq': {
      const s = smoothQuantScales(capture!.absMax, [weight], opts.alpha);
      scaleColumns(weight, s);
      divideVector(finalNorm, s);
      return { finalNorm, linear: quantizeInt8Sq(HEAD_NAME, weight), note: { input: 'head_in' } };
    }
  }
}
