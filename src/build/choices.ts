// The values `grpst build`'s enumerated flags and recipe keys accept, and the KV cache types an
// engine is served with. Apart from options.ts and inference-schema.ts (the schemas) so that the
// command line can list them without loading the schemas' modules.
export const qformats = ['full_prec', 'int8_wo', 'int4_awq', 'fp8', 'int8_sq'] as const;
export type QFormat = (typeof qformats)[number];

export const dtypes = ['bfloat16', 'float16', 'float32'] as const;
export type Dtype = (typeof dtypes)[number];

export const kvCacheDtypes = ['auto', 'fp8', 'int8'] as const;
export type KvCacheDtype = (typeof kvCacheDtypes)[number];

/** The inference conf's kv_cache_dtype and `grpst serve --kv_cache_dtype`. */
export const servedKvCacheDtypes = ['auto', 'bfloat16', 'float32', 'fp8', 'int8'] as const;
export type ServedKvCacheDtype = (typeof servedKvCacheDtypes)[number];

export const backends = ['native', 'trtllm'] as const;
export type Backend = (typeof backends)[number];
