// Calibration and held-out text: the sets shipped in data/, or the user's file (.txt: passages
// separated by blank lines; .jsonl: one JSON string or {"text": ...} object per line).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { badInput } from '../../util/errors.js';

/**
 * data/ at the repository root: the nearest folder above this module that holds the shipped
 * calibration text (src/build/native and dist/build/native are three levels down, a bundled CLI
 * such as the GPU machine's .carry/js/grpst.mjs two).
 */
export const shippedDataDir = findDataDir(dirname(fileURLToPath(import.meta.url)));

export function findDataDir(from: string): string {
  for (let dir = from, up = 0; up < 6; up++, dir = dirname(dir)) {
    if (existsSync(join(dir, 'data', 'calibration.txt'))) return join(dir, 'data');
    if (dirname(dir) === dir) break;
  }
  return join(from, '..', '..', '..', 'data');
}

export interface TextSet {
  /** "builtin" for the shipped sets, else the file's name. */
  name: string;
  sha256: string;
  passages: string[];
}

const textKeys = ['text', 'content', 'article', 'prompt'];

export function loadTextSet(file: string | undefined, shipped: 'calibration' | 'heldout'): TextSet {
  const path = file ?? join(shippedDataDir, `${shipped}.txt`);
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw badInput(code === 'ENOENT' ? `dataset ${path} does not exist` : `cannot read dataset ${path}: ${(e as Error).message}`, 'pass a .txt file (passages separated by blank lines) or a .jsonl file ({"text": ...} per line)');
  }
  const sha256 = createHash('sha256').update(raw).digest('hex');
  const passages = path.endsWith('.jsonl') ? parseJsonl(raw, path) : raw.split(/\n[ \t]*\n/).map((p) => p.trim()).filter(Boolean);
  if (passages.length === 0) throw badInput(`dataset ${path} holds no text`, 'give it at least one passage');
  return { name: file ? basename(file) : 'builtin', sha256, passages };
}

function parseJsonl(raw: string, path: string): string[] {
  const out: string[] = [];
  raw.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw badInput(`${path}:${i + 1} is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof v === 'string') return void out.push(v);
    const key = v && typeof v === 'object' ? textKeys.find((k) => typeof (v as Record<string, unknown>)[k] === 'string') : undefined;
    if (!key) throw badInput(`${path}:${i + 1} has no text`, `each line must be a JSON string or an object with one of: ${textKeys.join(', ')}`);
    out.push((v as Record<string, string>)[key]);
  });
  return out;
}

/**
 * Token sequences for calibration: up to `count` passages, each cut at `maxLen` tokens. When the
 * set has fewer passages than asked, that is all there is (TensorRT-LLM's quantize.py behaves the same).
 */
export function calibrationSequences(set: TextSet, encode: (text: string) => number[], count: number, maxLen: number): Int32Array[] {
  return set.passages.slice(0, count).map((p) => Int32Array.from(encode(p).slice(0, maxLen))).filter((s) => s.length > 1);
}

/** Held-out text as one token stream of at most `maxTokens` (passages joined by blank lines). */
export function heldoutTokens(set: TextSet, encode: (text: string) => number[], maxTokens: number): Int32Array {
  return Int32Array.from(encode(set.passages.join('\n\n')).slice(0, maxTokens));
}
