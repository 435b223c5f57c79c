// Numbers of a request body as the client wrote them. JSON.parse keeps only a double: `1.0` and
// `1` both become 1, `-0.0` becomes -0 (written "0" again), `1e20` becomes an integer, and an
// integer above 2^53 loses digits. Python's json.loads keeps `1.0`, `-0.0` and `1e20` floats and
// every integer exact, and its json.dumps writes them back so ("1.0", "-0.0", "1e+20", all the
// digits): a chat template that prints a tool's schema or a call's arguments with tojson puts
// that text in the prompt under transformers and vLLM. So the text of each such number is kept
// beside the parsed value, keyed by the object or array that holds it, for the template bridge to
// write it back (chat/render-prompt.ts); every other reader keeps seeing the plain number.
//
// Only a body that can hold such a number (the scan below) is walked a second time, by the walk
// that also finds its key order (ordered-json.ts): a body that needs both is walked once.
import { inWrittenOrder, mayHoldIntegerKey, parseOrderedJson, type OrderedJson } from './ordered-json.js';

/** Container -> member key (an array index as a string) -> the number's JSON text. */
const written = new WeakMap<object, Map<string, string>>();

/**
 * A number token, right after `:`, `[` or `,`, that JSON.parse may change (numberChanged): one
 * with an exponent, a fraction of zeros only (1.0, -0.0), or 16 digits or more, fraction included.
 * A fraction of fewer digits is not a whole number, and its double is not one either (it lies
 * farther from one than the double's rounding reaches), so `"temperature": 0.7` is not walked
 * for. Inside a string it only costs the walk.
 */
const changedNumber = /[:,[][ \t\n\r]*-?(?:\d+(?:\.\d+)?[eE]|\d+\.0+(?!\d)|(?:\d\.?){16})/;

/** Whether the JSON text may hold a number that JSON.parse changes (see above). */
export function mayHoldChangedNumber(text: string): boolean {
  return changedNumber.test(text);
}

/**
 * Whether JSON.parse's `value` for this number token loses what Python keeps: the token is a
 * float whose value is integral (Python writes "1.0", "-0.0", "1e+20", where the double alone
 * reads as an int), or an integer JSON.stringify does not write back digit for digit. A float
 * with a fraction is a double in both and is written alike (chat/jinja-numbers.ts).
 */
export function numberChanged(token: string, value: number): boolean {
  if (/[.eE]/.test(token)) return Number.isInteger(value) || Object.is(value, -0);
  return !Number.isSafeInteger(value) && token !== JSON.stringify(value);
}

/** The JSON text of `container[key]` when JSON.parse changed that number (numberChanged), else undefined. */
export function writtenNumber(container: object, key: string): string | undefined {
  return written.get(container)?.get(key);
}

/** Whether any member of `container` is such a number. */
export function holdsWrittenNumbers(container: object): boolean {
  return written.has(container);
}

/**
 * Gives `copy`, a new object made from the members of `source` (validation, a member left out,
 * one added), the number texts of `source` that it still holds under the same key, and returns
 * it. The record is kept against the container, so a copy of it would otherwise print its own
 * numbers as JSON.parse read them; members deeper down are the same objects and keep theirs.
 */
export function keepWrittenNumbers<T extends object>(source: object, copy: T): T {
  const from = written.get(source);
  if (!from || copy === source) return copy;
  const was = source as Record<string, unknown>;
  const now = copy as Record<string, unknown>;
  for (const [key, token] of from) {
    if (!Object.hasOwn(now, key) || !Object.is(now[key], was[key])) continue;
    let map = written.get(copy);
    if (!map) written.set(copy, (map = new Map()));
    map.set(key, token);
  }
  return copy;
}

/**
 * Records the numbers of `text` that JSON.parse changed, against the containers of `parsed` (its
 * JSON.parse value, possibly seen in written key order: util/key-order.ts), and returns `parsed`.
 * A text that cannot hold one is not walked.
 */
export function withWrittenNumbers<T>(text: string, parsed: T): T {
  if (!mayHoldChangedNumber(text)) return parsed;
  try {
    recordNumbers(parsed, parseOrderedJson(text));
  } catch (err) {
    // Nesting deeper than this walk's stack (JSON.parse goes deeper): numbers as parsed, as before.
    if (!(err instanceof RangeError)) throw err;
  }
  return parsed;
}

/**
 * A request body as the server reads it (server/http.ts): `parsed`, JSON.parse's value of
 * `text`, in written key order (withWrittenKeyOrder) and with its changed numbers' text recorded
 * (withWrittenNumbers), from one walk of the text, and none where neither can apply.
 */
export function withWrittenKeysAndNumbers(text: string, parsed: unknown): unknown {
  const order = mayHoldIntegerKey(text);
  const numbers = mayHoldChangedNumber(text);
  if (!order && !numbers) return parsed;
  let value = parsed;
  try {
    const tree = parseOrderedJson(text);
    if (order) value = inWrittenOrder(parsed, tree);
    if (numbers) recordNumbers(value, tree);
  } catch (err) {
    // Nesting deeper than these walks' stack (JSON.parse goes deeper): the value as far as it was
    // read (objects already reordered stay so; they are the same objects).
    if (!(err instanceof RangeError)) throw err;
  }
  return value;
}

/**
 * Records against each container of `value` the text of its members that JSON.parse changed,
 * from `tree`, the parse of the same text. A container's record is replaced whole, so one
 * walked again keeps none of an earlier text's. The tree holds a key written twice once, with its
 * later value, the one JSON.parse kept.
 */
function recordNumbers(value: unknown, tree: OrderedJson): void {
  if ('scalar' in tree || value === null || typeof value !== 'object') return;
  const container = value as Record<string, unknown>;
  let map: Map<string, string> | undefined;
  const member = (key: string, node: OrderedJson): void => {
    const v = container[key];
    if (!('scalar' in node)) recordNumbers(v, node);
    else if (typeof v === 'number' && numberChanged(node.scalar, v)) (map ??= new Map()).set(key, node.scalar);
  };
  if ('array' in tree) tree.array.forEach((node, i) => member(String(i), node));
  else for (const [key, node] of tree.object) member(key, node);
  if (map) written.set(container, map);
  else written.delete(container);
}
