// The seed's TensorRT-LLM commands, built as argv arrays: convert_checkpoint.py (bf16 and
// pre-quantized AWQ checkpoints) or quantize.py (int8_wo, int4_awq, fp8, int8_sq, and a KV-cache-only
// quantization), then trtllm-build with the seed's engine limits. Flag names are those of
// TensorRT-LLM 1.0 and later, the first releases whose convert_checkpoint.py and trtllm-build
// know Qwen3 (qwen_type "qwen3"); test/fixtures/trtllm/flags.json records them.
import type { BuildSettings } from '../options.js';
import type { TrtllmTools } from './locate.js';

export interface TrtllmStep {
  /** Short name shown as the phase: convert, quantize, engine. */
  name: string;
  argv: string[];
}

export interface TrtllmDirs {
  /** TensorRT-LLM checkpoint folder written by the first step. */
  checkpoint: string;
  /** Folder trtllm-build writes rank0.engine and config.json into. */
  engine: string;
  /**
   * Folder holding --calib_dataset as train.jsonl ({"text": ...} per passage). quantize.py takes a
   * Hugging Face dataset name or a local dataset folder (train split, "text" column), never a
   * plain file, so the build writes the user's file there before quantize.py runs.
   */
  calib: string;
}

/** True when quantize.py must run: a quantized format or a quantized KV cache on a plain checkpoint. */
export function needsQuantizeScript(s: BuildSettings, preQuantized: boolean): boolean {
  if (preQuantized) return false;
  return s.qformat !== 'full_prec' || s.kv_cache_dtype !== 'auto';
}

/**
 * `moe`: a Qwen3-MoE checkpoint. convert_checkpoint.py then gets its expert split spelled out:
 * every expert cut across the ranks like a dense MLP (--moe_tp_size tp_size, --moe_ep_size 1),
 * which is also its default and the only split quantize.py (no such flags) makes.
 */
export function trtllmSteps(s: BuildSettings, tools: TrtllmTools, dirs: TrtllmDirs, preQuantized: boolean, moe = false): TrtllmStep[] {
  const tp = s.tp_size > 1 ? ['--tp_size', String(s.tp_size)] : [];
  const experts = moe && s.tp_size > 1 ? ['--moe_tp_size', String(s.tp_size), '--moe_ep_size', '1'] : [];
  let first: TrtllmStep;
  if (needsQuantizeScript(s, preQuantized)) {
    const argv = [tools.python, tools.quantizeScript, '--model_dir', s.model_dir, '--dtype', s.dtype, '--qformat', s.qformat];
    if (s.qformat === 'int4_awq') argv.push('--awq_block_size', String(s.awq_block_size));
    if (s.quantize_lm_head) argv.push('--quantize_lm_head');
    if (s.kv_cache_dtype !== 'auto') argv.push('--kv_cache_dtype', s.kv_cache_dtype);
    if (s.calib_dataset) argv.push('--calib_dataset', dirs.calib);
    argv.push('--calib_size', String(s.calib_size), '--calib_max_seq_length', String(s.calib_max_seq_length));
    argv.push('--output_dir', dirs.checkpoint, ...tp);
    first = { name: 'quantize', argv };
  } else {
    first = {
      name: 'convert',
      argv: [tools.python, tools.convertScript, '--model_dir', s.model_dir, '--output_dir', dirs.checkpoint, '--dtype', s.dtype, '--load_model_on_cpu', ...tp, ...experts],
    };
  }
  const build: TrtllmStep = {
    name: 'engine',
    argv: [
      tools.trtllmBuild,
      '--checkpoint_dir', dirs.checkpoint,
      '--output_dir', dirs.engine,
      '--gemm_plugin', s.dtype,
      '--max_batch_size', String(s.max_batch_size),
      // --paged_kv_cache is deprecated in trtllm-build (accepted, ignored, warned about).
      '--kv_cache_type', 'paged',
      '--use_paged_context_fmha', 'enable',
      '--max_input_len', String(s.max_input_len),
      '--max_seq_len', String(s.max_seq_len),
      '--max_num_tokens', String(s.max_num_tokens),
    ],
  };
  return [first, build];
}
