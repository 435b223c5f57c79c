// Serving a TensorRT-LLM engine folder: grpst launches TensorRT-LLM's own `trtllm-serve` with
// flags mapped from the confs, under the same lifecycle as the native server.
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Deployment } from '../config/resolve.js';
import { missingTool } from '../util/errors.js';

export const trtllmServeCommand = 'trtllm-serve';

export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

export function requireTrtllmServe(enginePath: string, env: NodeJS.ProcessEnv = process.env): string {
  const found = findExecutable(trtllmServeCommand, env);
  if (!found) {
    throw missingTool(
      `${enginePath} is a TensorRT-LLM engine, and serving it needs TensorRT-LLM's ${trtllmServeCommand}, which is not on PATH`,
      `install TensorRT-LLM (pip install tensorrt_llm, on a machine with an NVIDIA GPU), or build a native engine instead: grpst build --model_dir <hf checkpoint> --output_dir <engine dir> (without --backend trtllm)`,
    );
  }
  return found;
}

/**
 * LLM-API options that trtllm-serve takes only from its YAML file (--extra_llm_api_options),
 * from the seed's executor keys. Undefined when the conf sets none of them.
 */
export function trtllmExtraOptions(d: Deployment): Record<string, unknown> | undefined {
  const args = d.inference.models[0].inferer_args as Record<string, unknown>;
  const kv: Record<string, unknown> = {};
  if (args.enable_kv_cache_reuse !== undefined) kv.enable_block_reuse = args.enable_kv_cache_reuse;
  if (args.max_tokens_in_paged_kv_cache !== undefined) kv.max_tokens = args.max_tokens_in_paged_kv_cache;
  if (args.kv_cache_host_memory_bytes !== undefined) kv.host_cache_size = args.kv_cache_host_memory_bytes;
  const out: Record<string, unknown> = {};
  if (Object.keys(kv).length > 0) out.kv_cache_config = kv;
  if (args.batch_scheduler_policy !== undefined) {
    out.scheduler_config = { capacity_scheduler_policy: String(args.batch_scheduler_policy).toUpperCase() };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** argv for trtllm-serve (after the executable), from the confs; `extraOptionsFile` holds trtllmExtraOptions. */
export function trtllmServeArgs(d: Deployment, opts: { host: string; port: number; tpSize: number; extraOptionsFile?: string }): string[] {
  const args = d.inference.models[0].inferer_args;
  const argv = [d.enginePath, '--tokenizer', d.tokenizerPath, '--host', opts.host, '--port', String(opts.port), '--backend', 'tensorrt', '--log_level', 'info'];
  if (opts.tpSize > 1) argv.push('--tp_size', String(opts.tpSize));
  if (args.max_batch_size !== undefined) argv.push('--max_batch_size', String(args.max_batch_size));
  if (args.max_num_tokens !== undefined) argv.push('--max_num_tokens', String(args.max_num_tokens));
  if (args.max_seq_len !== undefined) argv.push('--max_seq_len', String(args.max_seq_len));
  if (args.kv_cache_free_gpu_mem_fraction !== undefined) argv.push('--kv_cache_free_gpu_memory_fraction', String(args.kv_cache_free_gpu_mem_fraction));
  if (args.enable_chunked_context) argv.push('--enable_chunked_prefill');
  if (args.reasoning_parser) argv.push('--reasoning_parser', args.reasoning_parser === true ? 'qwen3' : args.reasoning_parser);
  if (opts.extraOptionsFile) argv.push('--extra_llm_api_options', opts.extraOptionsFile);
  return argv;
}

/** Writes the extra options file next to the confs of the deploy, or returns undefined when none is needed. */
export function writeTrtllmExtraOptions(d: Deployment, dir: string): string | undefined {
  const extra = trtllmExtraOptions(d);
  if (!extra) return undefined;
  const file = path.join(dir, 'trtllm_extra_llm_api_options.yml');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, stringify(extra));
  return file;
}
