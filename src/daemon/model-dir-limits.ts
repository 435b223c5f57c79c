// `grpst serve --model_dir DIR` with vLLM's sizing flags: --max_model_len (the longest prompt plus
// answer), --max_num_seqs (sequences decoding together) and --max_num_batched_tokens (tokens one
// step computes). They lower what the folder allows, never raise it: an engine's build limits
// (engine.json max_seq_len / max_batch_size / max_num_tokens), a checkpoint's positions
// (config.json). Checked here so the refusal names the flag the user typed, not the conf key it
// becomes.
import fs from 'node:fs';
import path from 'node:path';
import { limitExcesses, type LimitKey } from '../engine/build-limits.js';
import { badInput } from '../util/errors.js';

export interface ModelDirLimits {
  maxModelLen?: number;
  maxNumSeqs?: number;
  maxNumBatchedTokens?: number;
}

/** The flag that sets each engine.json limit here, and what the limit counts. */
const flagOf: Record<LimitKey, [flag: string, unit: string]> = {
  max_seq_len: ['--max_model_len', 'tokens'],
  max_batch_size: ['--max_num_seqs', 'sequences'],
  max_num_tokens: ['--max_num_batched_tokens', 'tokens'],
};

export async function checkModelDirLimits(dir: string, asked: ModelDirLimits): Promise<void> {
  const abs = path.resolve(dir);
  if (fs.existsSync(path.join(abs, 'engine.json'))) {
    const { readManifest } = await import('../build/manifest.js');
    // The load's own rule (engine/build-limits.ts), worded with the flag the user typed.
    const [excess] = limitExcesses(readManifest(abs).limits, { maxSeqLen: asked.maxModelLen, maxBatchSize: asked.maxNumSeqs, maxNumTokens: asked.maxNumBatchedTokens });
    if (excess) {
      const [flag, unit] = flagOf[excess.key];
      throw badInput(
        `${flag} ${excess.asked} is above the engine's build limit of ${excess.built} ${unit} (${excess.key} in ${path.join(abs, 'engine.json')})`,
        `pass ${flag} ${excess.built} or less, or rebuild the engine with a larger --${excess.key} (grpst build)`,
      );
    }
    return;
  }
  const config = path.join(abs, 'config.json');
  if (asked.maxModelLen === undefined || !fs.existsSync(config)) return; // not a model folder: --model_dir's own check names it
  const { pastContext, readHfConfig } = await import('../model/config.js');
  const { model } = readHfConfig(config);
  if (asked.maxModelLen > model.maxContext) throw badInput(pastContext('--max_model_len', asked.maxModelLen, model), `pass --max_model_len ${model.maxContext} or less`);
}
