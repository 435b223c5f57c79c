// BPE merge ranks in an open-addressing hash table on typed arrays: (left id, right id) ->
// (rank, merged id). A Map keyed by left * 2^18 + right would hash heap doubles (the keys do not
// fit a small integer), several times slower in the merge loop that dominates encoding.

export class MergeTable {
  private readonly mask: number;
  private readonly lefts: Int32Array;
  private readonly rights: Int32Array;
  private readonly ranks: Int32Array;
  private readonly merged: Int32Array;
  /** Number of pairs stored. */
  size = 0;

  constructor(expectedPairs: number) {
    let cap = 1024;
    while (cap < expectedPairs * 2) cap <<= 1;
    this.mask = cap - 1;
    this.lefts = new Int32Array(cap).fill(-1);
    this.rights = new Int32Array(cap);
    this.ranks = new Int32Array(cap);
    this.merged = new Int32Array(cap);
  }

  private slot(left: number, right: number): number {
    let h = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right, 0x85ebca77)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (this.lefts[i] !== -1 && (this.lefts[i] !== left || this.rights[i] !== right)) i = (i + 1) & this.mask;
    return i;
  }

  /** Stores a pair; a pair listed twice keeps its last rank, as tokenizers does. */
  set(left: number, right: number, rank: number, mergedId: number): void {
    const i = this.slot(left, right);
    if (this.lefts[i] === -1) this.size++;
    this.lefts[i] = left;
    this.rights[i] = right;
    this.ranks[i] = rank;
    this.merged[i] = mergedId;
  }

  /** Slot of the pair, or -1 when the pair never merges. */
  find(left: number, right: number): number {
    const i = this.slot(left, right);
    return this.lefts[i] === -1 ? -1 : i;
  }

  rankAt(slot: number): number {
    return this.ranks[slot];
  }

  mergedAt(slot: number): number {
    return this.merged[slot];
  }
}
