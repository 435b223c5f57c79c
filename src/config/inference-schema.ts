// inference.yml, in the seed's (grps_trtllm) structure: `models[].inferer_args` plus `dag`. A
// grps_trtllm user's conf validates unchanged apart from paths. Keys that only TensorRT-LLM's
// executor understands are accepted and reported as ignored; anything else unknown is an error.
import { z } from 'zod';
import { servedKvCacheDtypes } from '../build/choices.js';

const int = (min = 0) => z.number().int().min(min);
const fraction = z.number().gt(0).max(1);

/** Keys only TensorRT-LLM's executor (or grps plumbing we do not need) reads; value = why ignored. */
export const tensorrtOnlyInfererKeys: Record<string, string> = {
  gpt_model_type: 'TensorRT-LLM batching mode; the native runtime always batches in flight',
  encoder_model_path: 'encoder-decoder models are not served',
  max_attention_window_size: 'TensorRT-LLM sliding-window setting',
  sink_token_length: 'TensorRT-LLM attention-sink setting',
  kv_cache_host_memory_bytes: 'TensorRT-LLM host KV offload',
  kv_cache_onboard_blocks: 'TensorRT-LLM host KV offload',
  cancellation_check_period_ms: 'TensorRT-LLM executor polling; cancellation here is immediate',
  stats_check_period_ms: 'TensorRT-LLM executor polling; see /metrics',
  iter_stats_max_iterations: 'TensorRT-LLM executor statistics',
  request_stats_max_iterations: 'TensorRT-LLM executor statistics',
  normalize_log_probs: 'TensorRT-LLM beam-search setting',
  gpu_device_ids: 'TensorRT-LLM device list; use device: cuda and CUDA_VISIBLE_DEVICES',
  lora_cache_optimal_adapter_size: 'LoRA is not served',
  lora_cache_max_adapter_size: 'LoRA is not served',
  lora_cache_gpu_memory_fraction: 'LoRA is not served',
  lora_cache_host_memory_bytes: 'LoRA is not served',
  decoding_mode: 'TensorRT-LLM decoding mode; sampling is per request',
  executor_worker_path: 'TensorRT-LLM orchestrator mode',
  medusa_choices: 'Medusa speculative decoding is not served',
  gpu_weights_percent: 'TensorRT-LLM weight streaming',
  FORCE_CPU_ONLY_INPUT_TENSORS: 'Triton/TensorRT-LLM tensor placement',
  max_beam_width: 'a TensorRT-LLM build limit; requests ask for beam search themselves (use_beam_search, n beams)',
  tokenizer_parallelism: 'tokenization runs in the server process',
  special_tokens_id: 'special tokens come from tokenizer.json',
  force_tokens_dict: 'token mapping comes from tokenizer.json',
  prefix_tokens_id: 'the chat template adds any prefix',
  suffix_tokens_id: 'the chat template adds any suffix',
};

const ignoredKeys = Object.fromEntries(Object.keys(tensorrtOnlyInfererKeys).map((k) => [k, z.unknown().optional()]));

export const samplingSchema = z.strictObject({
  temperature: z.number().min(0).max(100).optional(),
  top_k: int().optional(),
  top_p: z.number().gt(0).max(1).optional(),
  min_p: z.number().min(0).max(1).optional(),
  repetition_penalty: z.number().gt(0).optional(),
  presence_penalty: z.number().min(-2).max(2).optional(),
  frequency_penalty: z.number().min(-2).max(2).optional(),
  seed: int().optional(),
});

// vLLM's --lora-modules entries: "name=path" or {name, path, base_model_name}; relative paths are
// read from the deploy folder.
const loraModuleSchema = z.union(
  [
    z
      .string()
      .regex(/^[^=\s]+=.+$/, 'expected name=path')
      .transform((v) => ({ name: v.slice(0, v.indexOf('=')), path: v.slice(v.indexOf('=') + 1) as string, base_model_name: undefined as string | undefined })),
    z.strictObject({ name: z.string().min(1), path: z.string().min(1), base_model_name: z.string().min(1).optional() }),
  ],
  { error: 'expected "name=path" or {name, path, base_model_name}' },
);
export const loraModulesSchema = z
  .array(loraModuleSchema)
  .min(1)
  .refine((mods) => new Set(mods.map((m) => m.name)).size === mods.length, 'give each adapter its own name');

