// The model bench:serve runs by default: random weights in the shape of Qwen3-0.6B (28 layers,
// hidden 1024, 16 query / 8 KV heads of 128, tied embeddings, the real vocabulary), written once
// into .cache/bench. Speed depends only on the shapes, so random weights measure what the real
// checkpoint would; ignore_eos keeps output lengths fixed whatever the weights say.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyCheckpoint, type TinySpec } from '../src/model/tiny-checkpoint.js';
import { repoRoot, specFile, tokenizerDir } from '../test/helpers/fixtures.js';

export const qwen3_06bSpec: TinySpec = {
  seed: 600,
  hidden_size: 1024,
  intermediate_size: 3072,
  num_hidden_layers: 28,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 128,
  tie_word_embeddings: true,
  rope_theta: 1_000_000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 40960,
  shards: 1,
};

/** Folder of the checkpoint, written on first use (about 1.2 GB). */
export function qwen3_06bShapedCheckpoint(): string {
  const dir = join(repoRoot, '.cache', 'bench', 'qwen3-0.6b-random');
  const stamp = join(dir, 'weights.sha256');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').length === 64) return dir;
  const f = specFile();
  process.stderr.write(`writing a Qwen3-0.6B-shaped random checkpoint to ${dir} ...\n`);
  const digest = writeTinyCheckpoint(dir, qwen3_06bSpec, f.vocab_size, f.init, { tokenizerDir });
  writeFileSync(stamp, digest);
  return dir;
}
