// The KV cache an engine runs with: LoadOptions.kvCacheDtype (inference conf kv_cache_dtype)
// resolved against what the model brings. An engine built with --kv_cache_dtype fp8|int8 records
// the type and TensorRT-LLM's calibrated per-layer scales (amax / 448, amax / 127) in engine.json;
// "auto" runs that cache, and asking for the other quantized type rescales the same amax. Without
// calibrated scales fp8 runs with scale 1.0 (as TensorRT-LLM does; docs/build.md gives its
// accuracy cost) and int8 is refused: rounding to integers without a scale would wipe the cache.
import type { EngineManifest } from '../build/manifest.js';
import { badInput } from '../util/errors.js';

/** The spellings LoadOptions.kvCacheDtype accepts (the runtime's parse_kv_dtype). */
export const kvCacheDtypeNames = ['auto', 'bfloat16', 'bf16', 'float32', 'fp32', 'fp8', 'int8'] as const;

/** The largest code of each quantized type: calibration's scale is amax / top. */
const TOP = { fp8: 448, int8: 127 } as const;
type QuantizedKv = keyof typeof TOP;

export interface KvCacheChoice {
  kvCacheDtype: string;
  /** fp8 / int8 with calibrated scales: [k_scale, v_scale] per layer. Absent: none (fp8 then uses 1.0). */
  kvCacheScales?: [number, number][];
}

const isQuantized = (d: string | undefined): d is QuantizedKv => d === 'fp8' || d === 'int8';

/**
 * The cache type and scales to load with. `kv` is the engine folder's kv_cache (undefined for a
 * Hugging Face checkpoint); `source` names the model in errors.
 */
export function resolveKvCache(requested: string | undefined, kv: EngineManifest['kv_cache'] | undefined, source: string): KvCacheChoice {
  const want = requested ?? 'auto';
  if (!(kvCacheDtypeNames as readonly string[]).includes(want)) {
    throw badInput(`KV cache dtype "${want}" is unknown`, 'set kv_cache_dtype to auto, bfloat16, float32, fp8 or int8');
  }
  const built = isQuantized(kv?.dtype) ? kv.dtype : undefined;
  const dtype = want === 'auto' ? (built ?? 'auto') : want;
  if (!isQuantized(dtype)) return { kvCacheDtype: dtype };
  if (built && kv?.scales) {
    const factor = TOP[built] / TOP[dtype];
    const scales = dtype === built ? kv.scales : kv.scales.map(([k, v]) => [Math.fround(k * factor), Math.fround(v * factor)] as [number, number]);
    return { kvCacheDtype: dtype, kvCacheScales: scales };
  }
  if (dtype === 'int8') {
    throw badInput(
      `an int8 KV cache needs per-layer scales from calibration, and ${source} has none`,
      'build an engine with `grpst build --model_dir CHECKPOINT --output_dir DIR --kv_cache_dtype int8` and load that (or use kv_cache_dtype fp8, which runs uncalibrated with scale 1.0)',
    );
  }
  return { kvCacheDtype: 'fp8' };
}