export const reasoningParsers = ['qwen3', 'deepseek-r1'] as const;

// vLLM's speculative_config, as far as it is served: method ngram (prompt lookup) or draft_model (a
// smaller model of the same family proposes; vLLM infers that method from `model` alone, so does this).
const ngramSpeculation = z
  .strictObject({
    method: z.literal('ngram'),
    num_speculative_tokens: int(1).max(16),
    prompt_lookup_max: int(1).max(16).optional(),
    prompt_lookup_min: int(1).max(16).optional(),
  })
  .refine((c) => c.prompt_lookup_min === undefined || c.prompt_lookup_max === undefined || c.prompt_lookup_min <= c.prompt_lookup_max, {
    error: 'prompt_lookup_min must be at most prompt_lookup_max',
  });
const draftModelSpeculation = z.strictObject({
  method: z.literal('draft_model'),
  /** A Qwen3 checkpoint folder or a grpst engine folder; relative paths are read from the deploy folder. */
  model: z.string().min(1),
  num_speculative_tokens: int(1).max(16),
});
export const speculativeConfigSchema = z.preprocess(
  (v) => (v && typeof v === 'object' && !Array.isArray(v) && !('method' in v) && 'model' in v ? { method: 'draft_model', ...v } : v),
  z.discriminatedUnion('method', [ngramSpeculation, draftModelSpeculation], {
    error: 'expected ngram (prompt lookup) or draft_model (with model: a smaller checkpoint or engine of the same family)',
  }),
);
export type SpeculativeConfig = z.infer<typeof speculativeConfigSchema>;

