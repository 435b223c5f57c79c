// Sets of Unicode code points (for regular-expression classes) and the grammar of one such
// character as it appears inside a JSON string (raw UTF-8 where JSON allows it, the escape where
// it must be escaped: '"', '\' and control characters) or in plain text (raw UTF-8). Surrogates
// are never members.
import { alt, bytes, empty, lit, seq, type Expr } from './grammar.js';

/** Sorted, disjoint, non-adjacent inclusive ranges. */
export type CharSet = readonly (readonly [number, number])[];

export const MAX_CODE_POINT = 0x10ffff;
const SURROGATES: [number, number] = [0xd800, 0xdfff];

export function normalize(ranges: Iterable<readonly [number, number]>): CharSet {
  const sorted = [...ranges].filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return subtract(out, [SURROGATES]);
}

export function union(...sets: CharSet[]): CharSet {
  return normalize(sets.flat());
}

export function subtract(set: CharSet, minus: CharSet): CharSet {
  let out: [number, number][] = set.map(([a, b]) => [a, b]);
  for (const [c, d] of minus) {
    const next: [number, number][] = [];
    for (const [a, b] of out) {
      if (d < a || c > b) next.push([a, b]);
      else {
        if (a < c) next.push([a, c - 1]);
        if (d < b) next.push([d + 1, b]);
      }
    }
    out = next;
  }
  return out;
}

export function complement(set: CharSet): CharSet {
  return subtract([[0, MAX_CODE_POINT]], union(set, [SURROGATES]));
}

export const anyChar: CharSet = complement([]);
/** What "." matches without the s flag: everything but line terminators. */
export const dotChars: CharSet = complement([[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]]);
export const digitChars: CharSet = [[0x30, 0x39]];
export const wordChars: CharSet = normalize([[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]]);
export const spaceChars: CharSet = normalize([
  [0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff],
]);

const shortEscapes = new Map<number, string>([[0x22, '\\"'], [0x5c, '\\\\'], [0x08, '\\b'], [0x0c, '\\f'], [0x0a, '\\n'], [0x0d, '\\r'], [0x09, '\\t']]);

/** One character of the set, written inside a JSON string. */
export function jsonCharOf(set: CharSet): Expr {
  const parts: Expr[] = [];
  // Characters JSON requires escaped get their one escape.
  const escaped = set.flatMap(([a, b]) => {
    const out: number[] = [];
    for (let c = a; c <= Math.min(b, 0x1f); c++) out.push(c);
    for (const c of [0x22, 0x5c]) if (a <= c && c <= b) out.push(c);
    return out;
  });
  for (const c of escaped) parts.push(lit(shortEscapes.get(c) ?? `\\u${c.toString(16).padStart(4, '0')}`));
  const raw = subtract(set, [[0, 0x1f], [0x22, 0x22], [0x5c, 0x5c]]);
  for (const [a, b] of raw) parts.push(...utf8Range(a, b));
  return alt(...parts);
}

/** One character of the set as raw UTF-8. */
export function rawCharOf(set: CharSet): Expr {
  return alt(...set.flatMap(([a, b]) => utf8Range(a, b)));
}

const utf8 = (c: number) => Array.from(new TextEncoder().encode(String.fromCodePoint(c)));
const lengthLimits = [0x7f, 0x7ff, 0xffff, MAX_CODE_POINT];

/** Byte-sequence alternatives for code points a..b (no surrogates inside). */
function utf8Range(a: number, b: number): Expr[] {
  const out: Expr[] = [];
  let lo = a;
  for (const limit of lengthLimits) {
    if (lo > b) break;
    if (lo > limit) continue;
    const hi = Math.min(b, limit);
    out.push(sameLength(utf8(lo), utf8(hi), 0));
    lo = hi + 1;
  }
  return out;
}

/** Byte strings of one length from lo to hi (both valid UTF-8; continuation bytes span 80-BF). */
function sameLength(lo: number[], hi: number[], i: number): Expr {
  if (i === lo.length) return empty;
  if (i === lo.length - 1) return bytes([lo[i], hi[i]]);
  if (lo[i] === hi[i]) return seq(bytes([lo[i], lo[i]]), sameLength(lo, hi, i + 1));
  const rest = lo.length - i - 1;
  const maxTail = new Array<number>(rest).fill(0xbf);
  const minTail = new Array<number>(rest).fill(0x80);
  const cont = (n: number) => Array.from({ length: n }, () => bytes([0x80, 0xbf]));
  const parts = [seq(bytes([lo[i], lo[i]]), sameLength([...lo.slice(0, i + 1), ...lo.slice(i + 1)], [...lo.slice(0, i + 1), ...maxTail], i + 1))];
  if (hi[i] - lo[i] >= 2) parts.push(seq(bytes([lo[i] + 1, hi[i] - 1]), ...cont(rest)));
  parts.push(seq(bytes([hi[i], hi[i]]), sameLength([...hi.slice(0, i + 1), ...minTail], [...hi.slice(0, i + 1), ...hi.slice(i + 1)], i + 1)));
  return alt(...parts);
}
