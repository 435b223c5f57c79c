import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BYTE_TO_CHAR } from '../../src/chat/byte-level.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { GrpstError } from '../../src/util/errors.js';
import { fixturesDir, readJson, refs, tokenizerDir } from '../helpers/fixtures.js';

interface TokenizerCase {
  text: string;
  ids: number[];
  decoded: string;
  decoded_skip_special: string;
}

const goldens = readJson<{ cases: TokenizerCase[] }>(join(fixturesDir, 'tokenizer-goldens.json')).cases;
const extra = readJson<{ cases: TokenizerCase[] }>(join(fixturesDir, 'tokenizer-extra-goldens.json')).cases;
const allCases = [...goldens, ...extra];
const utf8 = new TextEncoder();

let tok: Tokenizer;
beforeAll(() => {
  tok = Tokenizer.fromDir(tokenizerDir);
});

describe('Tokenizer ids equal Hugging Face tokenizers', () => {
  it.each(goldens.map((c, i) => [i, c] as const))('corpus text %i', (_i, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
  });

  it('matches the extra goldens (edge cases and seeded random strings)', () => {
    const wrong = extra.filter((c) => JSON.stringify(tok.encode(c.text)) !== JSON.stringify(c.ids)).map((c) => c.text);
    expect(wrong).toEqual([]);
  });

  it('gives the same ids from a warm cache, in any order', () => {
    const fresh = Tokenizer.fromDir(tokenizerDir);
    const reversed = [...allCases].reverse();
    for (const round of [reversed, allCases]) {
      for (const c of round) expect(fresh.encode(c.text)).toEqual(c.ids);
    }
  });

  it('matches the prompt ids of the model references (a longer mixed text)', () => {
    // scripts/make_fixtures.py: the first 300 ids of the first 14 corpus texts, joined by
    // newlines, twice.
    const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!;
    const text = goldens.slice(0, 14).map((c) => c.text).join('\n').repeat(2);
    expect(tok.encode(text).slice(0, 300)).toEqual(long.prompt_ids);
  });
});

describe('decode', () => {
  it('equals Hugging Face decode, with and without special tokens', () => {
    for (const c of allCases) {
      expect(tok.decode(c.ids)).toBe(c.decoded);
      expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded_skip_special);
    }
  });

  it('round-trips every corpus text (normalized as tokenizers does it)', () => {
    for (const c of allCases) expect(tok.decode(tok.encode(c.text))).toBe(c.decoded);
  });

  it('drops ids that have no token (the model vocabulary is padded past 151,669)', () => {
    expect(tok.decode([9707, 151_700, 151_935, 11])).toBe('Hello,');
  });
});

describe('vocabulary', () => {
  it('has the Qwen3 sizes and special tokens', () => {
    expect(tok.vocabSize).toBe(151_669);
    expect(tok.eosTokenId).toBe(151_645);
    expect(tok.padTokenId).toBe(151_643);
    expect(tok.bosTokenId).toBeUndefined();
    expect(tok.tokenToId('<|im_start|>')).toBe(151_644);
    expect(tok.tokenToId('<think>')).toBe(151_667);
    expect(tok.tokenToId('</think>')).toBe(151_668);
    expect(tok.tokenToId('<tool_call>')).toBe(151_657);
    expect(tok.tokenToId('Ġworld')).toBe(1879);
    expect(tok.idToToken(1879)).toBe('Ġworld');
    expect(tok.idToToken(151_645)).toBe('<|im_end|>');
    expect(tok.idToToken(151_669)).toBeUndefined();
    expect(tok.specialTokenIds).toEqual(Array.from({ length: 14 }, (_, i) => 151_643 + i));
    expect(tok.isSpecial(151_645)).toBe(true);
    expect(tok.isSpecial(151_667)).toBe(false); // <think> is added but not special
    expect(tok.isSpecial(1879)).toBe(false);
  });

  it('gives each token its raw bytes', () => {
    expect([...tok.tokenBytes(1879)]).toEqual([...utf8.encode(' world')]);
    expect([...tok.tokenBytes(151_644)]).toEqual([...utf8.encode('<|im_start|>')]);
    expect(tok.tokenBytes(151_700).length).toBe(0);
    const all = tok.allTokenBytes();
    expect(all.length).toBe(tok.vocabSize);
    // Every byte has its own token, and the token bytes of any encoding spell the UTF-8 text.
    for (let b = 0; b < 256; b++) expect(all.filter((t) => t.length === 1 && t[0] === b).length).toBeGreaterThanOrEqual(1);
    for (const c of allCases) {
      const joined = Buffer.concat(c.ids.map((id) => all[id]));
      expect(joined.equals(Buffer.from(utf8.encode(c.decoded)))).toBe(true);
    }
    const packed = tok.packedTokenBytes();
    expect(packed.offsets.length).toBe(tok.vocabSize + 1);
    expect(packed.offsets[tok.vocabSize]).toBe(packed.data.length);
  });
});

