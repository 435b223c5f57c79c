// The raw bytes of every token id, packed in one buffer. Decoding concatenates them; constrained
// decoding walks them to build masks over the vocabulary.

export class TokenTable {
  private readonly data: Uint8Array;
  private readonly offsets: Uint32Array;
  private views: Uint8Array[] | null = null;

  constructor(size: number, bytesOf: (id: number) => Uint8Array | undefined) {
    const parts: (Uint8Array | undefined)[] = new Array(size);
    let total = 0;
    for (let id = 0; id < size; id++) {
      parts[id] = bytesOf(id);
      total += parts[id]?.length ?? 0;
    }
    this.data = new Uint8Array(total);
    this.offsets = new Uint32Array(size + 1);
    let at = 0;
    for (let id = 0; id < size; id++) {
      this.offsets[id] = at;
      const p = parts[id];
      if (p) {
        this.data.set(p, at);
        at += p.length;
      }
    }
    this.offsets[size] = at;
  }

  get size(): number {
    return this.offsets.length - 1;
  }

  bytes(id: number): Uint8Array {
    if (!(id >= 0 && id < this.size)) return this.data.subarray(0, 0);
    return this.data.subarray(this.offsets[id], this.offsets[id + 1]);
  }

  all(): readonly Uint8Array[] {
    if (this.views === null) {
      this.views = new Array(this.size);
      for (let id = 0; id < this.size; id++) this.views[id] = this.bytes(id);
    }
    return this.views;
  }

  packed(): { data: Uint8Array; offsets: Uint32Array } {
    return { data: this.data, offsets: this.offsets };
  }

  /** Bytes of the ids joined; ids marked in `skip` (and ids without a token) are left out. */
  concat(ids: ArrayLike<number>, skip: Uint8Array | null): Uint8Array {
    const size = this.size;
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id >= 0 && id < size && !(skip && skip[id])) total += this.offsets[id + 1] - this.offsets[id];
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id >= 0 && id < size && !(skip && skip[id])) {
        const s = this.offsets[id];
        const e = this.offsets[id + 1];
        out.set(this.data.subarray(s, e), at);
        at += e - s;
      }
    }
    return out;
  }
}
