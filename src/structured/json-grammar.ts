// JSON's lexical pieces as grammar expressions, in the layout every constrained answer uses:
// compact JSON where ':' and ',' may be followed by one space (Python's json.dumps style, which
// is how Qwen writes tool calls), and no other whitespace; or, where the request asks for it
// (RuleSet.json.compact), no whitespace at all. Strings are valid UTF-8 and count length in code
// points, as JSON Schema does; \u escapes never produce lone surrogates.
import { alt, bytes, lit, opt, rep, repViaRule, seq, type Expr, type RuleSet } from './grammar.js';
import { anyNumber } from './number-range.js';

/** The separators of one grammar's JSON. */
export interface Separators {
  colon: Expr;
  comma: Expr;
}
const spaced: Separators = { colon: seq(lit(':'), opt(lit(' '))), comma: seq(lit(','), opt(lit(' '))) };
const compact: Separators = { colon: lit(':'), comma: lit(',') };

export function separators(rules: RuleSet): Separators {
  return rules.json.compact ? compact : spaced;
}

const hex = bytes([0x30, 0x39], [0x41, 0x46], [0x61, 0x66]);
/** Four hex digits outside D800-DFFF. */
const hexNonSurrogate = alt(
  seq(bytes([0x30, 0x39], [0x41, 0x43], [0x61, 0x63], [0x45, 0x46], [0x65, 0x66]), hex, hex, hex),
  seq(bytes([0x44, 0x44], [0x64, 0x64]), bytes([0x30, 0x37]), hex, hex),
);
const escape = seq(lit('\\'), alt(bytes([0x22, 0x22], [0x2f, 0x2f], [0x5c, 0x5c], [0x62, 0x62], [0x66, 0x66], [0x6e, 0x6e], [0x72, 0x72], [0x74, 0x74]), seq(lit('u'), hexNonSurrogate)));
const cont = bytes([0x80, 0xbf]);
/** Well-formed UTF-8 of one code point above U+007F (RFC 3629 table 3-7). */
const utf8Multibyte = alt(
  seq(bytes([0xc2, 0xdf]), cont),
  seq(bytes([0xe0, 0xe0]), bytes([0xa0, 0xbf]), cont),
  seq(bytes([0xe1, 0xec], [0xee, 0xef]), cont, cont),
  seq(bytes([0xed, 0xed]), bytes([0x80, 0x9f]), cont),
  seq(bytes([0xf0, 0xf0]), bytes([0x90, 0xbf]), cont, cont),
  seq(bytes([0xf1, 0xf3]), cont, cont, cont),
  seq(bytes([0xf4, 0xf4]), bytes([0x80, 0x8f]), cont, cont),
);
/** One character of a JSON string body: printable ASCII except '"' and '\', an escape, or UTF-8. */
export const stringChar = alt(bytes([0x20, 0x21], [0x23, 0x5b], [0x5d, 0x7f]), escape, utf8Multibyte);

/** Counted characters past this go through one shared rule instead of one copy per count. */
const INLINE_COUNT = 32;

/**
 * A JSON string of min..max characters. Long bounds count through one shared character rule
 * (a character is a prefix-free code and the closing quote is never one), so maxLength 2000
 * costs 2000 small states, not 2000 copies of the UTF-8 and escape automaton.
 */
export function jsonString(min = 0, max = Infinity): Expr {
  let chars: Expr;
  if (max !== Infinity && max > INLINE_COUNT) chars = repViaRule(stringChar, min, max, 'json-char');
  else if (max === Infinity && min > INLINE_COUNT) chars = seq(repViaRule(stringChar, min, min, 'json-char'), rep(stringChar, 0, Infinity));
  else chars = rep(stringChar, min, max);
  return seq(lit('"'), chars, lit('"'));
}

/** The one spelling of a JSON value that constrained output uses for constants: compact. */
export function jsonLiteral(value: unknown): Expr {
  return lit(JSON.stringify(value));
}

/** A JSON object whose keys and values come from `pair` (key, colon and value), min..max pairs. */
export function jsonObjectOf(pair: Expr, comma: Expr, min = 0, max = Infinity): Expr {
  if (max === 0) return lit('{}');
  const body = seq(pair, rep(seq(comma, pair), Math.max(0, min - 1), max - 1));
  return seq(lit('{'), min > 0 ? body : opt(body), lit('}'));
}

/** A JSON array of min..max items. */
export function jsonArrayOf(item: Expr, comma: Expr, min = 0, max = Infinity): Expr {
  if (max === 0) return lit('[]');
  const body = seq(item, rep(seq(comma, item), Math.max(0, min - 1), max - 1));
  return seq(lit('['), min > 0 ? body : opt(body), lit(']'));
}

/** Containers nest at most this deep in free-form JSON (json_object, schemas without a type). */
export const ANY_JSON_DEPTH = 8;

/**
 * Any JSON value, with containers nested at most ANY_JSON_DEPTH deep below `depth`: one rule per
 * level, so the grammar (and the matcher's state space) stays finite.
 */
export function anyJson(rules: RuleSet, depth = 0): Expr {
  return rules.define(`any@${depth}`, () => {
    const scalars = [jsonString(), anyNumber(), lit('true'), lit('false'), lit('null')];
    if (depth >= ANY_JSON_DEPTH) return alt(...scalars, lit('{}'), lit('[]'));
    const inner = anyJson(rules, depth + 1);
    const { colon, comma } = separators(rules);
    return alt(...scalars, jsonObjectOf(seq(jsonString(), colon, inner), comma), jsonArrayOf(inner, comma));
  });
}

/** Any JSON object (json_object mode). */
export function anyJsonObject(rules: RuleSet): Expr {
  const { colon, comma } = separators(rules);
  return rules.define('any-object', () => jsonObjectOf(seq(jsonString(), colon, anyJson(rules, 1)), comma));
}
