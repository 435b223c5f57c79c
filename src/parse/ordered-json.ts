// JSON re-serialized with object keys in the order the text has them. JSON.parse gives objects
// whose integer-like keys ("2", "10") come first in ascending order, whatever order they were
// written in; a client reading a tool call's arguments expects the model's own order (Python's
// json.loads + json.dumps, which vLLM's Qwen3 parser uses, keeps it). Scalars are written as
// JSON.stringify writes them, objects and arrays compactly, so the output differs from
// JSON.stringify(JSON.parse(text)) only in key order. A client's request body is read the same
// way (withWrittenKeyOrder), so its objects reach the template and the grammar in its order.
import { inKeyOrder } from '../util/key-order.js';

/** A parsed value whose objects remember their key order; scalars kept as serialized JSON. */
export type OrderedJson = { object: Map<string, OrderedJson> } | { array: OrderedJson[] } | { scalar: string };

const scalarPattern = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
const stringPattern = /"(?:[^"\\]|\\.)*"/y;

/**
 * Parses text that JSON.parse has already accepted (it is the validator; this only walks valid
 * JSON and throws on anything else). A key written twice keeps its first place and its last
 * value, as JSON.parse and Python's dict both do.
 */
export function parseOrderedJson(text: string): OrderedJson {
  let at = 0;
  const skipSpace = (): void => {
    while (at < text.length && (text[at] === ' ' || text[at] === '\n' || text[at] === '\r' || text[at] === '\t')) at++;
  };
  const expect = (char: string): void => {
    skipSpace();
    if (text[at] !== char) throw new Error(`expected ${char} at ${at} of JSON text`);
    at++;
  };
  const token = (pattern: RegExp): string => {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (!match) throw new Error(`unexpected JSON text at ${at}`);
    at += match[0].length;
    return match[0];
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
        const key = JSON.parse(token(stringPattern)) as string;
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
    // Re-serialized so that escapes and numbers come out as JSON.stringify writes them.
    return { scalar: JSON.stringify(JSON.parse(token(first === '"' ? stringPattern : scalarPattern))) };
  };
  const parsed = value();
  skipSpace();
  if (at !== text.length) throw new Error(`unexpected JSON text at ${at}`);
  return parsed;
}

/** Compact JSON (no spaces), keys in their remembered order. */
export function stringifyOrderedJson(value: OrderedJson): string {
  if ('scalar' in value) return value.scalar;
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
    return reordered(parsed, parseOrderedJson(text));
  } catch (err) {
    // Nesting deeper than these walks' stack (JSON.parse goes deeper): the value as parsed (objects
    // already reordered stay so; they are the same objects).
    if (err instanceof RangeError) return parsed;
    throw err;
  }
}

function reordered(value: unknown, written: OrderedJson): unknown {
  if ('scalar' in written) return value;
  if ('array' in written) {
    const array = value as unknown[];
    written.array.forEach((item, i) => {
      if (!('scalar' in item)) array[i] = reordered(array[i], item);
    });
    return array;
  }
  const object = value as Record<string, unknown>;
  for (const [key, member] of written.object) {
    if ('scalar' in member) continue;
    const before = object[key];
    const after = reordered(before, member);
    // defineProperty, not assignment: a member named "__proto__" is an own property here, as JSON.parse made it.
    if (after !== before) Object.defineProperty(object, key, { value: after, writable: true, enumerable: true, configurable: true });
  }
  return inKeyOrder(object, [...written.object.keys()]);
}
