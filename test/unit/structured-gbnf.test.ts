// vLLM's guided_grammar: GBNF grammars (llama.cpp's and xgrammar's EBNF) as the grammar of the
// whole answer. Which texts they accept (checked byte by byte by the native matcher), that
// answers sampled token by token under them always parse, and which grammars are refused, with
// the place named.
import { describe, expect, it } from 'vitest';
import { match, outputs, refusalOf, rng, sample } from './structured-sample.js';

const gbnf = (grammar: string, thinking = false) => outputs.compile({ kind: 'grammar', grammar }, thinking).grammar;

const arithmetic = `
# sums and products of small numbers, with parentheses
root   ::= expr
expr   ::= term (("+" | "-") term)*
term   ::= factor ("*" factor)*
factor ::= [0-9]{1,3} | "(" expr ")"
`;

/** A recursive-descent check of the same language, written independently. */
function isArithmetic(text: string): boolean {
  let i = 0;
  const factor = (): boolean => {
    if (text[i] === '(') {
      i++;
      if (!expr() || text[i] !== ')') return false;
      i++;
      return true;
    }
    const m = /^[0-9]{1,3}/.exec(text.slice(i));
    if (!m || /^[0-9]/.test(text.slice(i + m[0].length))) return false;
    i += m[0].length;
    return true;
  };
  const term = (): boolean => {
    if (!factor()) return false;
    while (text[i] === '*') {
      i++;
      if (!factor()) return false;
    }
    return true;
  };
  const expr = (): boolean => {
    if (!term()) return false;
    while (text[i] === '+' || text[i] === '-') {
      i++;
      if (!term()) return false;
    }
    return true;
  };
  return expr() && i === text.length;
}

const refusal = (grammar: string): string => refusalOf({ kind: 'grammar', grammar });

describe('guided_grammar (GBNF)', () => {
  it('accepts exactly the texts of a recursive grammar', () => {
    const g = gbnf(arithmetic);
    for (const ok of ['7', '1+2*3', '(1+2)*3', '((42))', '10-(2*(3+4))*5']) expect(match(g, ok), ok).toBe('complete');
    for (const bad of ['', '1+', '(1+2', '1++2', '1234', ' 1', '1)', 'a']) expect(match(g, bad), bad).not.toBe('complete');
    expect(match(g, '(1+')).toBe('prefix');
    const alphabet = ['1', '2', '+', '-', '*', '(', ')'];
    const next = rng(11);
    for (let n = 0; n < 400; n++) {
      const text = Array.from({ length: 1 + Math.floor(next() * 7) }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
      expect(match(g, text) === 'complete', text).toBe(isArithmetic(text));
    }
  });

  it('literals with escapes, single quotes, classes, negation, dot and counts', () => {
    const g = gbnf(`root ::= "say \\"" word '\\'' [^\\n]? "\\u00e9" . [a-c\\]]{2} "\\x41"?
word ::= [a-z]+`);
    expect(match(g, 'say "hi\'xéz]aA')).toBe('complete');
    expect(match(g, 'say "hi\'é中bc')).toBe('complete');
    expect(match(g, 'say "hi\'\né中bc')).toBe('rejected');
    expect(match(g, 'say "Hi\'é中bc')).toBe('rejected');
  });

  it('answers sampled under it parse, after a think block too', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const s = sample(gbnf(arithmetic), seed, 120);
      expect(s.finished, s.text).toBe(true);
      expect(isArithmetic(s.text), s.text).toBe(true);
    }
    const thought = sample(gbnf('root ::= ("yes" | "no") "."', true), 3, 200, { thinkMaxTokens: 20 });
    expect(thought.text).toMatch(/^<think>[\s\S]*<\/think>\n{0,2}(yes|no)\.$/);
  });

  it('Lark grammars, as vLLM takes them: rules, alternatives on their own lines, ranges, regex terminals; start picks the root', () => {
    const lark = `
// a Lark grammar of simple SELECT statements
?start: select_statement
?select_statement: "SELECT " column_list " FROM " table_name
?column_list: column_name ("," column_name)*
table_name: identifier   # one word
    | identifier "." identifier
column_name: identifier | DIGIT
identifier: /[a-zA-Z_][a-zA-Z0-9_]*/
DIGIT: "0".."9"
`;
    const g = gbnf(lark);
    for (const ok of ['SELECT a FROM t', 'SELECT a,b_2,7 FROM s.t']) expect(match(g, ok), ok).toBe('complete');
    for (const bad of ['SELECT FROM t', 'SELECT a FROM 1t', 'SELECT a FROM t.', 'select a FROM t', 'SELECT 12 FROM t']) expect(match(g, bad), bad).not.toBe('complete');
    for (const seed of [1, 2, 3]) {
      const s = sample(g, seed, 80);
      expect(s.text).toMatch(/^SELECT ([a-zA-Z_][a-zA-Z0-9_]*|[0-9])(,([a-zA-Z_][a-zA-Z0-9_]*|[0-9]))* FROM [a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)?$/);
    }
    // Without a start rule the first rule is the root.
    expect(match(gbnf('greeting: "hi" | "hello"'), 'hello')).toBe('complete');
    expect(refusal('start: NAME\n%import common.CNAME -> NAME')).toMatch(/line 2: Lark directives \(%import\) are not supported/);
    expect(refusal('start.2: "a"')).toMatch(/line 1: rule priorities/);
    expect(refusal('start: /[a-z]+/i')).toMatch(/regular-expression flags are not supported/);
    expect(refusal('start: "a"\n"b"')).toMatch(/line 2: expected a rule/);
    expect(refusal('start: "ab".."z"')).toMatch(/must join two single characters/);
  });

  it('refuses what it cannot enforce, naming the rule and the place', () => {
    expect(refusal('expr ::= "a"')).toMatch(/no rule "root"/);
    expect(refusal('root ::= item\n')).toMatch(/rule "item" is used at line 1, column 10 but never defined/);
    expect(refusal('root ::= expr\nexpr ::= expr "+" "1" | "1"')).toMatch(/left recursion: expr -> expr/);
    expect(refusal('root ::= a\na ::= "x"? b\nb ::= a "y" | "z"')).toMatch(/left recursion: a -> b -> a/);
    expect(refusal('root ::= "a"\nroot ::= "b"')).toMatch(/line 2, column 1: rule "root" is defined twice/);
    expect(refusal('root ::= a\na: "x"')).toMatch(/line 2, column 1: "a:" is how Lark writes a rule; in a grammar with GBNF rules write `a ::= \.\.\.`/);
    expect(refusal('root ::= ("a" | "b"\nx ::= "c"')).toMatch(/line 2, column 1: a group is not closed/);
    expect(refusal('root ::= "abc')).toMatch(/line 1, column 10: a literal is not closed/);
    expect(refusal('root ::= [z-a]')).toMatch(/out of order/);
    expect(refusal('root ::= "a"{2000}')).toMatch(/counts above 1000/);
    expect(refusal('root ::= "\\q"')).toMatch(/the escape "\\q" is not supported/);
    // Right recursion is fine: the matcher reads a byte before each call.
    expect(refusal('root ::= "a" root | "b"')).toBe('accepted');
  });
});