describe('added tokens in text', () => {
  const text = 'a<|im_end|>b<think>c';

  it('are recognized by default, special or not', () => {
    expect(tok.encode(text)).toEqual([...tok.encode('a'), 151_645, ...tok.encode('b'), 151_667, ...tok.encode('c')]);
  });

  it('are plain text with allowSpecial: false', () => {
    const ids = tok.encode(text, { allowSpecial: false });
    expect(ids.some((id) => id >= 151_643)).toBe(false);
    expect(tok.decode(ids)).toBe(text);
  });

  it('are plain text inside noSpecialIn ranges only', () => {
    // [1, 11) covers "<|im_end|>"; "<think>" at 12 stays a token.
    const ids = tok.encode(text, { noSpecialIn: [[1, 11]] });
    expect(ids).not.toContain(151_645);
    expect(ids).toContain(151_667);
    expect(tok.decode(ids)).toBe(text);
    // A range touching only part of a token is enough to keep it text.
    expect(tok.encode(text, { noSpecialIn: [[10, 11]] })).not.toContain(151_645);
    // A match rejected in a range does not hide a token that starts right after it.
    expect(tok.encode('<|im_end|><|im_end|>', { noSpecialIn: [[0, 10]] }).filter((id) => id === 151_645)).toHaveLength(1);
  });
});

describe('bad tokenizer folders', () => {
  it('names the missing tokenizer.json and the fix', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpst-tok-'));
    try {
      Tokenizer.fromDir(dir);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(GrpstError);
      expect((e as GrpstError).message).toContain('tokenizer.json is missing');
      expect((e as GrpstError).hint).toMatch(/copy tokenizer.json/);
    }
  });

  it('builds a small byte-level BPE and rejects pipelines it cannot reproduce', () => {
    const vocab: Record<string, number> = {};
    BYTE_TO_CHAR.forEach((c, b) => (vocab[c] = b));
    Object.assign(vocab, { he: 256, ll: 257, hell: 258, 'Ġw': 259 });
    const qwen = readJson<Record<string, unknown>>(join(tokenizerDir, 'tokenizer.json'));
    const small = () => ({
      normalizer: { type: 'NFC' },
      pre_tokenizer: structuredClone(qwen.pre_tokenizer),
      decoder: qwen.decoder,
      added_tokens: [{ id: 260, content: '<eos>', special: true }],
      model: { type: 'BPE', vocab: { ...vocab }, merges: ['h e', ['l', 'l'], 'he ll', 'Ġ w'] },
    });
    const t = new Tokenizer(small() as never, { eos_token: '<eos>' });
    expect(t.vocabSize).toBe(261);
    expect(t.eosTokenId).toBe(260);
    expect(t.encode('hello world<eos>')).toEqual([258, 111, 259, 111, 114, 108, 100, 260]);
    const broken: Array<[string, (j: ReturnType<typeof small>) => void, RegExp]> = [
      ['normalizer', (j) => (j.normalizer = { type: 'Lowercase' }), /normalizer Lowercase is not supported/],
      ['pre-tokenizer', (j) => (j.pre_tokenizer = { type: 'Whitespace' }), /pre-tokenizer .* does not support/],
      ['regex flags', (j) => ((j.pre_tokenizer as any).pretokenizers = [{ type: 'Split', pattern: { Regex: '(?x) a' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', use_regex: false }]), /inline flags/],
      ['decoder', (j) => (j.decoder = { type: 'WordPiece' } as never), /decoder .* is not ByteLevel/],
      ['merge', (j) => j.model.merges.push('x yz'), /merge 4 \(x yz\) names a token missing/],
      ['byte', (j) => delete j.model.vocab[BYTE_TO_CHAR[0]], /lacks the byte-level token for byte 0/],
    ];
    for (const [, mutate, message] of broken) {
      const j = small();
      mutate(j);
      expect(() => new Tokenizer(j as never)).toThrow(message);
    }
  });

  it("adds the post-processor's special tokens as tokenizer(text) does (embedding models append their end token)", () => {
    const qwen = readJson<Record<string, unknown>>(join(tokenizerDir, 'tokenizer.json'));
    const text = 'The sea is deep.';
    const plain = tok.encode(text);
    // Qwen3's own post-processor is ByteLevel: nothing is added.
    expect(tok.encodeWithSpecialTokens(text)).toEqual(plain);
    const template = {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }],
      pair: [],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [151643], tokens: ['<|endoftext|>'] } },
    };
    const withTemplate = new Tokenizer({ ...qwen, post_processor: template } as never);
    expect(withTemplate.encodeWithSpecialTokens(text)).toEqual([...plain, 151643]);
    expect(withTemplate.encode(text)).toEqual(plain);
    // Inside a Sequence of processors (ByteLevel first), as tokenizers writes several.
    const sequence = new Tokenizer({ ...qwen, post_processor: { type: 'Sequence', processors: [{ type: 'ByteLevel' }, template] } } as never);
    expect(sequence.encodeWithSpecialTokens(text)).toEqual([...plain, 151643]);
    const broken = { ...template, special_tokens: {} };
    expect(() => new Tokenizer({ ...qwen, post_processor: broken } as never)).toThrow(/post_processor names the special token "<\|endoftext\|>" but does not list its ids/);
  });

  it('rejects a corrupt tokenizer.json and an eos_token that is not in it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpst-tok-'));
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    expect(() => Tokenizer.fromDir(dir)).toThrow(/not valid JSON/);
    copyFileSync(join(tokenizerDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|nope|>' }));
    expect(() => Tokenizer.fromDir(dir)).toThrow(/eos_token "<\|nope\|>" is not in tokenizer.json/);
  });
});
