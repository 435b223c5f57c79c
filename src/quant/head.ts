// Quantizes the output head (lm_head) in the engine's format, for builds that ask for it
// (--quantize_lm_head, as TensorRT-LLM's quantize.py offers). The head is the largest single
// linear of a Qwen3 model (vocabulary x hidden: 1.2 GB of an 8B model's 16 GB in bf16), so at batch
// 1 it bounds how much a quantized format can gain; it also decides the sampled token, which is why
// engines keep it in the float dtype unless asked. Its input is the final RMSNorm's output, so AWQ
// and SmoothQuant fold their per-channel factors into model.norm's weight, exactly as they fold the
// layers' factors into input_layernorm (smoothing.ts).
import { checkGroup } from './int4.js';
import { referenceKernels } from './kernels.js';
import { needsCalibration, quantizeLinear, searchFactors, type CaptureStats, type LayerQuantOptions } from './layer.js';
import { divideVector } from './smoothing.js';
import type { Matrix, QuantizedLinear } from './types.js';

export const HEAD_NAME = 'lm_head';

export interface HeadResult {
  /** model.norm's weight, divided by the factors folded into it (AWQ, SmoothQuant); else as given. */
  finalNorm: Float32Array;
  linear: QuantizedLinear;
}

/**
 * @param weight [vocab, hidden] float weights of the head (modified in place by AWQ / SmoothQuant)
 * @param finalNorm [hidden] model.norm's weight (modified in place by AWQ / SmoothQuant)
 * @param capture statistics of the final norm's output over the calibration text (int4_awq, fp8, int8_sq)
 */
export function quantizeHead(
  weight: Matrix,
  finalNorm: Float32Array,
  capture: CaptureStats | undefined,
  opts: Pick<LayerQuantOptions, 'format' | 'group' | 'alpha' | 'awqLoss' | 'kernels'>,
): HeadResult {
  const { format } = opts;
  const k = opts.kernels ?? referenceKernels;
  if (needsCalibration(format) && !capture) throw new Error(`${HEAD_NAME}: ${format} needs calibration statistics of its input`);
  if (format === 'int4_awq' || format === 'int4_rtn') checkGroup(HEAD_NAME, weight.cols, opts.group);
  if (format === 'int4_awq' || format === 'int8_sq') {
    const { scales } = searchFactors(format, capture!, [weight], opts);
    k.scaleColumns(weight, scales);
    divideVector(finalNorm, scales);
  }
  const fp8 = format === 'fp8';
  return { finalNorm, linear: quantizeLinear(format, HEAD_NAME, weight, opts.group, fp8 ? k.absMax(weight.data) : 0, fp8 ? k.absMax(capture!.absMax) : 0, k) };
}
