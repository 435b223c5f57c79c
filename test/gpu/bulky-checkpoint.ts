// A checkpoint whose weights are plain to see in a process's memory: 240 MiB of bf16 in one file,
// where an engine of its small vocabulary (4,096) allocates a few MB on the host. Written in
// chunks, so writing it leaves nothing of its size in this process. Its matrices repeat one random
// block: what the checks that use it measure is where the bytes are, not what they compute.
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { safetensorsHeader } from '../../src/model/safetensors.js';
import { configJson, tensorSpecs, tensorValues, type TinySpec } from '../../src/model/tiny-checkpoint.js';
import { cacheDir } from '../helpers/fixtures.js';

const spec: TinySpec = {
  seed: 7007,
  hidden_size: 1024,
  intermediate_size: 4096,
  num_hidden_layers: 8,
  num_attention_heads: 8,
  num_key_value_heads: 2,
  head_dim: 128,
  tie_word_embeddings: true,
  rope_theta: 1_000_000,
  rope_scaling: null,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 4096,
  shards: 1,
};
const vocab = 4096;
const chunkValues = 1 << 20;  // 2 MB of bf16 per write
const version = 'bulky-1';

export interface BulkyCheckpoint {
  dir: string;
  /** Its one weights file, and that file's size in bytes. */
  file: string;
  bytes: number;
}

/** The checkpoint under `root` (default .cache/fixtures), written on first use (a second call finds it). */
export function bulkyCheckpoint(root = cacheDir): BulkyCheckpoint {
  const dir = join(root, 'bulky');
  const file = join(dir, 'model.safetensors');
  const tensors = tensorSpecs(spec, vocab).map(([name, shape, kind]) => ({ name, shape, kind, nbytes: 2 * shape.reduce((a, b) => a * b, 1) }));
  const header = safetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: 'BF16' as const, shape: t.shape, nbytes: t.nbytes })));
  const bytes = header.byteLength + tensors.reduce((a, t) => a + t.nbytes, 0);
  if (existsSync(join(dir, version))) return { dir, file, bytes };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // Matrices: values within 1.73 / sqrt(fan in), as the fixtures' linear layers; norms: 1.
  const block = new Uint8Array(tensorValues(spec.seed, 'block', chunkValues, 1.7320508 / Math.sqrt(spec.hidden_size), 0).buffer);
  const ones = new Uint8Array(new Uint16Array(chunkValues).fill(0x3f80).buffer);
  const fd = openSync(join(tmp, 'model.safetensors'), 'w');
  try {
    writeSync(fd, header);
    for (const t of tensors) {
      const source = t.kind === 'norm' ? ones : block;
      for (let done = 0; done < t.nbytes; ) done += writeSync(fd, source, 0, Math.min(source.byteLength, t.nbytes - done));
    }
  } finally {
    closeSync(fd);
  }
  // Token ids inside the small vocabulary.
  writeFileSync(join(tmp, 'config.json'), JSON.stringify({ ...configJson(spec, vocab), bos_token_id: 1, eos_token_id: 2 }, null, 2));
  writeFileSync(join(tmp, version), '');
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir, file, bytes };
}
