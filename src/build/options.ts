// The settings of one `grpst build`, as flags and recipe keys spell them (snake_case, the seed's
// names). A recipe and the command line fill the same schema; flags given on the command line win.
import { z } from 'zod';
import { suggest } from '../config/validate.js';
import { badInput } from '../util/errors.js';
import { backends, dtypes, kvCacheDtypes, qformats, type Backend, type Dtype, type KvCacheDtype, type QFormat } from './choices.js';

export { backends, dtypes, kvCacheDtypes, qformats, type Backend, type Dtype, type KvCacheDtype, type QFormat } from './choices.js';

const positiveInt = z.number().int().positive();

/** Every key a recipe may hold; all optional here, defaults are applied after merging with flags. */
export const buildSettingsSchema = z
  .object({
    model_dir: z.string().min(1),
    output_dir: z.string().min(1),
    dtype: z.enum(dtypes),
    qformat: z.enum(qformats),
    kv_cache_dtype: z.enum(kvCacheDtypes),
    awq_block_size: positiveInt,
    /** Calibration samples (text passages) to run; TensorRT-LLM's quantize.py defaults to 512. */
    calib_size: positiveInt,
    /** Tokens per calibration sample, at most. */
    calib_max_seq_length: positiveInt,
    /** A .txt (passages separated by blank lines) or .jsonl ({"text": ...} per line) file. */
    calib_dataset: z.string().min(1),
    /** SmoothQuant's migration strength for int8_sq. */
    smoothquant_alpha: z.number().min(0).max(1),
    /** Quantize lm_head in the qformat too (kept in the dtype by default, as TensorRT-LLM does). */
    quantize_lm_head: z.boolean(),
    max_batch_size: positiveInt,
    max_input_len: positiveInt,
    max_seq_len: positiveInt,
    max_num_tokens: positiveInt,
    /** Tensor parallel ranks: one weight shard (rank<r>.weights) per GPU. */
    tp_size: positiveInt,
    backend: z.enum(backends),
    /** Where TensorRT-LLM's source tree is (examples/...); also TRTLLM_DIR. */
    trtllm_dir: z.string().min(1),
    /** The Python that has tensorrt_llm installed; also TRTLLM_PYTHON. */
    python: z.string().min(1),
    /** The trtllm-build executable; also TRTLLM_BUILD. Default: found beside python, then on PATH. */
    trtllm_build: z.string().min(1),
    /** Keep TensorRT-LLM's intermediate checkpoint folder (tllm_checkpoint) in the output. */
    keep_checkpoint: z.boolean(),
    /** Held-out text for the accuracy report; default: the one shipped with grpst. */
    eval_dataset: z.string().min(1),
    /** The unquantized checkpoint the accuracy report compares with (default: model_dir, when it is unquantized). */
    reference_dir: z.string().min(1),
    /** Tokens of held-out text the accuracy report scores. */
    eval_tokens: positiveInt,
    /** A PEFT LoRA adapter folder merged into the weights before quantizing (the engine is the adapted model). */
    merge_lora: z.string().min(1),
    /**
     * Where calibration and the accuracy report run the model: cuda (the GPU; an error without
     * one), cpu, or auto (the GPU where the runtime has the CUDA backend and one is visible).
     */
    device: z.enum(['auto', 'cpu', 'cuda']),
    force: z.boolean(),
  })
  .partial()
  .strict();

export type BuildSettingsInput = z.infer<typeof buildSettingsSchema>;

export const buildDefaults = {
  dtype: 'bfloat16',
  qformat: 'full_prec',
  kv_cache_dtype: 'auto',
  awq_block_size: 128,
  calib_size: 512,
  calib_max_seq_length: 512,
  smoothquant_alpha: 0.5,
  quantize_lm_head: false,
  max_batch_size: 16,
  max_input_len: 32256,
  max_seq_len: 32768,
  max_num_tokens: 32256,
  tp_size: 1,
  backend: 'native',
  keep_checkpoint: false,
  eval_tokens: 1024,
  device: 'auto',
  force: false,
} as const satisfies BuildSettingsInput;

