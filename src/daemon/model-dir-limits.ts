// `grpst serve --model_dir DIR` with vLLM's sizing flags: --max_model_len (the longest prompt plus
// answer), --max_num_seqs (sequences decoding together) and --max_num_batched_tokens (tokens one
// step computes). They lower what the folder allows, never raise it: an engine's build limits
// (engine.json max_seq_len / max_batch_size / max_num_tokens), a checkpoint's positions
// (config.json). Checked here so the refusal names the flag the user typed, not the conf key it
// becomes.
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../util/errors.js';

export interface ModelDirLimits {
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
}

/** Each flag, the engine.json limit it may not pass, and the grpst build flag that raises that limit. */
const engineLimits = [
  ['maxModelLen', '--max_model_len', 'max_seq_len', 'tokens'],
  ['maxNumSeqs', '--max_num_seqs', 'max_batch_size', 'sequences'],
  ['maxNumBatchedTokens', '--max_num_batched_tokens', 'max_num_tokens', 'tokens'],
] as const;

export async function checkModelDirLimits(dir: string, asked: ModelDirLimits): Promise<void> {
  const abs = path.resolve(dir);
  if (fs.existsSync(path.join(abs, 'engine.json'))) {
    const { readManifest } = await import('../build/manifest.js');
    const limits = readManifest(abs).limits;
    for (const [field, flag, key, unit] of engineLimits) {
      const value = asked[field];
      if (value !== undefined && value > limits[key]) {
        throw badInput(
          `${flag} ${value} is above the engine's build limit of ${limits[key]} ${unit} (${key} in ${path.join(abs, 'engine.json')})`,
          `pass ${flag} ${limits[key]} or less, or rebuild the engine with a larger --${key} (grpst build)`,
        );
      }
    }
    return;
  }
  const config = path.join(abs, 'config.json');
  if (asked.maxModelLen === undefined || !fs.existsSync(config)) return; // not a model folder: --model_dir's own check names it
  const { pastContext, readHfConfig } = await import('../model/config.js');
  const { model } = readHfConfig(config);
  if (asked.maxModelLen > model.maxContext) throw badInput(pastContext('--max_model_len', asked.maxModelLen, model), `pass --max_model_len ${model.maxContext} or less`);
}
