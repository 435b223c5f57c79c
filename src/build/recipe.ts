// `grpst build recipes/NAME.yml`: the same settings as the flags, written down once.
// Paths in a recipe are taken as written: relative ones resolve against the working folder,
// like the flags' (a recipe checked into a project is run from the project's root).
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { badInput } from '../util/errors.js';
import { parseSettings, type BuildSettingsInput } from './options.js';

/** Keys that document a recipe and are not settings. */
const descriptiveKeys = ['name', 'description'] as const;

export interface Recipe {
  file: string;
  name?: string;
  description?: string;
  settings: BuildSettingsInput;
}

export function loadRecipe(file: string): Recipe {
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
    throw badInput(`recipe ${file} is not valid YAML${where}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw badInput(`recipe ${file} must be a mapping of settings (model_dir: ..., qformat: ...)`);
  }
  const body: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  const meta: Record<string, string | undefined> = {};
  for (const k of descriptiveKeys) {
    if (k in body) {
      if (typeof body[k] !== 'string') throw badInput(`recipe ${file}: ${k} must be text`);
      meta[k] = body[k] as string;
      delete body[k];
    }
  }
  return { file, name: meta.name, description: meta.description, settings: parseSettings(body, `recipe ${file}`) };
}
