// Reads a YAML conf with errors a person can act on: file, line and column for syntax errors,
// and a way to point at the line of any key path afterwards (schema errors, unknown keys).
import fs from 'node:fs';
import { Document, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { badInput } from '../util/errors.js';

/** Confs are small; anything bigger is a mistake (or an attack) and is refused before parsing. */
const maxConfBytes = 1024 * 1024;
/** Alias expansions allowed per document: a "billion laughs" conf fails instead of eating memory. */
const maxAliasCount = 64;

export interface YamlFile {
  /** The path as the user wrote it, for messages. */
  shown: string;
  data: unknown;
  /** "file:line:col" of a key path, or just the file when it cannot be found. */
  where(keyPath: readonly (string | number)[]): string;
}

export function readYamlFile(file: string, shown: string = file, what = 'conf'): YamlFile {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw badInput(`${what} ${shown} is not a file`, `pass the path of a YAML ${what} file`);
    if (stat.size > maxConfBytes) {
      throw badInput(`${what} ${shown} is ${stat.size} bytes; a conf is at most ${maxConfBytes}`, 'check that the path names a YAML conf');
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw badInput(`${what} ${shown} does not exist`, `check the path (relative paths start from ${process.cwd()})`);
    }
    throw err;
  }
  return parseYamlText(text, shown);
}

export function parseYamlText(text: string, shown: string): YamlFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0] ?? (first.pos ? lines.linePos(first.pos[0]) : undefined);
    const at = pos ? `${shown}:${pos.line}:${pos.col}` : shown;
    const reason = first.message.split(' at line ')[0];
    throw badInput(`${at}: YAML syntax error: ${reason}`, `fix the YAML at line ${pos?.line ?? '?'}, column ${pos?.col ?? '?'}`);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount });
  } catch (err) {
    throw badInput(`${shown}: ${(err as Error).message}`, 'write the values out instead of expanding anchors and aliases many times');
  }
  return {
    shown,
    data,
    where(keyPath) {
      const offset = offsetOf(doc, keyPath);
      if (offset === undefined) return shown;
      const { line, col } = lines.linePos(offset);
      return `${shown}:${line}:${col}`;
    },
  };
}

// Walks the document to the deepest node of keyPath that exists and returns the offset of its
// key (for a map entry) or of the item (for a sequence index).
function offsetOf(doc: Document, keyPath: readonly (string | number)[]): number | undefined {
  let node: unknown = doc.contents;
  let found: number | undefined;
  for (const key of keyPath) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
      if (!pair) break;
      found = (pair.key as Node).range?.[0] ?? found;
      node = pair.value;
    } else if (isSeq(node) && typeof key === 'number') {
      const item = node.items[key] as Node | undefined;
      if (!item) break;
      found = item.range?.[0] ?? found;
      node = item;
    } else {
      break;
    }
  }
  return found;
}

/** models[0].inferer_args.top_k: the spelling used in every conf message. */
export function formatKeyPath(keyPath: readonly PropertyKey[]): string {
  let out = '';
  for (const key of keyPath) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(top level)' : out;
}
