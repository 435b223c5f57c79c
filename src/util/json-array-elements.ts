// The elements of a JSON list read a chunk at a time, each parsed on its own: a file of any size
// (ShareGPT_V3's 673 MB is past V8's longest string, ~512 MiB, so it cannot be one JSON.parse)
// costs the memory of its largest element, not of the file. The scanner only finds where each
// top-level element ends (depth, strings and their escapes); JSON.parse reads each element, so
// every syntax rule inside one is the standard parser's. A streaming JSON tokenizer (stream-json)
// would emit an event per token of a 673 MB file; here strings, most of such a file, are skipped
// with indexOf.

/** Why a text is not a JSON list (the caller words the error for its own input). */
export class JsonListError extends Error {
  constructor(
    message: string,
    /** true: valid-looking JSON that is not a list; false: not JSON at all. */
    readonly notAList = false,
  ) {
    super(message);
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Where one element's text lies in the whole input: bytes [start, end), spaces around it included. */
export interface ElementSpan {
  start: number;
  end: number;
}

/**
 * Feed chunks with push(), then end(); `onElement` gets each element of the list, parsed, in order,
 * with where its text lies, so a caller can keep positions and read an element again later instead
 * of keeping its value.
 */
export class JsonArrayElements {
  private phase: 'before' | 'inside' | 'after' = 'before';
  private depth = 0;  // nesting inside the current element
  private inString = false;
  private escaped = false;  // the byte after a backslash is next (possibly in the next chunk)
  private pieces: Buffer[] = [];  // the current element's bytes from earlier chunks
  private elements = 0;
  private offset = 0;  // bytes seen before the current chunk
  private elementStart = 0;  // where the current element's bytes begin in the whole input

  constructor(private readonly onElement: (value: unknown, span: ElementSpan) => void) {}

  push(chunk: Buffer): void {
    const len = chunk.length;
    let start = this.phase === 'inside' ? 0 : -1;  // where the current element's bytes begin in this chunk
    let nextQuote = -1;
    let nextBackslash = -1;
    let i = 0;
    if (this.offset === 0 && len >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) i = 3;  // a UTF-8 BOM
    while (i < len) {
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false;
          i++;
          continue;
        }
        // Jump to the string's next quote or backslash (each found once per chunk position).
        if (nextQuote < i) nextQuote = indexOr(chunk, QUOTE, i, len);
        if (nextBackslash < i) nextBackslash = indexOr(chunk, BACKSLASH, i, len);
        if (nextBackslash < nextQuote) {
          this.escaped = true;
          i = nextBackslash + 1;
        } else if (nextQuote === len) {
          i = len;
        } else {
          this.inString = false;
          i = nextQuote + 1;
        }
        continue;
      }
      const b = chunk[i];
      if (this.phase === 'before') {
        if (b === 0x5b) {
          this.phase = 'inside';
          start = i + 1;
          this.elementStart = this.offset + start;
        } else if (!isSpace(b)) {
          // '{', a string, a number or a literal: JSON, but not a list.
          const jsonStart = b === 0x7b || b === QUOTE || b === 0x2d || (b >= 0x30 && b <= 0x39) || b === 0x74 || b === 0x66 || b === 0x6e;
          throw new JsonListError(jsonStart ? 'it holds no list' : `unexpected byte at ${this.offset + i}`, jsonStart);
        }
      } else if (this.phase === 'after') {
        if (!isSpace(b)) throw new JsonListError(`unexpected data after the list closes, at byte ${this.offset + i}`);
      } else if (b === QUOTE) {
        this.inString = true;
      } else if (b === 0x7b || b === 0x5b) {
        this.depth++;
      } else if (b === 0x7d || (b === 0x5d && this.depth > 0)) {
        this.depth--;
        if (this.depth < 0) throw new JsonListError(`an unmatched '}' at byte ${this.offset + i}`);
      } else if (this.depth === 0 && (b === 0x2c || b === 0x5d)) {
        this.finishElement(chunk.subarray(start, i), b === 0x5d, this.offset + i);
        if (b === 0x5d) this.phase = 'after';
        start = i + 1;
        this.elementStart = this.offset + start;
      }
      i++;
    }
    // The element goes on in the next chunk: keep a copy (the caller may reuse its buffer).
    if (this.phase === 'inside' && start >= 0 && start < len) this.pieces.push(Buffer.from(chunk.subarray(start, len)));
    this.offset += len;
  }

  /** The number of elements read. Throws JsonListError where the text ended before the list did. */
  end(): number {
    if (this.phase !== 'after') throw new JsonListError(this.phase === 'before' ? 'it is empty' : 'it ends before its list closes');
    return this.elements;
  }

  private finishElement(tail: Buffer, closing: boolean, at: number): void {
    const bytes = this.pieces.length ? Buffer.concat([...this.pieces, tail]) : tail;
    this.pieces = [];
    const text = bytes.toString('utf8').trim();
    if (text === '') {
      if (closing && this.elements === 0) return;  // "[]"
      throw new JsonListError(`an empty element before byte ${at}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new JsonListError(`element ${this.elements + 1} (ending at byte ${at}): ${(err as Error).message}`);
    }
    this.elements++;
    this.onElement(value, { start: this.elementStart, end: at });
  }
}

function indexOr(chunk: Buffer, byte: number, from: number, none: number): number {
  const at = chunk.indexOf(byte, from);
  return at < 0 ? none : at;
}