export interface BuildSettings {
  model_dir: string;
  output_dir: string;
  dtype: Dtype;
  qformat: QFormat;
  kv_cache_dtype: KvCacheDtype;
  awq_block_size: number;
  calib_size: number;
  calib_max_seq_length: number;
  calib_dataset?: string;
  smoothquant_alpha: number;
  quantize_lm_head: boolean;
  max_batch_size: number;
  max_input_len: number;
  max_seq_len: number;
  max_num_tokens: number;
  tp_size: number;
  backend: Backend;
  trtllm_dir?: string;
  python?: string;
  trtllm_build?: string;
  keep_checkpoint: boolean;
  eval_dataset?: string;
  reference_dir?: string;
  eval_tokens: number;
  merge_lora?: string;
  device: 'auto' | 'cpu' | 'cuda';
  force: boolean;
}

/** Describes the first problem zod found, naming the key the way the user wrote it. */
export function describeIssue(issue: z.core.$ZodIssue, where: string): string {
  const key = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    // the nearest valid key for each, as the confs' validator says it; the list of valid keys
    // (for a key with no near one) once at the end, not after each unknown key
    const valid = [...flagNames, 'name', 'description'];
    const hints = issue.keys.map((k) => ({ key: k, hint: suggest(k, valid) }));
    const near = hints.map(({ key, hint }) => {
      if (!hint.startsWith('; did you mean')) return `"${key}"`;
      return issue.keys.length === 1 ? `"${key}"${hint}` : `"${key}" (${hint.slice(2)})`;
    });
    const list = hints.some(({ hint }) => !hint.startsWith('; did you mean')) ? `; valid keys here: ${valid.join(', ')}` : '';
    return `${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${near.join(', ')}${list}`;
  }
  if (issue.code === 'invalid_value' && 'values' in issue) {
    return `${where}: ${key} must be one of ${(issue.values as unknown[]).map(String).join(', ')}`;
  }
  return `${where}: ${key || '(root)'}: ${issue.message}`;
}

export function parseSettings(raw: unknown, where: string): BuildSettingsInput {
  const parsed = buildSettingsSchema.safeParse(raw);
  if (!parsed.success) {
    throw badInput(describeIssue(parsed.error.issues[0], where), `see \`grpst build --help\` for the keys and their values`);
  }
  return parsed.data;
}

/** Recipe values, then flags, then defaults; checks what only the whole set can tell. */
export function resolveSettings(recipe: BuildSettingsInput, flags: BuildSettingsInput): BuildSettings {
  const defined = (o: BuildSettingsInput) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  // The CLI and the recipe loader check their own values first (with suggestions); a program
  // calling this directly gets the same schema's verdict, not a failure deep in the build.
  const given = parseSettings({ ...defined(recipe), ...defined(flags) }, 'build settings');
  const merged = { ...buildDefaults, ...given } as Partial<BuildSettings>;
  if (!merged.model_dir) throw badInput('no --model_dir given', 'pass --model_dir DIR (a Hugging Face Qwen3 checkpoint) or put model_dir in the recipe');
  if (!merged.output_dir) throw badInput('no --output_dir given', 'pass --output_dir DIR (where the engine is written) or put output_dir in the recipe');
  const s = merged as BuildSettings;
  if (s.max_input_len > s.max_seq_len) {
    throw badInput(`max_input_len ${s.max_input_len} is larger than max_seq_len ${s.max_seq_len}`, 'max_seq_len counts prompt and output tokens; raise it or lower max_input_len');
  }
  if (s.quantize_lm_head && s.qformat === 'full_prec') {
    throw badInput('--quantize_lm_head needs a quantized format, and --qformat is full_prec', 'pass --qformat int8_wo, int4_awq, fp8 or int8_sq with it, or drop --quantize_lm_head');
  }
  return s;
}

/** The flags of a build as `--key value` pairs, for messages and dry runs. */
export const flagNames = Object.keys(buildSettingsSchema.shape) as (keyof BuildSettingsInput)[];
