// `grpst build recipes/NAME.yml`: the same settings as the flags, written down once.
// Paths in a recipe are taken as written: relative ones resolve against the working folder,
// like the flags' (a recipe checked into a project is run from the project's root).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { badInput } from '../util/errors.js';
import { parseSettings, type BuildSettingsInput } from './options.js';
import { parseModelRef } from '../hub/hub-env.js';

/** Keys that document a recipe and are not settings. */
const descriptiveKeys = ['name', 'description'] as const;

export interface Recipe {
  file: string;
  name?: string;
  description?: string;
  settings: BuildSettingsInput;
}

export function loadRecipe(file: string): Recipe {
  // `grpst build /tmp/Qwen3-8B` (the checkpoint where the recipe goes) is the likely mistake.
  if (existsSync(file) && statSync(file).isDirectory()) {
    throw badInput(
      `${file} is a folder, not a recipe file`,
      `pass the checkpoint as --model_dir ${file} (with --output_dir DIR), or give the path of a .yml recipe`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw badInput(
      code === 'ENOENT' ? `recipe ${file} does not exist` : `cannot read recipe ${file}: ${(e as Error).message}`,
      'pass the path of a .yml recipe (the ones shipped with grpst are in recipes/)',
    );
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` (line ${e.linePos[0].line})` : '';
    throw badInput(`recipe ${file} is not valid YAML${where}: ${(e as Error).message.split('\n')[0]}`, 'write one `key: value` per line, as in recipes/qwen3-8b-int4-awq.yml');
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badInput(`recipe ${file} must be a mapping of settings (model_dir: ..., qformat: ...)`, 'start from one of the recipes in recipes/, e.g. recipes/qwen3-8b-int4-awq.yml');
  }
  const body: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  const meta: Record<string, string | undefined> = {};
  for (const k of descriptiveKeys) {
    if (k in body) {
      if (typeof body[k] !== 'string') throw badInput(`recipe ${file}: ${k} must be text`, `quote it: ${k}: "..."`);
      meta[k] = body[k] as string;
      delete body[k];
    }
  }
  return { file, name: meta.name, description: meta.description, settings: parseSettings(body, `recipe ${file}`) };
}

/** Recipe keys that name files or folders that must exist. */
const inputPathKeys = ['model_dir', 'reference_dir', 'calib_dataset', 'eval_dataset', 'merge_lora'] as const;

/**
 * A relative input path the recipe gives (and no flag overrides) that is not there from the
 * current folder: said with the recipe's name and the folder it was resolved against, since a
 * recipe run from elsewhere than its project's root is the usual cause.
 */
export function checkRecipePaths(file: string, recipe: BuildSettingsInput, flags: BuildSettingsInput): void {
  for (const key of inputPathKeys) {
    const p = recipe[key];
    if (typeof p !== 'string' || flags[key] !== undefined || isAbsolute(p) || existsSync(p)) continue;
    // A checkpoint or adapter named by its Hugging Face id (Qwen/Qwen3-8B) is found in the hub cache or pulled.
    if ((key === 'model_dir' || key === 'reference_dir' || key === 'merge_lora') && parseModelRef(p)) continue;
    throw badInput(
      `recipe ${file}: ${key} ${p} does not exist from the current folder (${resolve(p)}); relative paths in a recipe resolve against the folder grpst runs in`,
      `run grpst from the folder the recipe's paths start at (usually the project's root), write ${key} as an absolute path, or pass --${key}`,
    );
  }
}
