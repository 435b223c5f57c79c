// The values `grpst build`'s enumerated flags and recipe keys accept. Apart from options.ts (the
// schema) so that the command line can list them without loading the schema's modules.
export const qformats = ['full_prec', 'int8_wo', 'int4_awq', 'fp8', 'int8_sq'] as const;
export type QFormat = (typeof qformats)[number];

export const dtypes = ['bfloat16', 'float16', 'float32'] as const;
export type Dtype = (typeof dtypes)[number];

export const kvCacheDtypes = ['auto', 'fp8', 'int8'] as const;
export type KvCacheDtype = (typeof kvCacheDtypes)[number];

export const backends = ['native', 'trtllm'] as const;
export type Backend = (typeof backends)[number];
