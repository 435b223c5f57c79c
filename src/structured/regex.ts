// Regular expressions -> grammar. A JSON Schema "pattern" becomes the grammar of the string's
// body (between its quotes, characters as JSON writes them): ECMAScript regular expressions that
// match anywhere in the string unless anchored (^...$), as ajv runs them (with the u flag). vLLM's
// guided_regex becomes the grammar of the whole answer as raw text, which the pattern must match
// from start to end (as vLLM's backends match it; "^" and "$" at the ends change nothing). Supported: literals and escapes, ".", classes ([a-z],
// [^...], \d \w \s and their negations), groups ((...), (?:...), (?<name>...)), alternation,
// and the quantifiers * + ? {n} {n,} {n,m} (lazy or not: the same set of strings). Refused
// with the construct named: backreferences, lookaround, word boundaries, \p{...}, and anchors
// anywhere but at the ends.
import {
  anyChar,
  complement,
  digitChars,
  dotChars,
  jsonCharOf,
  normalize,
  rawCharOf,
  spaceChars,
  union,
  wordChars,
  type CharSet,
} from './char-set.js';
import { alt, empty, rep, seq, star, type Expr } from './grammar.js';

/** Quantifier bounds above this are refused (each counted repetition is grammar state). */
export const MAX_REPEAT = 1000;

export class RegexError extends Error {}

interface Parser {
  cps: number[];
  pos: number;
  /** One character of a set, as the text being matched writes it (JSON-escaped, or raw UTF-8). */
  charOf: (set: CharSet) => Expr;
}

const cp = (s: string) => s.codePointAt(0)!;

/** The grammar of every JSON string body whose decoded text matches `pattern`. */
export function patternBody(pattern: string): Expr {
  return compile(pattern, jsonCharOf, false);
}

/** The grammar of every text that `pattern` matches whole (vLLM's guided_regex), as raw UTF-8. */
export function wholeTextRegex(pattern: string): Expr {
  return compile(pattern, rawCharOf, true);
}

/** `whole`: the text is matched from start to end; otherwise a branch not anchored may sit anywhere in it. */
function compile(pattern: string, charOf: (set: CharSet) => Expr, whole: boolean): Expr {
  const p: Parser = { cps: Array.from(pattern, cp), pos: 0, charOf };
  const branches: Expr[] = [];
  const free = star(charOf(anyChar));
  for (;;) {
    const anchoredStart = eat(p, '^') || whole;
    const items = sequence(p);
    const anchoredEnd = eat(p, '$') || whole;
    if (p.pos < p.cps.length && peek(p) !== '|') throw new RegexError(unsupportedAt(p));
    branches.push(seq(anchoredStart ? empty : free, ...items, anchoredEnd ? empty : free));
    if (!eat(p, '|')) break;
  }
  if (p.pos !== p.cps.length) throw new RegexError(unsupportedAt(p));
  return alt(...branches);
}

function peek(p: Parser, ahead = 0): string | undefined {
  const c = p.cps[p.pos + ahead];
  return c === undefined ? undefined : String.fromCodePoint(c);
}

function eat(p: Parser, s: string): boolean {
  if (peek(p) === s) {
    p.pos++;
    return true;
  }
  return false;
}

function unsupportedAt(p: Parser): string {
  const rest = String.fromCodePoint(...p.cps.slice(p.pos, p.pos + 12));
  return `the construct at "${rest}" is not supported`;
}

/** A sequence of quantified atoms, up to "|", ")" or the end ("$" at the very end stops it too). */
function sequence(p: Parser): Expr[] {
  const items: Expr[] = [];
  for (;;) {
    const c = peek(p);
    if (c === undefined || c === '|' || c === ')') return items;
    if (c === '$') {
      // Only as the last thing of a top-level branch (the caller checks).
      return items;
    }
    if (c === '^') throw new RegexError('"^" is supported only at the start of the pattern or of a top-level alternative');
    items.push(quantified(p, atom(p)));
  }
}

function atom(p: Parser): Expr {
  const c = peek(p)!;
  if (c === '(') {
    p.pos++;
    if (eat(p, '?')) {
      if (eat(p, ':')) {
        // non-capturing group
      } else if (peek(p) === '<' && peek(p, 1) !== '=' && peek(p, 1) !== '!') {
        p.pos++;
        while (peek(p) !== undefined && peek(p) !== '>') p.pos++;
        if (!eat(p, '>')) throw new RegexError('a named group is not closed');
      } else throw new RegexError('lookahead and lookbehind ("(?=", "(?!", "(?<=", "(?<!") are not supported');
    }
    const branches: Expr[] = [seq(...sequence(p))];
    while (eat(p, '|')) branches.push(seq(...sequence(p)));
    if (!eat(p, ')')) throw new RegexError(peek(p) === '$' ? '"$" is supported only at the end of the pattern' : 'a group is not closed');
    return alt(...branches);
  }
  if (c === '[') return p.charOf(charClass(p));
  if (c === '.') {
    p.pos++;
    return p.charOf(dotChars);
  }
  if (c === '\\') return p.charOf(escape(p, false));
  if (c === '*' || c === '+' || c === '?' || c === '{') throw new RegexError(`"${c}" has nothing to repeat`);
  if (c === ']' || c === '}') throw new RegexError(`a lone "${c}" is not supported; escape it`);
  p.pos++;
  return p.charOf([[cp(c), cp(c)]]);
}

