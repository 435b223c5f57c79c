// JSON re-serialized with object keys in the order the text has them. JSON.parse gives objects
// whose integer-like keys ("2", "10") come first in ascending order, whatever order they were
// written in; a client reading a tool call's arguments expects the model's own order (Python's
// json.loads + json.dumps, which vLLM's Qwen3 parser uses, keeps it). Scalars are written as
// JSON.stringify writes them, objects and arrays compactly, so the output differs from
// JSON.stringify(JSON.parse(text)) only in key order. A client's request body is read the same
// way (withWrittenKeyOrder), so its objects reach the template and the grammar in its order.
// This is the one walk of JSON text beside JSON.parse: the text of the numbers it changes is
// read from the same tree (json-numbers.ts).
import { inKeyOrder } from '../util/key-order.js';

/**
 * A parsed value whose objects remember their key order. A scalar is kept as the JSON text it was
 * written with: a number's own digits ("1.0", "1e20", all of a long integer's), which the body
 * reader records where JSON.parse changes them (json-numbers.ts).
 */
export type OrderedJson = { object: Map<string, OrderedJson> } | { array: OrderedJson[] } | { scalar: string };

const scalarPattern = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;

/**
 * Parses text that JSON.parse has already accepted (it is the validator: this walk throws on
 * broken structure, but takes a string's contents, escapes included, as they come). A key written
 * twice keeps its first place and its last value, as JSON.parse and Python's dict both do.
 */
export function parseOrderedJson(text: string): OrderedJson {
  let at = 0;
  const skipSpace = (): void => {
    for (let c = text.charCodeAt(at); c === 32 || c === 10 || c === 13 || c === 9; c = text.charCodeAt(++at));
  };
  const expect = (char: string): void => {
    skipSpace();
    if (text[at] !== char) throw new Error(`expected ${char} at ${at} of JSON text`);
    at++;
  };
  /**
   * The string token that opens at `at`. Its end is found by searching for quotes: a regular
   * expression over the string overflows the stack on one of megabytes, which a body may hold.
   */
  const string = (): string => {
    if (text[at] !== '"') throw new Error(`expected a string at ${at} of JSON text`);
    let end = at;
    for (;;) {
      end = text.indexOf('"', end + 1);
      if (end < 0) throw new Error(`unterminated string at ${at} of JSON text`);
      let slashes = 0;
      while (text.charCodeAt(end - 1 - slashes) === 92) slashes++;
      if (slashes % 2 === 0) break;
    }
    const token = text.slice(at, end + 1);
    at = end + 1;
    return token;
  };
  const value = (): OrderedJson => {
    skipSpace();
    const first = text[at];
    if (first === '{') {
      at++;
      const object = new Map<string, OrderedJson>();
      skipSpace();
      if (text[at] === '}') {
        at++;
        return { object };
      }
      for (;;) {
        skipSpace();
        const raw = string();
        const key = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        expect(':');
        object.set(key, value());
        skipSpace();
        if (text[at++] === '}') return { object };
        if (text[at - 1] !== ',') throw new Error(`expected , or } at ${at - 1} of JSON text`);
      }
    }
    if (first === '[') {
      at++;
      const array: OrderedJson[] = [];
      skipSpace();
      if (text[at] === ']') {
        at++;
        return { array };
      }
      for (;;) {
        array.push(value());
        skipSpace();
        if (text[at++] === ']') return { array };
        if (text[at - 1] !== ',') throw new Error(`expected , or ] at ${at - 1} of JSON text`);
      }
    }
    if (first === '"') return { scalar: string() };
    scalarPattern.lastIndex = at;
    const match = scalarPattern.exec(text);
    if (!match) throw new Error(`unexpected JSON text at ${at}`);
    at += match[0].length;
    return { scalar: match[0] };
  };
  const parsed = value();
  skipSpace();
  if (at !== text.length) throw new Error(`unexpected JSON text at ${at}`);
  return parsed;
}

/** Compact JSON (no spaces), keys in their remembered order, scalars as JSON.stringify writes them. */
export function stringifyOrderedJson(value: OrderedJson): string {
  if ('scalar' in value) return JSON.stringify(JSON.parse(value.scalar));
  if ('array' in value) return `[${value.array.map(stringifyOrderedJson).join(',')}]`;
  const members: string[] = [];
  for (const [key, member] of value.object) members.push(`${JSON.stringify(key)}:${stringifyOrderedJson(member)}`);
  return `{${members.join(',')}}`;
}

/**
 * A quoted key of digits (or of escaped digits, "\u0031") before its colon: the only keys
 * JSON.parse can move. In a string value it only costs a second walk of the text.
 */
const integerLikeKey = /"(?:\d|\\u003\d)+"\s*:/;

/** Whether JSON.parse may have moved keys of this JSON text out of their written order. */
export function mayHoldIntegerKey(text: string): boolean {
  return integerLikeKey.test(text);
}

/**
 * The value JSON.parse gave for `text` (changed in place), each object whose written key order
 * a plain object cannot keep seen in that order (util/key-order.ts). Without a key of digits in
 * the text the value is returned untouched and the text is not walked again.
 */
export function withWrittenKeyOrder(text: string, parsed: unknown): unknown {
  if (!mayHoldIntegerKey(text)) return parsed;
  try {
    return inWrittenOrder(parsed, parseOrderedJson(text));
  } catch (err) {
    // Nesting deeper than these walks' stack (JSON.parse goes deeper): the value as parsed (objects
    // already reordered stay so; they are the same objects).
    if (err instanceof RangeError) return parsed;
    throw err;
  }
}

/**
 * `value`, JSON.parse's value of the text `written` was parsed from (changed in place), each
 * object whose key order a plain object cannot keep seen in the written order.
 */
export function inWrittenOrder(value: unknown, written: OrderedJson): unknown {
  if ('scalar' in written) return value;
  if ('array' in written) {
    const array = value as unknown[];
    written.array.forEach((item, i) => {
      if (!('scalar' in item)) array[i] = inWrittenOrder(array[i], item);
    });
    return array;
  }
  const object = value as Record<string, unknown>;
  for (const [key, member] of written.object) {
    if ('scalar' in member) continue;
    const before = object[key];
    const after = inWrittenOrder(before, member);
    // defineProperty, not assignment: a member named "__proto__" is an own property here, as JSON.parse made it.
    if (after !== before) Object.defineProperty(object, key, { value: after, writable: true, enumerable: true, configurable: true });
  }
  return inKeyOrder(object, [...written.object.keys()]);
}
