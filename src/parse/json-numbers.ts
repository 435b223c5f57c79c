// Numbers of a request body as the client wrote them. JSON.parse keeps only a double: `1.0` and
// `1` both become 1, `-0.0` becomes -0 (written "0" again), `1e20` becomes an integer, and an
// integer above 2^53 loses digits. Python's json.loads keeps `1.0`, `-0.0` and `1e20` floats and
// every integer exact, and its json.dumps writes them back so ("1.0", "-0.0", "1e+20", all the
// digits): a chat template that prints a tool's schema or a call's arguments with tojson puts
// that text in the prompt under transformers and vLLM. So the text of each such number is kept
// beside the parsed value, keyed by the object or array that holds it, for the template bridge to
// write it back (chat/render-prompt.ts); every other reader keeps seeing the plain number.
//
// Only a body that can hold such a number (the scan below) is walked a second time.

/** Container -> member key (an array index as a string) -> the number's JSON text. */
const written = new WeakMap<object, Map<string, string>>();

/**
 * A number token, right after `:`, `[` or `,`, that has a fraction or an exponent, or 16 digits
 * or more: the only ones JSON.parse may not give back as Python would write them. Inside a
 * string it only costs the walk.
 */
const changedNumber = /[:,[][ \t\n\r]*-?(?:\d+[.eE]|\d{16})/;

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
    walk(text, parsed);
  } catch (err) {
    // Nesting deeper than this walk's stack (JSON.parse goes deeper): numbers as parsed, as before.
    if (!(err instanceof RangeError)) throw err;
  }
  return parsed;
}

/** Walks text JSON.parse accepted (it is the validator), beside the value it gave. */
function walk(text: string, parsed: unknown): void {
  let at = 0;
  const space = (): void => {
    for (let c = text.charCodeAt(at); c === 32 || c === 10 || c === 13 || c === 9; c = text.charCodeAt(++at));
  };
  /** Index after the string that opens at `at`. */
  const stringEnd = (): number => {
    let end = at;
    for (;;) {
      end = text.indexOf('"', end + 1);
      if (end < 0) throw new Error('unterminated JSON string');
      let slashes = 0;
      while (text.charCodeAt(end - 1 - slashes) === 92) slashes++;
      if (slashes % 2 === 0) return end + 1;
    }
  };
  const record = (container: object | undefined, key: string, token: string | undefined, member: unknown): void => {
    if (!container) return;
    let map = written.get(container);
    // A key written twice: the last value is the one parsed, so an earlier record goes.
    if (token !== undefined && typeof member === 'number' && numberChanged(token, member)) {
      if (!map) written.set(container, (map = new Map()));
      map.set(key, token);
    } else map?.delete(key);
  };
  /**
   * Walks one value; returns its text when it is a number. `v` is what JSON.parse made of it, or
   * something else for a key written twice (JSON.parse kept the later value): nothing is then
   * recorded against it.
   */
  const value = (v: unknown): string | undefined => {
    space();
    const c = text[at];
    if (c === '{') {
      at++;
      space();
      if (text[at] === '}') return void at++;
      const object = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
      for (;;) {
        space();
        const start = at;
        at = stringEnd();
        const raw = text.slice(start + 1, at - 1);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(start, at)) as string) : raw;
        space();
        at++; // ':'
        const member = object?.[key];
        record(object, key, value(member), member);
        space();
        if (text[at++] === '}') return undefined;
      }
    }
    if (c === '[') {
      at++;
      space();
      if (text[at] === ']') return void at++;
      const array = Array.isArray(v) ? v : undefined;
      for (let i = 0; ; i++) {
        record(array, String(i), value(array?.[i]), array?.[i]);
        space();
        if (text[at++] === ']') return undefined;
      }
    }
    if (c === '"') {
      at = stringEnd();
      return undefined;
    }
    const start = at;
    while (at < text.length && !' \t\n\r,]}'.includes(text[at])) at++;
    return c === '-' || (c >= '0' && c <= '9') ? text.slice(start, at) : undefined;
  };
  value(parsed);
}
