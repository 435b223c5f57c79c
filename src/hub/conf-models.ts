// Hugging Face ids in an inference conf: `gpt_model_path: Qwen/Qwen3-8B` (also tokenizer_path, a
// draft model's speculative_config.model and lora_modules paths), as vLLM takes `model:` in its
// config file. A value that is a path from the deploy folder stays a path; one that is not, and is
// shaped like an id, names the model. The foreground commands (grpst start, grpst serve
// --inference_conf) pull what is missing before anything else; the server itself only looks in
// the cache (conf-paths.ts), so a daemon never downloads inside its start-up wait.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { Reporter } from '../build/progress.js';
import { namesHubModelFrom } from './conf-paths.js';
import { cachedOrPulled } from './model-source.js';

/** The values of an inference conf's models[0].inferer_args that name models or folders. */
function modelValues(conf: unknown): string[] {
  const args = (conf as { models?: { inferer_args?: Record<string, unknown> }[] } | null)?.models?.[0]?.inferer_args;
  if (!args || typeof args !== 'object') return [];
  const out: unknown[] = [args.gpt_model_path, args.tokenizer_path, (args.speculative_config as { model?: unknown } | undefined)?.model];
  for (const entry of Array.isArray(args.lora_modules) ? args.lora_modules : []) {
    if (typeof entry === 'string' && entry.includes('=')) out.push(entry.slice(entry.indexOf('=') + 1));
    else if (entry && typeof entry === 'object') out.push((entry as { path?: unknown }).path);
  }
  return out.filter((v): v is string => typeof v === 'string');
}

/** The Hub ids the conf file names that are not paths from `base`, each once. */
export function confHubIds(confFile: string, base: string): string[] {
  let conf: unknown;
  try {
    conf = parse(fs.readFileSync(confFile, 'utf8'));
  } catch {
    return []; // the conf's own validation says what is wrong with it
  }
  return [...new Set(modelValues(conf).filter((v) => namesHubModelFrom(base, v)))];
}

/**
 * Pulls (or finds cached) every Hub model the conf names, before the server is started. `base` is
 * where the conf's relative paths are looked for now; `shownBase` the folder messages name (grpst
 * start looks in its staging copy of what becomes the deploy folder).
 */
export async function pullConfModels(confFile: string, base: string, reporter: () => Reporter, userAgent: string, shownBase = base): Promise<void> {
  const ids = confHubIds(confFile, base);
  // The reporter (a spinner on a terminal) is made only when there is something to fetch.
  const shown = ids.length > 0 ? reporter() : undefined;
  for (const id of ids) await cachedOrPulled(id, { flag: path.basename(confFile), userAgent, reporter: shown, base: shownBase });
}
