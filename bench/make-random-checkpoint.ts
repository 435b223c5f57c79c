// A Qwen3-0.6B-shaped checkpoint with deterministic random weights, written locally (no
// download, no Python) for the CPU benchmarks: the real model's shapes (hidden 1024, 28 layers,
// 16 query heads x 128, 8 KV heads, MLP 3072, tied embeddings, vocabulary 151,936). Speed
// depends only on the shapes, so random weights measure what the real checkpoint would.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTinyCheckpoint, type TinySpec } from '../src/model/tiny-checkpoint.js';
import { specFile, tokenizerDir } from '../test/helpers/fixtures.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export const qwen3_0_6bSpec: TinySpec = {
  seed: 600,
  hidden_size: 1024,
  intermediate_size: 3072,
  num_hidden_layers: 28,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 128,
  tie_word_embeddings: true,
  rope_theta: 1000000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 40960,
  shards: 1,
};

/**
 * The checkpoint folder under .cache/bench, written on first use (1.2 GB). Same seed and
 * initialisation rules as the test fixtures, so every benchmark that uses this folder
 * (bench:cpu, bench:serve) sees the same bytes.
 */
export function randomQwen3_0_6b(): string {
  const dir = join(root, '.cache', 'bench', 'qwen3-0.6b-random');
  const stamp = join(dir, 'weights.sha256');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').length === 64) return dir;
  const f = specFile();
  process.stderr.write(`writing a Qwen3-0.6B-shaped random checkpoint to ${dir} ...\n`);
  const digest = writeTinyCheckpoint(dir, qwen3_0_6bSpec, f.vocab_size, f.init, { tokenizerDir });
  writeFileSync(stamp, digest);
  return dir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(randomQwen3_0_6b());
}
