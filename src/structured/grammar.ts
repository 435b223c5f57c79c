// Grammars for constrained decoding, as expressions over bytes and special tokens. A grammar is
// a set of named rules (each an expression) and a root rule; rules refer to each other with
// `call`, which is how recursion (and sharing a large sub-grammar) is written. automaton.ts
// turns a grammar into the automaton the native matcher runs.

export type ByteRange = readonly [number, number];

export type Expr =
  /** One byte from the ranges (inclusive). */
  | { readonly k: 'bytes'; readonly ranges: readonly ByteRange[] }
  /** One special (added) token, by id: never spelled by bytes. */
  | { readonly k: 'special'; readonly token: number }
  | { readonly k: 'seq'; readonly items: readonly Expr[] }
  /** Any one of the items; no items: matches nothing. */
  | { readonly k: 'alt'; readonly items: readonly Expr[] }
  /**
   * min to max repetitions (max may be Infinity). With `viaRule`, the item is written once, as
   * the rule of that name, and each count calls it: max calls instead of max copies. Only for
   * items that are a prefix-free code (one character) followed by nothing that could be read as
   * another item, so the matcher never has to keep two counts apart.
   */
  | { readonly k: 'rep'; readonly item: Expr; readonly min: number; readonly max: number; readonly viaRule?: string }
  | { readonly k: 'call'; readonly rule: string }
  /**
   * Any one of the byte strings, sorted without repeats (see literalChoice): a trie whose nodes
   * are their distinct prefixes (`nodes` of them, the empty one included).
   */
  | { readonly k: 'literals'; readonly sorted: readonly Uint8Array[]; readonly nodes: number }
  /** Free text: any bytes, as long as the output likes (a think block); the matcher may bound it. */
  | { readonly k: 'free' }
  /**
   * A small graph whose edges are expressions: written directly where a sequence with optional
   * parts would otherwise repeat its tail (object properties), so the size stays linear.
   */
  | { readonly k: 'graph'; readonly nodes: number; readonly start: number; readonly end: number; readonly edges: readonly GraphEdge[] };

export interface GraphEdge {
  readonly from: number;
  readonly to: number;
  /** undefined: an empty step. */
  readonly expr?: Expr;
}

export interface Grammar {
  readonly root: string;
  readonly rules: ReadonlyMap<string, Expr>;
  /** Where a rule comes from (a JSON pointer into the schema), for errors that name it. */
  readonly where?: ReadonlyMap<string, string>;
}

const utf8 = new TextEncoder();

export const nothing: Expr = { k: 'alt', items: [] };
export const empty: Expr = { k: 'seq', items: [] };

export function bytes(...ranges: ByteRange[]): Expr {
  return { k: 'bytes', ranges };
}

/** The UTF-8 bytes of `text`, in order. */
export function lit(text: string): Expr {
  return literalBytes(utf8.encode(text));
}

export function literalBytes(b: Uint8Array): Expr {
  if (b.length === 1) return bytes([b[0], b[0]]);
  return { k: 'seq', items: Array.from(b, (x) => bytes([x, x])) };
}

export function special(token: number): Expr {
  return { k: 'special', token };
}

export function seq(...items: Expr[]): Expr {
  const flat: Expr[] = [];
  for (const e of items) {
    if (e.k === 'seq') flat.push(...e.items);
    else flat.push(e);
  }
  return flat.length === 1 ? flat[0] : { k: 'seq', items: flat };
}

export function alt(...items: Expr[]): Expr {
  const flat: Expr[] = [];
  for (const e of items) {
    if (e.k === 'alt') flat.push(...e.items);
    else flat.push(e);
  }
  return flat.length === 1 ? flat[0] : { k: 'alt', items: flat };
}

export function rep(item: Expr, min: number, max: number): Expr {
  if (!(min >= 0) || !(max >= min)) throw new Error(`repetition bounds ${min}..${max} are not a range`);
  if (max === 0) return empty;
  if (min === 1 && max === 1) return item;
  return { k: 'rep', item, min, max };
}

/** Counted repetitions through one shared rule (see the `rep` expression's `viaRule`). */
export function repViaRule(item: Expr, min: number, max: number, rule: string): Expr {
  const e = rep(item, min, max);
  return e.k === 'rep' && e.max !== Infinity ? { ...e, viaRule: rule } : e;
}

export function opt(item: Expr): Expr {
  return rep(item, 0, 1);
}

export function star(item: Expr): Expr {
  return rep(item, 0, Infinity);
}

export function call(rule: string): Expr {
  return { k: 'call', rule };
}

export const freeText: Expr = { k: 'free' };

/**
 * Any one of the byte strings, as a trie (a graph whose nodes are the strings' distinct
 * prefixes): a large enum costs its distinct prefixes, never an alternation of whole strings
 * for the automaton builder to merge. Written as a rule of its own, a trie becomes automaton
 * states directly, without subset construction (automaton.ts).
 */
