// Byte-level BPE (tokenizers' BPE model with a ByteLevel pre-tokenizer): a piece's UTF-8 bytes
// start as one token each, then the adjacent pair with the lowest merge rank is merged, the
// leftmost first on ties, until no pair merges. Results are cached per piece, because natural
// text repeats its pieces (words with their leading space) over and over.
import { badInput } from '../util/errors.js';
import { BYTE_TO_CHAR } from './byte-level.js';
import { MergeTable } from './merge-table.js';

export interface BpeModelJson {
  type: string;
  vocab: Record<string, number>;
  merges: Array<string | [string, string]>;
  ignore_merges?: boolean;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  dropout?: number | null;
  byte_fallback?: boolean;
}

/** Pieces at most this long merge by rescanning an array; longer ones use a heap. */
const SCAN_LIMIT = 48;
/** Pieces per cache generation (two generations are kept: an LRU approximation without per-hit bookkeeping). */
const CACHE_GENERATION = 40_000;
/** Longer pieces are not cached (long whitespace runs, base64 blobs): they rarely repeat. */
const CACHE_MAX_PIECE = 256;

export class BpeModel {
  /** byte -> id of its single-byte token. */
  private readonly byteIds = new Int32Array(256);
  private readonly merges: MergeTable;
  private readonly ignoreMerges: boolean;
  private cache = new Map<string, number | Int32Array>();
  private oldCache = new Map<string, number | Int32Array>();
  private bytes = new Uint8Array(1024);
  private work = new Int32Array(1024);
  private pairSlots = new Int32Array(1024);
  private readonly encoder = new TextEncoder();

  constructor(
    json: BpeModelJson,
    /** id -> token string in the byte-level alphabet (BPE part of the vocabulary only). */
    readonly tokens: readonly string[],
    private readonly vocab: ReadonlyMap<string, number>,
  ) {
    if (json.dropout || json.continuing_subword_prefix || json.end_of_word_suffix || json.byte_fallback) {
      throw badInput(
        'tokenizer.json: this BPE model uses dropout, subword prefixes/suffixes or byte fallback, which grpst does not support',
        'use a Qwen2/Qwen3 checkpoint (byte-level BPE)',
      );
    }
    this.ignoreMerges = json.ignore_merges === true;
    for (let b = 0; b < 256; b++) {
      const id = vocab.get(BYTE_TO_CHAR[b]);
      if (id === undefined) throw badInput(`tokenizer.json: the vocabulary lacks the byte-level token for byte ${b}`, 'use a byte-level BPE tokenizer.json (Qwen2/Qwen3)');
      this.byteIds[b] = id;
    }
    this.merges = new MergeTable(json.merges.length);
    const merges = json.merges;
    for (let rank = 0; rank < merges.length; rank++) {
      const m = merges[rank];
      let left: string, right: string;
      if (typeof m === 'string') {
        const sp = m.indexOf(' ');
        left = m.slice(0, sp);
        right = m.slice(sp + 1);
        if (sp <= 0 || right.length === 0 || right.includes(' ')) throw badInput(`tokenizer.json: merge ${rank} ${JSON.stringify(m)} is not "left right"`);
      } else {
        left = m[0];
        right = m[1];
      }
      const l = vocab.get(left);
      const r = vocab.get(right);
      const merged = vocab.get(left + right);
      if (l === undefined || r === undefined || merged === undefined) {
        throw badInput(`tokenizer.json: merge ${rank} (${left} ${right}) names a token missing from the vocabulary`, 'the tokenizer.json is corrupt: copy it again from the checkpoint');
      }
      this.merges.set(l, r, rank, merged);
    }
  }

  /** Appends the ids of one pre-token piece to `out`. */
  encodePiece(piece: string, out: number[]): void {
    let hit = this.cache.get(piece);
    if (hit === undefined) {
      hit = this.oldCache.get(piece);
      if (hit === undefined) hit = this.computePiece(piece);
      if (piece.length <= CACHE_MAX_PIECE) {
        if (this.cache.size >= CACHE_GENERATION) {
          this.oldCache = this.cache;
          this.cache = new Map();
        }
        this.cache.set(piece, hit);
      }
    }
    if (typeof hit === 'number') out.push(hit);
    else for (let i = 0; i < hit.length; i++) out.push(hit[i]);
  }

