// `grpst serve --model_dir DIR --max_model_len N`, vLLM's flag: the longest prompt plus answer the
// server takes. It lowers what the folder allows, never raises it: an engine's build limit
// (engine.json max_seq_len), a checkpoint's positions (config.json). Checked here so the refusal
// names the flag the user typed, not the conf key it becomes.
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../util/errors.js';

export async function checkMaxModelLen(dir: string, asked: number): Promise<void> {
  const abs = path.resolve(dir);
  if (fs.existsSync(path.join(abs, 'engine.json'))) {
    const { readManifest } = await import('../build/manifest.js');
    const built = readManifest(abs).limits.max_seq_len;
    if (asked > built) {
      throw badInput(
        `--max_model_len ${asked} is above the engine's build limit of ${built} tokens (max_seq_len in ${path.join(abs, 'engine.json')})`,
        `pass --max_model_len ${built} or less, or rebuild the engine with a larger --max_seq_len (grpst build)`,
      );
    }
    return;
  }
  const config = path.join(abs, 'config.json');
  if (!fs.existsSync(config)) return; // not a model folder: --model_dir's own check names it
  const { pastContext, readHfConfig } = await import('../model/config.js');
  const { model } = readHfConfig(config);
  if (asked > model.maxContext) throw badInput(pastContext('--max_model_len', asked, model), `pass --max_model_len ${model.maxContext} or less`);
}
