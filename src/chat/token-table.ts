// The raw bytes of every token id, packed in one buffer. Decoding concatenates them; constrained
// decoding walks them to build masks over the vocabulary.
import { writeByteLevel } from './byte-level.js';

export class TokenTable {
  private readonly data: Uint8Array;
  private readonly offsets: Uint32Array;
  private views: Uint8Array[] | null = null;

  /**
   * @param bpeTokens id -> token in the byte-level alphabet (one byte per character)
   * @param addedTokens id -> added token text (its bytes are its UTF-8)
   */
  constructor(size: number, bpeTokens: readonly (string | undefined)[], addedTokens: ReadonlyMap<number, string>) {
    const encoder = new TextEncoder();
    const added = new Map<number, Uint8Array>();
    for (const [id, text] of addedTokens) added.set(id, encoder.encode(text));
    this.offsets = new Uint32Array(size + 1);
    let total = 0;
    for (let id = 0; id < size; id++) {
      this.offsets[id] = total;
      total += added.get(id)?.length ?? bpeTokens[id]?.length ?? 0;
    }
    this.offsets[size] = total;
    this.data = new Uint8Array(total);
    for (let id = 0; id < size; id++) {
      const a = added.get(id);
      if (a) this.data.set(a, this.offsets[id]);
      else if (bpeTokens[id] !== undefined) writeByteLevel(bpeTokens[id]!, this.data, this.offsets[id]);
    }
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
