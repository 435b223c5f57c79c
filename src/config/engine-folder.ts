// Tells a native engine folder (engine.json, from `grpst build`) from a TensorRT-LLM one
// (`grpst build --backend trtllm` / trtllm-build: config.json with pretrained_config and
// build_config, and rank<N>.engine files), so `start` knows which server to launch.
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../util/errors.js';

export type EngineBackend = 'native' | 'trtllm';

export function engineBackendOf(dir: string): EngineBackend | undefined {
  if (isFile(path.join(dir, 'engine.json'))) return 'native';
  if (isFile(path.join(dir, 'rank0.engine'))) return 'trtllm';
  const config = path.join(dir, 'config.json');
  if (isFile(config)) {
    try {
      const parsed = JSON.parse(fs.readFileSync(config, 'utf8')) as Record<string, unknown>;
      if (parsed && typeof parsed === 'object' && 'pretrained_config' in parsed && 'build_config' in parsed) return 'trtllm';
    } catch {
      // Not JSON: not an engine; the caller says so.
    }
  }
  return undefined;
}

/** Checks that gpt_model_path is an engine folder and says which kind, or explains the fix. */
export function requireEngineFolder(dir: string, where: string): EngineBackend {
  if (!fs.existsSync(dir)) {
    throw badInput(
      `${where}: engine folder ${dir} does not exist`,
      'build one with `grpst build --model_dir <hf checkpoint> --output_dir <engine dir>`, or archive with --include_engine so the engine travels in the .mar',
    );
  }
  if (!fs.statSync(dir).isDirectory()) {
    throw badInput(`${where}: ${dir} is not a folder`, 'gpt_model_path names the engine folder that `grpst build` wrote');
  }
  const backend = engineBackendOf(dir);
  if (!backend) {
    const looksLikeCheckpoint = isFile(path.join(dir, 'config.json')) && fs.readdirSync(dir).some((f) => f.endsWith('.safetensors'));
    throw badInput(
      `${where}: ${dir} is not an engine folder (no engine.json, no TensorRT-LLM config.json or rank0.engine)`,
      looksLikeCheckpoint
        ? `that is a Hugging Face checkpoint; build an engine from it: grpst build --model_dir ${dir} --output_dir ${path.join(dir, 'engine')}`
        : 'point gpt_model_path at the folder `grpst build --output_dir` wrote',
    );
  }
  return backend;
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