function quantified(p: Parser, e: Expr): Expr {
  let min: number;
  let max: number;
  const c = peek(p);
  if (c === '*') [min, max] = [0, Infinity];
  else if (c === '+') [min, max] = [1, Infinity];
  else if (c === '?') [min, max] = [0, 1];
  else if (c === '{' && /^\{\d+(,\d*)?\}/.test(String.fromCodePoint(...p.cps.slice(p.pos, p.pos + 24)))) {
    const text = String.fromCodePoint(...p.cps.slice(p.pos, p.pos + 24));
    const m = /^\{(\d+)(,(\d*))?\}/.exec(text)!;
    min = Number(m[1]);
    max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
    p.pos += m[0].length - 1;
    if (min > max) throw new RegexError(`the quantifier ${m[0]} is out of order`);
    if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) throw new RegexError(`quantifiers above ${MAX_REPEAT} are not supported`);
  } else return e;
  p.pos++;
  eat(p, '?'); // lazy: matches the same strings
  const next = peek(p);
  if (next === '*' || next === '+' || next === '?' || (next === '{' && /^\{\d/.test(String.fromCodePoint(...p.cps.slice(p.pos, p.pos + 3)))))
    throw new RegexError('a quantifier cannot follow another one');
  return rep(e, min, max);
}

/** After "\": one character class (in a class, \b is a backspace). */
function escape(p: Parser, inClass: boolean): CharSet {
  p.pos++;
  const c = peek(p);
  if (c === undefined) throw new RegexError('the pattern ends with "\\"');
  p.pos++;
  const single = (x: number): CharSet => [[x, x]];
  switch (c) {
    case 'd':
      return digitChars;
    case 'D':
      return complement(digitChars);
    case 'w':
      return wordChars;
    case 'W':
      return complement(wordChars);
    case 's':
      return spaceChars;
    case 'S':
      return complement(spaceChars);
    case 'n':
      return single(0x0a);
    case 'r':
      return single(0x0d);
    case 't':
      return single(0x09);
    case 'f':
      return single(0x0c);
    case 'v':
      return single(0x0b);
    case '0':
      return single(0);
    case 'b':
      if (inClass) return single(0x08);
      throw new RegexError('word boundaries ("\\b") are not supported');
    case 'x': {
      const hex = String.fromCodePoint(...p.cps.slice(p.pos, p.pos + 2));
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new RegexError('"\\x" needs two hex digits');
      p.pos += 2;
      return single(parseInt(hex, 16));
    }
    case 'u': {
      const rest = String.fromCodePoint(...p.cps.slice(p.pos, p.pos + 8));
      const m = /^\{([0-9a-fA-F]{1,6})\}/.exec(rest) ?? /^([0-9a-fA-F]{4})/.exec(rest);
      if (!m) throw new RegexError('"\\u" needs four hex digits or {hex}');
      p.pos += m[0].length;
      return normalize([[parseInt(m[1], 16), parseInt(m[1], 16)]]);
    }
    default:
      if (/[1-9]/.test(c) || c === 'k') throw new RegexError('backreferences are not supported');
      if (c === 'p' || c === 'P') throw new RegexError('Unicode property escapes ("\\p{...}") are not supported');
      if (c === 'B') throw new RegexError('word boundaries ("\\B") are not supported');
      if (/[a-zA-Z]/.test(c)) throw new RegexError(`the escape "\\${c}" is not supported`);
      return single(cp(c));
  }
}

function charClass(p: Parser): CharSet {
  p.pos++; // [
  const negated = eat(p, '^');
  const parts: CharSet[] = [];
  for (;;) {
    const c = peek(p);
    if (c === undefined) throw new RegexError('a character class is not closed');
    if (c === ']') {
      // As in ECMAScript, "[]" matches nothing and "[^]" any character.
      p.pos++;
      break;
    }
    const lo = classAtom(p);
    if (peek(p) === '-' && peek(p, 1) !== ']' && peek(p, 1) !== undefined) {
      p.pos++;
      const hi = classAtom(p);
      if (lo.length !== 1 || hi.length !== 1 || lo[0][0] !== lo[0][1] || hi[0][0] !== hi[0][1])
        throw new RegexError('a range in a character class must join two single characters');
      if (lo[0][0] > hi[0][0]) throw new RegexError('a range in a character class is out of order');
      parts.push([[lo[0][0], hi[0][0]]]);
    } else parts.push(lo);
  }
  const set = union(...parts);
  return negated ? complement(set) : set;
}

function classAtom(p: Parser): CharSet {
  const c = peek(p)!;
  if (c === '\\') return escape(p, true);
  p.pos++;
  return [[cp(c), cp(c)]];
}
