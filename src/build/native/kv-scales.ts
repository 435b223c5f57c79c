// KV cache scales, as TensorRT-LLM derives them from calibration: per layer one scale for k and
// one for v, amax / 448 for fp8 (e4m3) and amax / 127 for int8. The cache stores round(x / scale).
// The amax is that of what the engine's cache holds (PackResult.kvAmax), not of the float model's
// k and v: AWQ and SmoothQuant fold o_proj's factors into v_proj rows, which rescales v.
import type { KvAmax } from '../../quant/layer.js';
import { FP8_E4M3_MAX } from '../../quant/numeric.js';

export function kvCacheScales(layers: KvAmax[], dtype: 'fp8' | 'int8'): [number, number][] {
  const top = dtype === 'fp8' ? FP8_E4M3_MAX : 127;
  const scale = (amax: number) => (amax > 0 ? Math.fround(amax / top) : 1);
  return layers.map((l) => [scale(l.k), scale(l.v)]);
}