  private computePiece(piece: string): number | Int32Array {
    if (this.bytes.length < piece.length * 3) this.grow(piece.length * 3);
    const n = this.encoder.encodeInto(piece, this.bytes).written;
    if (this.ignoreMerges) {
      let s = '';
      for (let i = 0; i < n; i++) s += BYTE_TO_CHAR[this.bytes[i]];
      const whole = this.vocab.get(s);
      if (whole !== undefined) return whole;
    }
    const syms = this.work;
    for (let i = 0; i < n; i++) syms[i] = this.byteIds[this.bytes[i]];
    const len = n <= SCAN_LIMIT ? this.mergeByScan(n) : this.mergeByHeap(n);
    return len === 1 ? syms[0] : syms.slice(0, len);
  }

  private grow(n: number): void {
    let cap = this.bytes.length;
    while (cap < n) cap *= 2;
    this.bytes = new Uint8Array(cap);
    this.work = new Int32Array(cap);
    this.pairSlots = new Int32Array(cap);
  }

  /** Merges work[0..n) in place; returns the new length. Keeps each adjacent pair's merge slot. */
  private mergeByScan(n: number): number {
    const syms = this.work;
    const slots = this.pairSlots;
    const table = this.merges;
    for (let i = 0; i + 1 < n; i++) slots[i] = table.find(syms[i], syms[i + 1]);
    while (n > 1) {
      let best = -1;
      let bestRank = 0x7fffffff;
      for (let i = 0; i + 1 < n; i++) {
        const s = slots[i];
        if (s >= 0) {
          const r = table.rankAt(s);
          if (r < bestRank) {
            bestRank = r;
            best = i;
          }
        }
      }
      if (best < 0) break;
      syms[best] = table.mergedAt(slots[best]);
      syms.copyWithin(best + 1, best + 2, n);
      slots.copyWithin(best + 1, best + 2, n - 1);
      n--;
      if (best > 0) slots[best - 1] = table.find(syms[best - 1], syms[best]);
      if (best + 1 < n) slots[best] = table.find(syms[best], syms[best + 1]);
    }
    return n;
  }

  /**
   * Same result as mergeByScan in O(n log n) for long pieces: symbols form a linked list and
   * candidate merges sit in a min-heap keyed by (rank, position); stale entries are skipped.
   */
  private mergeByHeap(n: number): number {
    const syms = this.work;
    const table = this.merges;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MinHeap();
    // key = rank * 2^32 + position: exact in a double since rank < 2^21.
    const push = (pos: number) => {
      const nx = next[pos];
      if (nx < 0) return;
      const s = table.find(syms[pos], syms[nx]);
      if (s >= 0) heap.push(table.rankAt(s) * 4294967296 + pos);
    };
    for (let i = 0; i + 1 < n; i++) push(i);
    while (heap.size > 0) {
      const key = heap.pop();
      const pos = key % 4294967296;
      const rank = (key - pos) / 4294967296;
      const nx = next[pos];
      if (!alive[pos] || nx < 0) continue;
      const s = table.find(syms[pos], syms[nx]);
      if (s < 0 || table.rankAt(s) !== rank) continue;
      syms[pos] = table.mergedAt(s);
      alive[nx] = 0;
      next[pos] = next[nx];
      if (next[nx] >= 0) prev[next[nx]] = pos;
      if (prev[pos] >= 0) push(prev[pos]);
      push(pos);
    }
    let len = 0;
    for (let i = 0; i >= 0; i = next[i]) syms[len++] = syms[i];
    return len;
  }
}

/** Binary min-heap of numbers. */
class MinHeap {
  private items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(v: number): void {
    const a = this.items;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      const n = a.length;
      for (;;) {
        let c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && a[c + 1] < a[c]) c++;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
