// vLLM's structural tags: free text in which every trigger opens one of the structures (begin, a
// JSON value of its schema, end). Which texts the native matcher accepts byte by byte, that
// answers sampled token by token under a tag always satisfy an independent check (every trigger
// in the text opens a structure whose JSON validates), and which tags are refused.
import { describe, expect, it } from 'vitest';
import type { StructuralTagSpec } from '../../src/structured/structural-tag.js';
import { match, outputs, refusalOf, sample, validator } from './structured-sample.js';

const tag = (spec: StructuralTagSpec, thinking = false) => outputs.compile({ kind: 'structural_tag', ...spec }, thinking).grammar;

const point = { type: 'object', properties: { x: { type: 'integer' } }, required: ['x'], additionalProperties: false };
const tools: StructuralTagSpec = {
  structures: [
    { begin: '<function=move>', schema: point, end: '</function>' },
    { begin: '<function=stop>', schema: { type: 'object', properties: {}, additionalProperties: false }, end: '</function>' },
  ],
  triggers: ['<function='],
};

/** Every occurrence of a trigger outside a structure opens one: begin, JSON that validates, end. An unfinished text may stop inside its last structure. */
function followsTag(text: string, spec: StructuralTagSpec, finished: boolean): boolean {
  const ajv = validator();
  let i = 0;
  for (;;) {
    const at = Math.min(...spec.triggers.map((t) => text.indexOf(t, i)).filter((p) => p >= 0), Infinity);
    if (at === Infinity) return true;
    const s = spec.structures.find((st) => text.startsWith(st.begin, at));
    if (!s) return !finished && spec.structures.some((st) => st.begin.startsWith(text.slice(at)));
    const bodyStart = at + s.begin.length;
    const close = text.indexOf(s.end, bodyStart);
    if (close < 0) return !finished;
    let value: unknown;
    try {
      value = JSON.parse(text.slice(bodyStart, close));
    } catch {
      return false;
    }
    if (!ajv.validate(s.schema ?? true, value)) return false;
    i = close + s.end.length;
  }
}

describe('structural tags', () => {
  it('accepts free text, and a trigger only as the start of a structure whose JSON fits its schema', () => {
    const g = tag(tools);
    for (const ok of [
      '',
      'plain text with < and = and function words',
      'Moving: <function=move>{"x": 3}</function> then done.',
      '<function=stop>{}</function><function=move>{"x":-1}</function>',
      'a <function=move>{"x": 1}</function> b <function=stop>{}</function> c',
    ])
      expect(match(g, ok), ok).toBe('complete');
    for (const bad of [
      'a <function=jump>{}</function>', // a trigger that opens no structure
      '<function=move>{"x": "1"}</function>', // its JSON breaks the schema
      '<function=move>{"x": 1}', // never closed
      '<function=stop>{"y": 1}</function>',
    ])
      expect(match(g, bad), bad).not.toBe('complete');
    expect(match(g, 'text <function=mo')).toBe('prefix');
    expect(match(g, 'text <function=move>{"x": 2')).toBe('prefix');
  });

  it('handles triggers that overlap themselves and each other, byte by byte (Aho-Corasick)', () => {
    const g = tag({ structures: [{ begin: 'aab!', schema: { type: 'integer' }, end: '.' }, { begin: 'b#', end: ';' }], triggers: ['aab', 'b#'] });
    for (const ok of ['', 'aa', 'aaab!7.', 'xaab!12.b#"s";', 'ab', 'ba', 'b', 'aaaa', 'aab!1.aab!2.']) expect(match(g, ok), ok).toBe('complete');
    // "aaab" ends in "aab": a trigger that must open a structure; "ab#" holds "b#".
    for (const bad of ['aaab', 'aaabx', 'ab#', 'xb#x', 'aab!x.']) expect(match(g, bad), bad).not.toBe('complete');
    // Multi-byte characters in a trigger are matched byte by byte.
    const wide = tag({ structures: [{ begin: '→call', schema: { type: 'boolean' }, end: '←' }], triggers: ['→'] });
    expect(match(wide, 'a → b')).not.toBe('complete');
    expect(match(wide, 'a →calltrue← b ←')).toBe('complete');
    expect(match(wide, 'arrows ← ↑ ↓')).toBe('complete');
  });

  it('sampled answers always satisfy the tag, structures included', () => {
    // A one-character trigger that many tokens contain, so random answers open structures.
    const spec: StructuralTagSpec = { structures: [{ begin: '<p>', schema: point, end: '</p>' }], triggers: ['<'] };
    const g = tag(spec);
    let opened = 0;
    for (let seed = 1; seed <= 12; seed++) {
      const s = sample(g, seed, 300);
      expect(followsTag(s.text, spec, s.finished), s.text).toBe(true);
      opened += s.text.split('<p>').length - 1;
    }
    expect(opened).toBeGreaterThan(0);
    // With thinking on, the think block comes first and is free.
    const thought = sample(tag(spec, true), 5, 200, { thinkMaxTokens: 30 });
    const answer = thought.text.replace(/^<think>[\s\S]*?<\/think>\n{0,2}/, '');
    expect(followsTag(answer, spec, thought.finished)).toBe(true);
  });

  it('refuses a tag whose structures cannot be written, naming the place', () => {
    expect(refusalOf({ kind: 'structural_tag', structures: [{ begin: '<fn>', end: '</fn>' }], triggers: ['<call'] })).toMatch(
      /structures\[0\]\.begin "<fn>" does not start with any of the triggers/,
    );
    expect(refusalOf({ kind: 'structural_tag', structures: [{ begin: '<fn>', end: '</fn>' }], triggers: [''] })).toMatch(/a trigger is the empty string/);
    expect(refusalOf({ kind: 'structural_tag', structures: [{ begin: '<fn>', schema: { type: 'object', patternProperties: { a: {} }, additionalProperties: false }, end: '' }], triggers: ['<'] })).not.toBe('accepted');
  });
});
