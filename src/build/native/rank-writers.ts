// One weight file per tensor-parallel rank (rank<r>.weights), written side by side in engine
// order: each tensor goes to every rank whole, or cut into one slice per rank (src/build/shard.ts).
import type { ManifestLinear, ManifestRank } from '../manifest.js';
import type { Staging } from '../staging.js';
import { rankShard, shardLinear, sliceRows, type RankShard } from '../shard.js';
import type { ModelConfig } from '../../model/config.js';
import type { PackedTensor, QuantizedLinear } from '../../quant/types.js';
import { WeightFileWriter } from './weight-writer.js';

export interface RankFile {
  file: string;
  bytes: number;
  sha256: string;
}

export class RankWriters {
  private readonly writers: WeightFileWriter[] = [];
  private readonly linears: Record<string, ManifestLinear>[] = [];

  constructor(staging: Staging, readonly tp: number) {
    try {
      for (let r = 0; r < tp; r++) {
        this.writers.push(new WeightFileWriter(staging, `rank${r}.weights`));
        this.linears.push({});
      }
    } catch (e) {
      this.discard();
      throw e;
    }
  }

  /** The same tensor on every rank (norms). */
  replicated(t: PackedTensor): void {
    for (const w of this.writers) w.add(t);
  }

  /** Rank r gets rows [r*R/N, (r+1)*R/N) (the vocabulary of the embeddings). */
  rows(t: PackedTensor): void {
    this.writers.forEach((w, r) => w.add(this.tp === 1 ? t : sliceRows(t, r, this.tp)));
  }

  linear(module: string, q: QuantizedLinear, split: 'rows' | 'columns'): void {
    this.writers.forEach((w, r) => {
      const part = this.tp === 1 ? q : shardLinear(module, q, split, r, this.tp);
      for (const t of part.tensors) w.add(t);
      this.linears[r][module] = part.entry;
    });
  }

  /** A linear entry whose tensor another entry already wrote (tied lm_head), cut by rows. */
  entryOnly(module: string, entry: ManifestLinear): void {
    this.linears.forEach((l) => {
      l[module] = { ...entry, out_features: entry.out_features / this.tp };
    });
  }

  close(model: ModelConfig): { ranks: ManifestRank[]; files: RankFile[] } {
    const ranks: ManifestRank[] = [];
    const files: RankFile[] = [];
    this.writers.forEach((w, r) => {
      const { bytes, sha256 } = w.close();
      files.push({ file: w.file, bytes, sha256 });
      const shard: RankShard | undefined = this.tp > 1 ? rankShard(model, this.tp, r) : undefined;
      ranks.push({ rank: r, file: w.file, tensors: w.tensors, linears: this.linears[r], ...(shard ? { shard } : {}) });
    });
    return { ranks, files };
  }

  discard(): void {
    for (const w of this.writers) w.discard();
  }
}
