// JSON numbers as grammar expressions, including exact integer ranges (minimum / maximum) built
// digit by digit, the way regex generators write numeric ranges. Integer parts have at most 15
// digits (every such integer is exact in a double), fractions at most 15 digits, exponents two,
// so every number the grammar allows parses to a finite double with the value written.
import { alt, bytes, empty, lit, nothing, opt, rep, seq, type Expr } from './grammar.js';

export const MAX_INTEGER_DIGITS = 15;
const MAX_FRACTION_DIGITS = 15;
/** The largest magnitude the grammar writes: 15 nines. */
export const INTEGER_LIMIT = 10n ** BigInt(MAX_INTEGER_DIGITS) - 1n;

const digit = bytes([0x30, 0x39]);
const nonZeroDigit = bytes([0x31, 0x39]);
const fraction = seq(lit('.'), rep(digit, 1, MAX_FRACTION_DIGITS));
/** A fraction that is not zero (it ends in a non-zero digit). */
const nonZeroFraction = seq(lit('.'), rep(digit, 0, MAX_FRACTION_DIGITS - 1), nonZeroDigit);
const zeroFraction = seq(lit('.'), rep(lit('0'), 1, MAX_FRACTION_DIGITS));
const exponent = seq(bytes([0x45, 0x45], [0x65, 0x65]), opt(bytes([0x2b, 0x2b], [0x2d, 0x2d])), rep(digit, 1, 2));
const unsignedInteger = alt(lit('0'), seq(nonZeroDigit, rep(digit, 0, MAX_INTEGER_DIGITS - 1)));

export function anyInteger(): Expr {
  return seq(opt(lit('-')), unsignedInteger);
}

export function anyNumber(): Expr {
  return seq(opt(lit('-')), unsignedInteger, opt(fraction), opt(exponent));
}

/** Digit strings of one length from lo to hi (leading zeros allowed: these are suffixes). */
function sameLength(lo: string, hi: string): Expr {
  if (lo.length === 0) return empty;
  if (lo === hi) return lit(lo);
  const rest = lo.length - 1;
  if (/^0*$/.test(lo.slice(1)) && /^9*$/.test(hi.slice(1)))
    return seq(bytes([lo.charCodeAt(0), hi.charCodeAt(0)]), rep(digit, rest, rest));
  if (lo[0] === hi[0]) return seq(lit(lo[0]), sameLength(lo.slice(1), hi.slice(1)));
  const a = lo.charCodeAt(0);
  const b = hi.charCodeAt(0);
  const parts = [seq(lit(lo[0]), sameLength(lo.slice(1), '9'.repeat(rest)))];
  if (b - a >= 2) parts.push(seq(bytes([a + 1, b - 1]), rep(digit, rest, rest)));
  parts.push(seq(lit(hi[0]), sameLength('0'.repeat(rest), hi.slice(1))));
  return alt(...parts);
}

/** Non-negative integers lo..hi without leading zeros. */
function unsignedRange(lo: bigint, hi: bigint): Expr {
  if (lo > hi) return nothing;
  const parts: Expr[] = [];
  const loLen = lo.toString().length;
  const hiLen = hi.toString().length;
  for (let len = loLen; len <= hiLen; len++) {
    const a = len === loLen ? lo : 10n ** BigInt(len - 1);
    const b = len === hiLen ? hi : 10n ** BigInt(len) - 1n;
    parts.push(sameLength(a.toString(), b.toString()));
  }
  return alt(...parts);
}

const clamp = (x: bigint) => (x > INTEGER_LIMIT ? INTEGER_LIMIT : x < -INTEGER_LIMIT ? -INTEGER_LIMIT : x);

/** Integers lo..hi (inclusive; undefined: unbounded on that side, within 15 digits). */
export function integerRange(lo: bigint | undefined, hi: bigint | undefined): Expr {
  const a = clamp(lo ?? -INTEGER_LIMIT);
  const b = clamp(hi ?? INTEGER_LIMIT);
  if (a > b) return nothing;
  const parts: Expr[] = [];
  if (a < 0n) parts.push(seq(lit('-'), unsignedRange(b < 0n ? -b : 1n, -a)));
  if (b >= 0n) parts.push(unsignedRange(a > 0n ? a : 0n, b));
  return alt(...parts);
}

export interface Bound {
  value: number;
  exclusive: boolean;
}

/** The integer bounds an integer must keep to satisfy `lower` / `upper`. */
export function integerBounds(lower?: Bound, upper?: Bound): { lo?: bigint; hi?: bigint } {
  const limit = Number(INTEGER_LIMIT);
  const big = (x: number) => BigInt(Math.max(-limit - 1, Math.min(limit + 1, x)));
  return {
    lo: lower ? big(lower.exclusive ? Math.floor(lower.value) + 1 : Math.ceil(lower.value)) : undefined,
    hi: upper ? big(upper.exclusive ? Math.ceil(upper.value) - 1 : Math.floor(upper.value)) : undefined,
  };
}

/**
 * Magnitudes L..U written as digits with an optional fraction: `lowOpen` excludes exactly L,
 * `highOpen` exactly U (and everything above it).
 */
function magnitude(l: bigint, lowOpen: boolean, u: bigint, highOpen: boolean): Expr {
  if (l > u) return nothing;
  if (l === u) return lowOpen || highOpen ? nothing : seq(unsignedRange(l, l), opt(zeroFraction));
  const parts: Expr[] = [];
  parts.push(seq(unsignedRange(l, l), lowOpen ? nonZeroFraction : opt(fraction)));
  if (u - l >= 2n) parts.push(seq(unsignedRange(l + 1n, u - 1n), opt(fraction)));
  if (!highOpen) parts.push(seq(unsignedRange(u, u), opt(zeroFraction)));
  return alt(...parts);
}

/**
 * Numbers within the bounds, without exponents. Bounds that are not integers are tightened to
 * the integers inside them (every written number is still in range); returns undefined when
 * that leaves nothing although the range is not empty, which the caller reports.
 */
export function numberRange(lower?: Bound, upper?: Bound): Expr | undefined {
  const limit = Number(INTEGER_LIMIT);
  let a = -limit;
  let aOpen = false;
  let b = limit;
  let bOpen = false;
  if (lower) {
    a = Number.isInteger(lower.value) ? lower.value : Math.ceil(lower.value);
    aOpen = Number.isInteger(lower.value) && lower.exclusive;
  }
  if (upper) {
    b = Number.isInteger(upper.value) ? upper.value : Math.floor(upper.value);
    bOpen = Number.isInteger(upper.value) && upper.exclusive;
  }
  if (a < -limit) [a, aOpen] = [-limit, false];
  if (b > limit) [b, bOpen] = [limit, false];
  if (a > b || (a === b && (aOpen || bOpen))) return undefined;
  const parts: Expr[] = [];
  if (b >= 0) parts.push(magnitude(BigInt(Math.max(a, 0)), a >= 0 && aOpen, BigInt(b), bOpen));
  if (a < 0) {
    // Negative numbers: magnitudes above max(0, -b) (zero itself belongs to the part above).
    const low = b < 0 ? BigInt(-b) : 0n;
    parts.push(seq(lit('-'), magnitude(low, b < 0 ? bOpen : true, BigInt(-a), aOpen)));
  }
  return alt(...parts);
}
