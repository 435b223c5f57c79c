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
  /** min to max repetitions (max may be Infinity). */
  | { readonly k: 'rep'; readonly item: Expr; readonly min: number; readonly max: number }
  | { readonly k: 'call'; readonly rule: string }
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
export class RuleSet {
  private readonly rules = new Map<string, Expr>();
  private readonly pending = new Set<string>();

  has(name: string): boolean {
    return this.rules.has(name) || this.pending.has(name);
  }

  /**
   * Defines `name` once: `build` runs only the first time, and may itself call `define` (and
   * refer to `name`, for recursion) before returning the rule's expression.
   */
  define(name: string, build: () => Expr): Expr {
    if (!this.has(name)) {
      this.pending.add(name);
      const e = build();
      this.pending.delete(name);
      this.rules.set(name, e);
    }
    return call(name);
  }

  grammar(root: Expr): Grammar {
    const rules = new Map<string, Expr>([['root', root], ...this.rules]);
    return { root: 'root', rules };
  }
}
