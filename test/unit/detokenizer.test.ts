import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BYTE_TO_CHAR } from '../../src/chat/byte-level.js';
import { IncrementalDecoder } from '../../src/chat/incremental-decoder.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { fixturesDir, readJson, tokenizerDir } from '../helpers/fixtures.js';

interface TokenizerCase {
  text: string;
  ids: number[];
  decoded: string;
  decoded_skip_special: string;
}

const cases = [
  ...readJson<{ cases: TokenizerCase[] }>(join(fixturesDir, 'tokenizer-goldens.json')).cases,
  ...readJson<{ cases: TokenizerCase[] }>(join(fixturesDir, 'tokenizer-extra-goldens.json')).cases,
];

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/u;

let tok: Tokenizer;
beforeAll(() => {
  tok = Tokenizer.fromDir(tokenizerDir);
});

/** Pushes ids in chunks of the given sizes (cycled); returns every chunk of text, flush last. */
function stream(ids: number[], sizes: number[], skipSpecialTokens = false): string[] {
  const dec = new IncrementalDecoder(tok, { skipSpecialTokens });
  const out: string[] = [];
  for (let i = 0, k = 0; i < ids.length; k++) {
    const n = sizes[k % sizes.length];
    out.push(dec.push(ids.slice(i, i + n)));
    i += n;
  }
  out.push(dec.flush());
  return out;
}

describe('IncrementalDecoder', () => {
  it('is exercised by characters split across tokens', () => {
    // Tokens whose own bytes are not valid UTF-8: the decoder must hold them back.
    const partial = cases.flatMap((c) => c.ids).filter((id) => tok.decode([id]).includes('\uFFFD'));
    expect(partial.length).toBeGreaterThan(50);
  });

  it('streams token by token to exactly Hugging Face decode, never a broken character', () => {
    for (const c of cases) {
      for (const skip of [false, true]) {
        const chunks = stream(c.ids, [1], skip);
        const want = skip ? c.decoded_skip_special : c.decoded;
        expect(chunks.join('')).toBe(want);
        for (const chunk of chunks) {
          if (!want.includes('\uFFFD')) expect(chunk).not.toContain('\uFFFD');
          expect(chunk).not.toMatch(LONE_SURROGATE);
        }
      }
    }
  });

  it('gives the same text for any batching of the ids', () => {
    for (const c of cases) {
      expect(stream(c.ids, [3, 1, 2]).join('')).toBe(c.decoded);
      expect(stream(c.ids, [c.ids.length || 1]).join('')).toBe(c.decoded);
    }
  });

  it('emits each character as soon as its last byte arrives', () => {
    const ids = tok.encode('😀😃 中文');
    const dec = new IncrementalDecoder(tok);
    let seen = '';
    for (let i = 0; i < ids.length; i++) {
      seen += dec.push([ids[i]]);
      expect(seen).toBe(tok.decode(ids.slice(0, i + 1)).replace(/\uFFFD+$/u, ''));
    }
    expect(dec.flush()).toBe('');
  });

  it('turns bytes left unfinished into U+FFFD on flush, as a full decode does', () => {
    // '😀' is F0 9F 98 80; spell it with the single-byte tokens and cut before the last byte.
    const byteIds = [...new TextEncoder().encode('a😀')].map((b) => tok.tokenToId(BYTE_TO_CHAR[b])!);
    const cut = byteIds.slice(0, -1);
    const dec = new IncrementalDecoder(tok);
    expect(cut.map((id) => dec.push([id])).join('')).toBe('a');
    expect(dec.flush()).toBe('\uFFFD');
    expect(tok.decode(cut)).toBe('a\uFFFD');
    // Whole, it comes out at its last byte.
    expect(stream(byteIds, [1])).toEqual(['a', '', '', '', '😀', '']);
    // Invalid bytes in the middle become U+FFFD at once, where a full decode puts them.
    const broken = [byteIds[1], ...tok.encode('x')];
    expect(stream(broken, [1]).join('')).toBe(tok.decode(broken));
  });

  it('skips special tokens but keeps <think> and <tool_call>', () => {
    const ids = tok.encode('<|im_start|>assistant\n<think>\nx\n</think>\n\n<tool_call>{}</tool_call><|im_end|>');
    expect(stream(ids, [1], true).join('')).toBe('assistant\n<think>\nx\n</think>\n\n<tool_call>{}</tool_call>');
    expect(stream(ids, [1], false).join('')).toBe(tok.decode(ids));
  });
});
