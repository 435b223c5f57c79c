// `grpst serve --model_dir DIR`: the inference conf a folder alone implies, so one command serves
// an engine (or a Hugging Face checkpoint) with every setting at its default, as `vllm serve DIR`
// or `llama-server -m FILE` do. The conf goes through the same schema and checks as a written one.
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { badInput } from '../util/errors.js';
import { checkServedCheckpoint, engineBackendOf, isCheckpoint } from './engine-folder.js';

export interface ModelDirChoices {
  servedModelName?: string;
  device?: 'cpu' | 'cuda' | 'auto';
  /** --max_model_len: the conf's max_seq_len. */
  maxSeqLen?: number;
  /** --max_num_seqs, --max_num_batched_tokens: the conf's max_batch_size, max_num_tokens. */
  maxBatchSize?: number;
  maxNumTokens?: number;
  /** --kv_cache_dtype: the conf's kv_cache_dtype. */
  kvCacheDtype?: string;
  /** --speculative_config: the conf's speculative_config, as parsed. */
  speculativeConfig?: Record<string, unknown>;
  /** --lora_modules: the conf's lora_modules ("name=path", paths absolute). */
  loraModules?: string[];
}

/** The folder must hold config.json or engine.json (a checkpoint or an engine) and tokenizer.json. */
export function modelDirConf(dir: string, choices: ModelDirChoices = {}): string {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) {
    throw badInput(`--model_dir ${dir} is not a folder`, 'pass the folder grpst build wrote (--output_dir) or a Hugging Face Qwen3 checkpoint folder');
  }
  // Checked here, as the engine check of a written conf would name gpt_model_path, which no one wrote.
  if (!engineBackendOf(abs)) {
    if (!fs.existsSync(path.join(abs, 'config.json'))) {
      throw badInput(`--model_dir ${dir} holds neither engine.json nor config.json`, 'pass the folder grpst build wrote (--output_dir) or a Hugging Face Qwen3 checkpoint folder');
    }
    if (isCheckpoint(abs)) throw badInput(`--model_dir ${dir}: its config.json is not valid JSON`, 'copy config.json again from the checkpoint (a cut-off download or a hand edit leaves it like this)');
    throw badInput(
      `--model_dir ${dir} has a config.json but no *.safetensors weights, and is no TensorRT-LLM engine (no rank0.engine)`,
      'pass a checkpoint in safetensors format (as Qwen publishes them; a download may still be in progress) or the folder grpst build wrote (--output_dir)',
    );
  }
  checkServedCheckpoint(abs, '--model_dir');
  if (!fs.existsSync(path.join(abs, 'tokenizer.json'))) {
    throw badInput(`--model_dir ${dir} has no tokenizer.json`, 'engines from grpst build carry their tokenizer; for a checkpoint, copy the model\'s tokenizer files into it, or write an inference conf with tokenizer_path');
  }
  const infererArgs: Record<string, unknown> = { llm_style: 'qwen3', tokenizer_path: abs, gpt_model_path: abs };
  if (choices.servedModelName !== undefined) infererArgs.served_model_name = choices.servedModelName;
  if (choices.device !== undefined) infererArgs.device = choices.device;
  if (choices.maxSeqLen !== undefined) infererArgs.max_seq_len = choices.maxSeqLen;
  if (choices.maxBatchSize !== undefined) infererArgs.max_batch_size = choices.maxBatchSize;
  if (choices.maxNumTokens !== undefined) infererArgs.max_num_tokens = choices.maxNumTokens;
  if (choices.kvCacheDtype !== undefined) infererArgs.kv_cache_dtype = choices.kvCacheDtype;
  if (choices.speculativeConfig !== undefined) infererArgs.speculative_config = choices.speculativeConfig;
  if (choices.loraModules !== undefined) infererArgs.lora_modules = choices.loraModules;
  return stringify({ models: [{ name: path.basename(abs) || 'model', version: '1.0.0', inferer_args: infererArgs }] });
}
