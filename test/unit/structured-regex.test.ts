// vLLM's guided_regex as a grammar of the whole answer: raw text (no JSON escaping) that the
// pattern matches from start to end, checked byte by byte by the native matcher against
// ECMAScript's own RegExp, and texts sampled token by token under it always match.
import { describe, expect, it } from 'vitest';
import { match, outputs, refusalOf, rng, sample } from './structured-sample.js';

const regexGrammar = (pattern: string, thinking = false) => outputs.compile({ kind: 'regex', pattern }, thinking).grammar;
const wholly = (pattern: string) => new RegExp(`^(?:${pattern.replace(/^\^/, '').replace(/\$$/, '')})$`, 'u');

describe('guided_regex grammars', () => {
  it('accept exactly the texts the pattern matches whole, raw: quotes, backslashes and newlines as themselves', () => {
    const patterns = ['a*b?', 'a.b', '^[^a-z]{1,3}$', '(ab|b1)+', '\\d\\s', '\\W*', '[\\w-]{2,}|é+', '.?中', '"', '[\\\\"\\n]+', 'x|^y$'];
    const alphabet = ['a', 'A', 'b', '1', ' ', '_', '-', '"', '\\', '\n', 'é', '中', '.', 'x', 'y'];
    const next = rng(7);
    for (const pattern of patterns) {
      const g = regexGrammar(pattern);
      const re = wholly(pattern);
      for (let i = 0; i < 300; i++) {
        const len = Math.floor(next() * 6);
        const text = Array.from({ length: len }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
        expect(match(g, text) === 'complete', `${pattern} on ${JSON.stringify(text)}`).toBe(re.test(text));
      }
    }
    // A partial match is a prefix the answer may still complete; text past a bounded match is refused.
    const phone = regexGrammar('\\d{3}-\\d{4}');
    expect(match(phone, '555-')).toBe('prefix');
    expect(match(phone, '555-1234')).toBe('complete');
    expect(match(phone, '555-12345')).toBe('rejected');
    expect(match(phone, 'x555-1234')).toBe('rejected');
  });

  it('answers sampled under the grammar match the pattern, with or without a think block before them', () => {
    const pattern = '(yes|no): [A-Z][a-z]{2,8}( and [a-z]{3})?\\.';
    for (const seed of [1, 2, 3, 4]) {
      const s = sample(regexGrammar(pattern), seed, 60);
      expect(s.finished, s.text).toBe(true);
      expect(s.text).toMatch(wholly(pattern));
    }
    const thought = sample(regexGrammar('[0-9]{2}', true), 9, 200, { thinkMaxTokens: 20 });
    expect(thought.text).toMatch(/^<think>[\s\S]*<\/think>\n{0,2}[0-9]{2}$/);
  });

  it('refuses what it cannot enforce, naming the construct', () => {
    const reason = (pattern: string) => refusalOf({ kind: 'regex', pattern });
    expect(reason('a(?=b)')).toMatch(/lookahead/);
    expect(reason('(a)\\1')).toMatch(/backreferences/);
    expect(reason('\\bword')).toMatch(/word boundaries/);
    expect(reason('a{2,1}')).toMatch(/out of order/);
    expect(reason('(a{1,1000}){1,1000}')).toMatch(/too large/);
  });
});
