// A JSON list read a chunk at a time (src/util/json-array-elements.ts): wherever the chunks are
// cut (inside a string, an escape, a multi-byte character, between an element and its comma), the
// elements are JSON.parse's of the whole text, and a text that is no list, or no JSON, is refused.
import { describe, expect, it } from 'vitest';
import { JsonArrayElements, JsonListError, type ElementSpan } from '../../src/util/json-array-elements.js';

function readInChunks(text: string | Buffer, size: number, spans: ElementSpan[] = []): { elements: unknown[]; count: number } {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const elements: unknown[] = [];
  const list = new JsonArrayElements((v, span) => {
    elements.push(v);
    spans.push(span);
  });
  // One reused buffer, as a file reader fills it: a kept piece must be a copy.
  const buffer = Buffer.alloc(size);
  for (let at = 0; at < bytes.length; at += size) {
    const n = bytes.copy(buffer, 0, at, Math.min(at + size, bytes.length));
    list.push(buffer.subarray(0, n));
  }
  return { elements, count: list.end() };
}

const tricky = `
 [ {"conversations": [{"from": "human", "value": "a \\"quoted\\" [x], {y}, z\\\\"}, {"from": "gpt", "value": "é 漢字 😀 \\u00e9\\n"}]},
   [1, [2, [3, {}]], []], "a string with ] and , and \\\\", -1.5e3, true, false, null, {},
   {"nested": {"deep": [{"k": "\\\\\\""}]}}, "😀" ]
`;

describe('JsonArrayElements', () => {
  it('gives JSON.parse\'s elements wherever the chunks are cut', () => {
    const whole = JSON.parse(tricky) as unknown[];
    for (const size of [1, 2, 3, 4, 5, 7, 11, 16, 64, 1 << 16]) {
      const { elements, count } = readInChunks(tricky, size);
      expect(elements, `chunks of ${size}`).toEqual(whole);
      expect(count).toBe(whole.length);
    }
  });

  it("says where each element's bytes lie, so it can be read again from them alone", () => {
    const bytes = Buffer.from(tricky, 'utf8');
    const whole = JSON.parse(tricky) as unknown[];
    for (const size of [1, 3, 7, 64, 1 << 16]) {
      const spans: ElementSpan[] = [];
      readInChunks(bytes, size, spans);
      expect(spans.length).toBe(whole.length);
      // each span re-parsed on its own gives that element (multi-byte characters counted as bytes)
      expect(spans.map((s) => JSON.parse(bytes.subarray(s.start, s.end).toString('utf8'))), `chunks of ${size}`).toEqual(whole);
    }
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[{"a": 1}, 2]')]);
    const spans: ElementSpan[] = [];
    readInChunks(bom, 5, spans);
    expect(spans).toEqual([{ start: 4, end: 12 }, { start: 13, end: 15 }]);
  });

  it('reads an empty list, and a UTF-8 byte order mark before the list', () => {
    expect(readInChunks('[]', 1)).toEqual({ elements: [], count: 0 });
    expect(readInChunks(' [ \n ] \n', 3)).toEqual({ elements: [], count: 0 });
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('[{"a": 1}]')]);
    expect(readInChunks(bom, 64).elements).toEqual([{ a: 1 }]);
  });

  it('refuses what is not a list, and broken JSON, saying which', () => {
    const refusal = (text: string) => {
      try {
        readInChunks(text, 4);
      } catch (err) {
        expect(err).toBeInstanceOf(JsonListError);
        return { message: (err as Error).message, notAList: (err as JsonListError).notAList };
      }
      throw new Error(`${text} was read`);
    };
    expect(refusal('{"conversations": []}')).toEqual({ message: 'it holds no list', notAList: true });
    expect(refusal(' "text"')).toMatchObject({ notAList: true });
    expect(refusal('abc')).toMatchObject({ message: 'unexpected byte at 0', notAList: false });
    expect(refusal('')).toMatchObject({ message: 'it is empty', notAList: false });
    expect(refusal('[{"a": 1}')).toMatchObject({ message: 'it ends before its list closes', notAList: false });
    expect(refusal('[1, "open')).toMatchObject({ message: 'it ends before its list closes' });
    expect(refusal('[1,]').message).toMatch(/an empty element before byte 3/);
    expect(refusal('[,1]').message).toMatch(/an empty element before byte 1/);
    expect(refusal('[1 2]').message).toMatch(/^element 1 \(ending at byte 4\): /);
    expect(refusal('[{"a": tru}]').message).toMatch(/^element 1 /);
    expect(refusal('[1] x').message).toMatch(/unexpected data after the list closes, at byte 4/);
    expect(refusal('[1}]').message).toMatch(/an unmatched '}' at byte 2/);
  });
});