export function literalChoice(values: readonly Uint8Array[]): Expr {
  if (values.length === 1) return literalBytes(values[0]);
  const { sorted, nodes } = literalTrie(values);
  return sorted.length === 1 ? literalBytes(sorted[0]) : { k: 'literals', sorted, nodes };
}

/**
 * Walks the trie of sorted strings: each string shares a prefix with the one before, so its
 * nodes are the previous string's path up to that prefix, then new ones. Nodes come in preorder
 * (node 0 is the root), children after their parent and in byte order; `edge` gets each new
 * node, `accept` the node where each string ends.
 */
export function walkTrie(sorted: readonly Uint8Array[], edge: (from: number, byte: number, to: number) => void, accept: (node: number) => void): void {
  const path: number[] = [0];
  let nodes = 1;
  let prev: Uint8Array | undefined;
  for (const v of sorted) {
    const common = prev ? commonPrefix(prev, v) : 0;
    path.length = common + 1;
    for (let i = common; i < v.length; i++) {
      const node = nodes++;
      edge(path[i], v[i], node);
      path.push(node);
    }
    accept(path[v.length]);
    prev = v;
  }
}

/** The byte strings sorted without repeats, and the nodes of their trie (distinct prefixes, the empty one included). */
export function literalTrie(values: readonly Uint8Array[]): { sorted: Uint8Array[]; nodes: number } {
  const sorted: Uint8Array[] = [];
  let nodes = 1;
  for (const v of [...values].sort(compareBytes)) {
    const prev = sorted[sorted.length - 1];
    const common = prev ? commonPrefix(prev, v) : 0;
    if (prev && common === v.length && common === prev.length) continue;
    nodes += v.length - common;
    sorted.push(v);
  }
  return { sorted, nodes };
}

function commonPrefix(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/**
 * How many automaton nodes and edges the expression becomes once every counted repetition is
 * written out (calls count as one edge; the called rules are sized on their own). Shared
 * sub-expressions are sized once (`memo`). The automaton builder's work grows with this, so the
 * compiler refuses a schema part whose size passes its limit before building anything.
 */
export function exprSize(e: Expr, memo: WeakMap<Expr, number> = sizeMemo): number {
  const known = memo.get(e);
  if (known !== undefined) return known;
  let n: number;
  switch (e.k) {
    case 'bytes':
      n = Math.max(1, e.ranges.length);
      break;
    case 'special':
    case 'call':
      n = 1;
      break;
    case 'free':
      n = 3;
      break;
    case 'literals':
      n = 2 * e.nodes + e.sorted.length;
      break;
    case 'seq':
      n = Math.max(0, e.items.length - 1);
      for (const item of e.items) n += exprSize(item, memo);
      break;
    case 'alt':
      n = 0;
      for (const item of e.items) n += exprSize(item, memo);
      break;
    case 'rep': {
      const item = e.viaRule !== undefined ? 1 : exprSize(e.item, memo);
      n = e.max === Infinity ? (e.min + 1) * (item + 1) + 3 : e.max * (item + 1) + 1;
      break;
    }
    case 'graph':
      n = e.nodes;
      for (const g of e.edges) n += g.expr ? exprSize(g.expr, memo) : 1;
      break;
  }
  memo.set(e, n);
  return n;
}

const sizeMemo = new WeakMap<Expr, number>();

/** Does the expression match nothing at all (an empty alternative somewhere on every path)? */
export function isNothing(e: Expr): boolean {
  switch (e.k) {
    case 'alt':
      return e.items.every(isNothing);
    case 'seq':
      return e.items.some(isNothing);
    case 'rep':
      return e.min > 0 && isNothing(e.item);
    case 'bytes':
      return e.ranges.length === 0;
    default:
      return false;
  }
}

/** Collects rules as a compiler creates them; names are unique keys chosen by the caller. */
/**
 * How the JSON of one answer is laid out (vLLM's structured_outputs options): compact writes no
 * whitespace at all (disable_any_whitespace); closedObjects reads a schema object without
 * "additionalProperties" as if it said false (disable_additional_properties).
 */
export interface JsonOptions {
  compact?: boolean;
  closedObjects?: boolean;
}

export class RuleSet {
  /** @param json the layout every JSON value of this grammar takes */
  constructor(readonly json: JsonOptions = {}) {}

  private readonly rules = new Map<string, Expr>();
  private readonly pending = new Set<string>();
  private readonly where = new Map<string, string>();

  has(name: string): boolean {
    return this.rules.has(name) || this.pending.has(name);
  }

  /**
   * Defines `name` once: `build` runs only the first time, and may itself call `define` (and
   * refer to `name`, for recursion) before returning the rule's expression.
   */
  define(name: string, build: () => Expr, where?: string): Expr {
    if (!this.has(name)) {
      if (where !== undefined) this.where.set(name, where);
      this.pending.add(name);
      const e = build();
      this.pending.delete(name);
      this.rules.set(name, e);
    }
    return call(name);
  }

  grammar(root: Expr): Grammar {
    const rules = new Map<string, Expr>([['root', root], ...this.rules]);
    return { root: 'root', rules, where: this.where };
  }
}