export const infererArgsSchema = z.strictObject({
  // The seed's keys.
  llm_style: z.enum(['qwen3']),
  enable_thinking: z.boolean().optional(),
  tokenizer_type: z.enum(['huggingface']).optional(),
  tokenizer_path: z.string().min(1),
  end_token_id: int().optional(),
  pad_token_id: int().optional(),
  /** The seed lists token ids to skip when decoding; older seed confs say true/false. */
  skip_special_tokens: z.union([z.boolean(), z.array(int())], { error: 'expected true, false or a list of token ids' }).optional(),
  sampling: samplingSchema.optional(),
  gpt_model_path: z.string().min(1),
  stop_words: z.array(z.string().min(1)).optional(),
  bad_words: z.array(z.string().min(1)).optional(),
  max_tokens_in_paged_kv_cache: int(1).optional(),
  batch_scheduler_policy: z.enum(['guaranteed_no_evict', 'max_utilization']).optional(),
  kv_cache_free_gpu_mem_fraction: fraction.optional(),
  enable_kv_cache_reuse: z.boolean().optional(),
  enable_chunked_context: z.boolean().optional(),
  exclude_input_in_output: z.boolean().optional(),
  ...ignoredKeys,
  // What the native runtime needs besides.
  device: z.enum(['cpu', 'cuda', 'auto']).optional(),
  /** auto: sampling fields the request and \`sampling\` leave out come from the checkpoint's generation_config.json; none: OpenAI's defaults. */
  generation_config: z.enum(['auto', 'none']).optional(),
  /** At most 1024, as the runtime takes. */
  threads: int(1).max(1024).optional(),
  /** Threads that read a step's host rows (LoadOptions.samplingThreads); at most 256, as the runtime takes. */
  sampling_threads: int(1).max(256).optional(),
  /** true (or a parser name): the think block goes to reasoning_content; false: inline, as the seed. */
  reasoning_parser: z.union([z.boolean(), z.enum(reasoningParsers)], { error: `expected true, false or one of ${reasoningParsers.join(', ')}` }).optional(),
  /** The think block's most tokens when a request sets no thinking_token_budget / budget_tokens of its own. */
  thinking_token_budget: int(0).optional(),
  /** Render a request's own chat_template (vLLM's --trust-request-chat-template); off: such requests get 400. */
  trust_request_chat_template: z.boolean().optional(),
  /** The model's name, or several (vLLM's --served-model-name): the first is the one answers report, each one is accepted. */
  served_model_name: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1).refine((names) => new Set(names).size === names.length, 'list each name once')], {
      error: 'expected a name, or a list of names',
    })
    .optional(),
  max_batch_size: int(1).optional(),
  max_num_tokens: int(1).optional(),
  /** A sequence holds the prompt and at least one new token. */
  max_seq_len: int(2).optional(),
  kv_block_size: int(1).max(1024).optional(),
  kv_cache_bytes: int(1).optional(),
  kv_cache_dtype: z.enum(servedKvCacheDtypes).optional(),
  /** vLLM's --scheduling-policy: fcfs (arrival order), or priority (a request's priority field, then arrival). */
  scheduling_policy: z.enum(['fcfs', 'priority']).optional(),
  /** vLLM's speculative_config, method ngram (prompt lookup) or draft_model: drafts checked in one step; outputs unchanged. */
  speculative_config: speculativeConfigSchema.optional(),
  /** vLLM's --lora-modules: PEFT LoRA adapters served beside the model, each under its own name. */
  lora_modules: loraModulesSchema.optional(),
  /** vLLM's --max-lora-rank: adapters of a higher rank are refused. */
  max_lora_rank: int(1).optional(),
  /** POST /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM's VLLM_ALLOW_RUNTIME_LORA_UPDATING). */
  allow_runtime_lora_updating: z.boolean().optional(),
  /** Ollama's use_mmap (llama.cpp's --no-mmap when false): map the weights files, or read them into memory. */
  use_mmap: z.boolean().optional(),
  /** Ollama's use_mlock (llama.cpp's --mlock): lock the weights in RAM; a refused lock is a warning. */
  use_mlock: z.boolean().optional(),
});

// grps device spellings: auto, cpu, cuda, gpu, cuda:N, gpu:N, original.
const modelDevice = z.string().regex(/^(auto|cpu|cuda|gpu|original|(cuda|gpu):\d+)$/, 'expected auto, cpu, cuda, gpu, cuda:N or original');

export const modelSchema = z.strictObject({
  name: z.string().min(1),
  version: z.union([z.string(), z.number()], { error: 'expected a version, such as 1.0.0' }).transform(String),
  device: modelDevice.optional(),
  inferer_type: z.enum(['customized']).optional(),
  inferer_name: z.string().optional(),
  inferer_path: z.string().optional(),
  inferer_args: infererArgsSchema,
  converter_type: z.enum(['none']).optional(),
  converter_name: z.string().optional(),
  converter_path: z.string().optional(),
  converter_args: z.unknown().optional(),
  batching: z.unknown().optional(),
});

export const dagSchema = z.strictObject({
  type: z.enum(['sequential']),
  name: z.string().min(1),
  nodes: z
    .array(z.strictObject({ name: z.string().min(1), type: z.enum(['model']), model: z.string().min(1) }))
    .min(1),
});

export const inferenceConfSchema = z.strictObject({
  models: z.array(modelSchema).min(1).max(1, 'one model per server; start one server per model'),
  dag: dagSchema.optional(),
});

export type InferenceConf = z.output<typeof inferenceConfSchema>;
export type InfererArgs = z.output<typeof infererArgsSchema>;

/** served_model_name as the server takes it: the name answers report, then the other names requests may send. */
export function servedModelNames(value: string | string[] | undefined, fallback: string): { modelId: string; modelAliases?: string[] } {
  const names = value === undefined ? [fallback] : [value].flat();
  return names.length > 1 ? { modelId: names[0], modelAliases: names.slice(1) } : { modelId: names[0] };
}
