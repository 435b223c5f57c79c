// Tells a native engine folder (engine.json, from `grpst build`) from a TensorRT-LLM one
// (`grpst build --backend trtllm` / trtllm-build: config.json with pretrained_config and
// build_config, and rank<N>.engine files), so `start` knows which server to launch. The native
// runtime also serves a Hugging Face checkpoint folder as it is (bf16, no build step).
import fs from 'node:fs';
import path from 'node:path';
import { readHfConfig } from '../model/config.js';
import { badInput, GrpstError } from '../util/errors.js';

export type EngineBackend = 'native' | 'trtllm';

export function engineBackendOf(dir: string): EngineBackend | undefined {
  const manifest = path.join(dir, 'engine.json');
  if (isFile(manifest)) {
    // `grpst build --backend trtllm` writes an engine.json too, saying so.
    try {
      if ((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { backend?: unknown })?.backend === 'trtllm') return 'trtllm';
    } catch {
      // A damaged engine.json: the runtime reports it when loading.
    }
    return 'native';
  }
  if (isFile(path.join(dir, 'rank0.engine'))) return 'trtllm';
  const config = path.join(dir, 'config.json');
  if (isFile(config)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(fs.readFileSync(config, 'utf8'));
    } catch {
      return undefined; // Not JSON: not an engine; the caller says so.
    }
    if (parsed && typeof parsed === 'object' && 'pretrained_config' in parsed && 'build_config' in parsed) return 'trtllm';
    if (isCheckpoint(dir)) return 'native';
  }
  return undefined;
}

/** A Hugging Face checkpoint folder: config.json and safetensors weights. */
export function isCheckpoint(dir: string): boolean {
  if (!isFile(path.join(dir, 'config.json'))) return false;
  try {
    return fs.readdirSync(dir).some((f) => f.endsWith('.safetensors'));
  } catch {
    return false;
  }
}

/** Checks that gpt_model_path is an engine folder and says which kind, or explains the fix. */
export function requireEngineFolder(dir: string, where: string): EngineBackend {
  if (!fs.existsSync(dir)) {
    throw badInput(
      `${where}: engine folder ${dir} does not exist`,
      'build one with `grpst build --model_dir <hf checkpoint> --output_dir <engine dir>`; a relative path resolves from the deploy folder (`grpst serve`: --deploy_path, default the current folder), and a .mar carries its engine only when archived with --include_engine',
    );
  }
  if (!fs.statSync(dir).isDirectory()) {
    throw badInput(`${where}: ${dir} is not a folder`, 'gpt_model_path names the engine folder that `grpst build` wrote');
  }
  const backend = engineBackendOf(dir);
  if (!backend) {
    throw badInput(
      `${where}: ${dir} is not an engine folder (no engine.json, no TensorRT-LLM config.json or rank0.engine, no Hugging Face checkpoint)`,
      'point gpt_model_path at the folder `grpst build --output_dir` wrote',
    );
  }
  checkServedCheckpoint(dir, where);
  return backend;
}

/**
 * A checkpoint folder is served as it lies, so its config.json is read here, before a server
 * listens, rather than when its engine loads: a model that is not Qwen3 (or a damaged config) is
 * named with its fix, and a checkpoint with a quantization_config (AutoAWQ, block-scaled FP8)
 * needs a build to convert its weights.
 */
export function checkServedCheckpoint(dir: string, where: string): void {
  if (isFile(path.join(dir, 'engine.json')) || !isCheckpoint(dir)) return;
  const { hf } = withWhere(where, () => readHfConfig(path.join(dir, 'config.json')));
  const quantization = hf.quantization_config as { quant_method?: unknown } | undefined;
  if (!quantization) return;
  const out = `${dir.replace(/[/\\]+$/, '')}-engine`;
  throw badInput(
    `${where}: ${dir} is a quantized checkpoint (quantization_config.quant_method "${String(quantization.quant_method ?? '')}"), which grpst serves only once built into an engine`,
    `run \`grpst build --model_dir ${dir} --output_dir ${out}\` and serve ${out}`,
  );
}

function withWhere<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof GrpstError) throw new GrpstError(`${where}: ${e.message}`, { hint: e.hint, exitCode: e.exitCode, cause: e });
    throw e;
  }
}

/** tokenizer_path may name the folder or (as older seed confs do) tokenizer.json itself. */
export function requireTokenizerDir(p: string, where: string): string {
  if (isFile(p) && path.basename(p) === 'tokenizer.json') return path.dirname(p);
  if (!fs.existsSync(p)) {
    throw badInput(`${where}: tokenizer folder ${p} does not exist`, 'point tokenizer_path at the folder holding tokenizer.json (the engine folder has one)');
  }
  if (!isFile(path.join(p, 'tokenizer.json'))) {
    throw badInput(`${where}: ${p} has no tokenizer.json`, 'point tokenizer_path at the Hugging Face checkpoint or the engine folder, both hold tokenizer.json');
  }
  return p;
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}
