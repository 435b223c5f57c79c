// `grpst build --merge_lora DIR`: a PEFT LoRA adapter merged into the checkpoint's weights as the
// build reads them (W + scale * B A, in fp32, before any rounding or quantizing), as PEFT's
// merge_and_unload() does. The engine is then the adapted model in any format and on any backend
// of the runtime (the GPU's included), with no adapter left to apply at run time.
import { basename } from 'node:path';
import { loraModuleName, loraShapeOf, loraTargets, readLoraAdapter, type LoraDelta } from '../../engine/lora.js';
import type { Checkpoint } from '../../model/checkpoint.js';
import { repoIdOfSnapshot } from '../../hub/hub-cache.js';

export interface MergedLora {
  /** The adapter folder's name (its path is not recorded: engines move between machines). */
  name: string;
  path: string;
  rank: number;
  targets: string[];
  /** By the checkpoint tensor each one adapts (model.layers.N.self_attn.q_proj.weight, ...). */
  deltas: Map<string, LoraDelta>;
}

/** Reads and checks the adapter for this checkpoint (shapes, PEFT's scales), keyed by the tensors it adapts. */
export function readMergedLora(dir: string, checkpoint: Checkpoint): MergedLora {
  const adapter = readLoraAdapter(dir, loraShapeOf(checkpoint.model));
  const deltas = new Map<string, LoraDelta>();
  for (const d of adapter.deltas) {
    deltas.set(`${loraModuleName(d.layer, loraTargets[d.target]!)}.weight`, d);
  }
  return { name: repoIdOfSnapshot(adapter.path) ?? basename(adapter.path), path: adapter.path, rank: adapter.rank, targets: adapter.targets, deltas };
}

/** w [out, in] += d.scale * B [out, r] x A [r, in], in place. */
export function mergeDelta(w: Float32Array, d: LoraDelta): Float32Array {
  const r = d.rank;
  const inF = d.a.length / r;
  const out = d.b.length / r;
  if (w.length !== out * inF) throw new Error(`LoRA merge: a [${out}, ${inF}] update for a tensor of ${w.length} values`);
  const row = new Float32Array(inF);
  for (let o = 0; o < out; o++) {
    // The row of B A first, then scaled and added: PEFT's (B @ A) * scaling added to the weight.
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const b = d.b[o * r + k]!;
      if (b === 0) continue;
      const a = d.a.subarray(k * inF, (k + 1) * inF);
      for (let i = 0; i < inF; i++) row[i]! += b * a[i]!;
    }
    const base = o * inF;
    for (let i = 0; i < inF; i++) w[base + i]! += row[i]! * d.scale;
  }
  return w;
}
