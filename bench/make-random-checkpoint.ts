// A Qwen3-0.6B-shaped checkpoint with deterministic random weights, written locally (no
// download, no Python) for the CPU benchmarks: the real model's shapes (hidden 1024, 28 layers,
// 16 query heads x 128, 8 KV heads, MLP 3072, tied embeddings, vocabulary 151,936). Speed
// depends only on the shapes, so random weights measure what the real checkpoint would.
import { closeSync, copyFileSync, cpSync, existsSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsHeader } from '../src/model/safetensors.js';
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

/**
 * Qwen3-30B-A3B's shapes (hidden 2048, 32 query heads x 128, 4 KV heads, 128 experts of 768 with
 * 8 per token, untied head, vocabulary 151,936) in `layers` of its 48 layers: every step does
 * what the real model does per layer, and the whole model would not fit this machine's disk and
 * memory (61 GB). Four layers write 5.5 GB under .cache/bench on first use.
 */
export const qwen3_30bA3bSpec = (layers: number): TinySpec => ({
  seed: 3030,
  hidden_size: 2048,
  intermediate_size: 6144,
  num_hidden_layers: layers,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  head_dim: 128,
  tie_word_embeddings: false,
  rope_theta: 1000000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 40960,
  shards: 4,
  moe: { num_experts: 128, num_experts_per_tok: 8, moe_intermediate_size: 768, norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [] },
});

export function randomQwen3MoeSlice(layers = 4): string {
  const dir = join(root, '.cache', 'bench', `qwen3-30b-a3b-random-${layers}-layers`);
  const stamp = join(dir, 'weights.sha256');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').length === 64) return dir;
  const f = specFile();
  process.stderr.write(`writing a Qwen3-30B-A3B-shaped random checkpoint (${layers} of its 48 layers) to ${dir} ...\n`);
  writeFileSync(stamp, writeTinyCheckpoint(dir, qwen3_30bA3bSpec(layers), f.vocab_size, f.init, { tokenizerDir }));
  return dir;
}

/**
 * A pair for speculative decoding with a draft model whose every proposal is right (bench:spec
 * --method draft_model): the target is the Qwen3-0.6B-shaped checkpoint with the output
 * projections of layers 2-27 (o_proj, down_proj) zeroed, so those layers add exactly nothing to
 * the residual stream, and the draft is its first two layers (the same seed: the same embedding,
 * layers 0-1, final norm and head). Both give the same logits, bit for bit on the CPU, while a
 * target step reads all 28 layers' weights and a draft step 2 of them plus the embedding-sized
 * head. What the pair measures is the machinery's cost at full acceptance; a real draft's
 * acceptance scales the gain.
 */
export function speculativePair(): { target: string; draft: string } {
  const base = randomQwen3_0_6b();
  const target = join(root, '.cache', 'bench', 'qwen3-0.6b-random-layers2-28');
  const draft = join(root, '.cache', 'bench', 'qwen3-0.6b-random-layers2');
  const f = specFile();
  if (!existsSync(join(draft, 'weights.sha256'))) {
    process.stderr.write(`writing its 2-layer draft to ${draft} ...\n`);
    writeFileSync(join(draft, 'weights.sha256'), writeTinyCheckpoint(draft, { ...qwen3_0_6bSpec, num_hidden_layers: 2 }, f.vocab_size, f.init, { tokenizerDir }));
  }
  const stamp = join(target, 'silent-layers');
  if (!existsSync(stamp)) {
    process.stderr.write(`writing the target (layers 2-27 silent) to ${target} ...\n`);
    const tmp = `${target}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    cpSync(base, tmp, { recursive: true });
    for (const file of readdirSync(tmp).filter((n) => n.endsWith('.safetensors'))) {
      const path = join(tmp, file);
      copyFileSync(join(base, file), path);
      const fd = openSync(path, 'r+');
      try {
        for (const t of readSafetensorsHeader(path).tensors) {
          const m = /^model\.layers\.(\d+)\.(self_attn\.o_proj|mlp\.down_proj)\.weight$/.exec(t.name);
          if (m && Number(m[1]) >= 2) writeSync(fd, new Uint8Array(t.nbytes), 0, t.nbytes, t.offset);
        }
      } finally {
        closeSync(fd);
      }
    }
    writeFileSync(join(tmp, 'silent-layers'), '2-27: o_proj and down_proj zero\n');
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
  }
  return { target, draft };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log(randomQwen3_0_6b());
}
