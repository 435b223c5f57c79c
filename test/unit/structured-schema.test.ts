// The JSON Schema compiler: which texts its grammars accept (checked byte by byte by the
// native matcher), that random constrained outputs always validate with ajv, and which
// schemas it refuses, with the keyword and the place named.
import { describe, expect, it } from 'vitest';
import { SchemaError } from '../../src/structured/schema-errors.js';
import { StructuredOutputs } from '../../src/structured/structured-outputs.js';
import { match, outputs, rng, sample, schemaGrammar, tokenizer, validator } from './structured-sample.js';

const ajv = validator();

describe('schema grammars accept exactly the valid texts', () => {
  it('strings: escapes, unicode, and nothing JSON forbids', () => {
    const g = schemaGrammar({ type: 'string' });
    for (const ok of ['""', '"a\\"b\\\\c\\/d"', '"\\b\\f\\n\\r\\t"', '"\\u00e9\\u20AC\\uFFFF"', '"é中😀"', '"\u007f"']) expect(match(g, ok), ok).toBe('complete');
    for (const bad of ['"\\x41"', '"\\ud800"', '"\\uDFFF"', '"a\nb"', '"\t"', '"\\u12"', '"abc', "'a'"]) expect(match(g, bad), bad).not.toBe('complete');
    // Invalid UTF-8: a lone continuation byte, an overlong form, a surrogate encoded directly.
    for (const bytes of [[0x22, 0x80, 0x22], [0x22, 0xc0, 0xaf, 0x22], [0x22, 0xed, 0xa0, 0x80, 0x22], [0x22, 0xf5, 0x80, 0x80, 0x80, 0x22]])
      expect(g.match(Uint8Array.from(bytes))).toBe('rejected');
    expect(match(g, '"abc')).toBe('prefix');
  });

  it('string length bounds count code points', () => {
    const g = schemaGrammar({ type: 'string', minLength: 2, maxLength: 3 });
    expect(match(g, '"a')).toBe('prefix');
    expect(match(g, '"a"')).toBe('rejected');
    expect(match(g, '"ab"')).toBe('complete');
    expect(match(g, '"😀中é"')).toBe('complete');
    expect(match(g, '"\\n\\u0041x"')).toBe('complete');
    expect(match(g, '"abcd"')).toBe('rejected');
  });

  it('numbers: signs, fractions, exponents; no leading zeros', () => {
    const num = schemaGrammar({ type: 'number' });
    for (const ok of ['0', '-0', '12', '-3.25', '1e5', '1E+05', '-2.5e-3', '0.000001']) expect(match(num, ok), ok).toBe('complete');
    for (const bad of ['01', '+1', '.5', '1.', '1e', 'NaN', 'Infinity', '1e+']) expect(match(num, bad), bad).not.toBe('complete');
    const int = schemaGrammar({ type: 'integer' });
    expect(match(int, '-42')).toBe('complete');
    expect(match(int, '4.2')).toBe('rejected');
    expect(match(int, '1e3')).toBe('rejected');
  });

  it('integer and number ranges are exact', () => {
    const g = schemaGrammar({ type: 'integer', minimum: -17, exclusiveMaximum: 230 });
    for (let x = -300; x <= 300; x++) expect(match(g, String(x)) === 'complete', String(x)).toBe(x >= -17 && x < 230);
    const p = schemaGrammar({ type: 'number', minimum: 0, maximum: 1 });
    for (const ok of ['0', '0.5', '1', '1.000', '0.999']) expect(match(p, ok), ok).toBe('complete');
    for (const bad of ['1.5', '-0.1', '2', '1.0001']) expect(match(p, bad), bad).not.toBe('complete');
    const open = schemaGrammar({ type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 2 });
    for (const ok of ['0.01', '1', '1.9']) expect(match(open, ok), ok).toBe('complete');
    for (const bad of ['0', '0.0', '2', '2.0']) expect(match(open, bad), bad).not.toBe('complete');
  });

  it('objects: required and optional properties in schema order, one space allowed after : and ,', () => {
    const g = schemaGrammar({ type: 'object', properties: { a: { type: 'integer' }, b: { type: 'boolean' }, c: { type: 'null' } }, required: ['b'] });
    for (const ok of ['{"b":true}', '{"a":1,"b":false}', '{"a": 1, "b": true, "c": null}', '{"b":true,"c":null}']) expect(match(g, ok), ok).toBe('complete');
    for (const bad of ['{}', '{"a":1}', '{"b":true,"a":1}', '{"b":true,"d":1}', '{ "b":true}', '{"b" :true}', '{"b":true,}', '{"b":  true}'])
      expect(match(g, bad), bad).not.toBe('complete');
  });

  it('empty arrays and objects, and item counts', () => {
    expect(match(schemaGrammar({ type: 'array' }), '[]')).toBe('complete');
    expect(match(schemaGrammar({ type: 'object' }), '{}')).toBe('complete');
    expect(match(schemaGrammar({ type: 'object', properties: { a: {} } }), '{}')).toBe('complete');
    const g = schemaGrammar({ type: 'array', items: { type: 'integer' }, minItems: 1, maxItems: 3 });
    expect(match(g, '[')).toBe('prefix');
    expect(match(g, '[]')).toBe('rejected');
    expect(match(g, '[1, 2,3]')).toBe('complete');
    expect(match(g, '[1,2,3,4]')).toBe('rejected');
    const tuple = schemaGrammar({ type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }], items: false });
    for (const ok of ['[]', '["a"]', '["a",1]']) expect(match(tuple, ok), ok).toBe('complete');
    for (const bad of ['[1]', '["a",1,2]']) expect(match(tuple, bad), bad).not.toBe('complete');
  });

  it('patterns: anchored or found anywhere, classes, escapes, unicode, as ECMAScript matches them', () => {
    const zip = schemaGrammar({ type: 'string', pattern: '^\\d{5}(-\\d{4})?$' });
    for (const ok of ['"12345"', '"12345-6789"']) expect(match(zip, ok), ok).toBe('complete');
    for (const bad of ['"1234"', '"123456"', '"12345-678"', '"abcde"']) expect(match(zip, bad), bad).not.toBe('complete');
    const inside = schemaGrammar({ type: 'string', pattern: 'ab+c' });
    for (const ok of ['"abc"', '"xx abbbc yy"']) expect(match(inside, ok), ok).toBe('complete');
    expect(match(inside, '"ac"')).not.toBe('complete');
    const name = schemaGrammar({ type: 'string', pattern: '^[A-Z][a-z]+( [A-Z][a-z]+)*$|^n/a$' });
    for (const ok of ['"Ada"', '"Ada Lovelace"', '"n/a"']) expect(match(name, ok), ok).toBe('complete');
    for (const bad of ['"ada"', '"Ada "', '"A"']) expect(match(name, bad), bad).not.toBe('complete');
    // Characters JSON escapes are written escaped; "." is any character but a line break.
    expect(match(schemaGrammar({ type: 'string', pattern: '^a"b\\\\c$' }), '"a\\"b\\\\c"')).toBe('complete');
    const two = schemaGrammar({ type: 'string', pattern: '^.{2}$' });
    expect(match(two, '"é中"')).toBe('complete');
    expect(match(two, '"a\\n"')).not.toBe('complete');
    const accents = schemaGrammar({ type: 'string', pattern: '^[^\\sa-z]+$' });
    expect(match(accents, '"ÉÀ12"')).toBe('complete');
    expect(match(accents, '"É a"')).not.toBe('complete');
  });

  it('patterns agree with ECMAScript RegExp on random strings', () => {
    const patterns = ['^a*b?$', 'a.b', '^[^a-z]{1,3}$', '^(ab|b1)+$', '\\d\\s', '^\\W*$', '^[\\w-]{2,}$|^é+$', '^.?中$', '"', '^[\\\\"]+$'];
    const alphabet = ['a', 'A', 'b', '1', ' ', '_', '-', '"', '\\', '\n', 'é', '中', '.'];
    const next = rng(5);
    for (const pattern of patterns) {
      const g = schemaGrammar({ type: 'string', pattern });
      const re = new RegExp(pattern, 'u');
      for (let i = 0; i < 300; i++) {
        const len = Math.floor(next() * 6);
        const text = Array.from({ length: len }, () => alphabet[Math.floor(next() * alphabet.length)]).join('');
        expect(match(g, JSON.stringify(text)) === 'complete', `${pattern} on ${JSON.stringify(text)}`).toBe(re.test(text));
      }
    }
  });

  it('deep nesting: a recursive $ref is followed a bounded number of levels', () => {
    const g = schemaGrammar({ $ref: '#/$defs/list', $defs: { list: { type: 'array', items: { $ref: '#/$defs/list' } } } });
    const nested = (n: number) => '['.repeat(n) + ']'.repeat(n);
    expect(match(g, nested(7))).toBe('complete');
    expect(match(g, nested(40))).toBe('rejected');
    const free = schemaGrammar({});
    expect(match(free, '[[[[[[[[1]]]]]]]]')).toBe('complete');
    expect(match(free, '{"a":{"b":{"c":[{"d":[true,{"e":null}]}]}}}')).toBe('complete');
  });

  it('enum, const, anyOf, nullable, type lists', () => {
    const e = schemaGrammar({ enum: ['red', 'green', 3, null, { k: [1] }] });
    for (const ok of ['"red"', '"green"', '3', 'null', '{"k":[1]}']) expect(match(e, ok), ok).toBe('complete');
    expect(match(e, '"blue"')).toBe('rejected');
    expect(match(schemaGrammar({ const: 'x"y' }), '"x\\"y"')).toBe('complete');
    const any = schemaGrammar({ anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 1 }] });
    expect(match(any, '12')).toBe('complete');
    expect(match(any, '"ab"')).toBe('rejected');
    expect(match(schemaGrammar({ type: 'string', nullable: true }), 'null')).toBe('complete');
    expect(match(schemaGrammar({ type: ['boolean', 'null'] }), 'false')).toBe('complete');
  });
});

const schemas: Record<string, unknown> = {
  person: {
    type: 'object',
    properties: { name: { type: 'string', minLength: 1, maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 130 }, email: { type: 'string', format: 'email' }, tags: { type: 'array', items: { type: 'string', maxLength: 5 }, maxItems: 3 } },
    required: ['name', 'age'],
    additionalProperties: false,
  },
  tree: { $defs: { node: { type: 'object', properties: { value: { type: 'number' }, children: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['value', 'children'] } }, $ref: '#/$defs/node' },
  union: { anyOf: [{ type: 'string', enum: ['a', 'b'] }, { type: 'null' }, { type: 'object', properties: { x: { const: 3 } }, required: ['x'] }] },
  formats: { type: 'object', properties: { at: { type: 'string', format: 'date-time' }, day: { type: 'string', format: 'date' }, id: { type: 'string', format: 'uuid' }, ip: { type: 'string', format: 'ipv4' } }, required: ['at', 'day', 'id', 'ip'] },
  patterns: { type: 'object', properties: { zip: { type: 'string', pattern: '^[0-9]{5}(-[0-9]{4})?$' }, code: { type: 'string', pattern: '[A-Z]{3}' }, word: { type: 'string', pattern: '^\\w+$' } }, required: ['zip', 'code', 'word'] },
  ranges: { type: 'object', properties: { p: { type: 'number', minimum: 0, maximum: 1 }, n: { type: 'integer', exclusiveMinimum: -3, maximum: 3 } }, required: ['p', 'n'] },
  map: { type: 'object', additionalProperties: { type: 'integer' }, minProperties: 1, maxProperties: 4 },
  anything: {},
  oneOf: { oneOf: [{ type: 'boolean' }, { type: 'array', items: { type: 'null' }, minItems: 2 }] },
};

describe('random constrained outputs always validate', () => {
  for (const [name, schema] of Object.entries(schemas)) {
    it(name, () => {
      const g = schemaGrammar(schema);
      const check = ajv.compile(schema as object);
      for (let seed = 1; seed <= 12; seed++) {
        const s = sample(g, seed, 200);
        expect(s.finished, s.text).toBe(true);
        expect(check(JSON.parse(s.text)), `${s.text}\n${ajv.errorsText(check.errors)}`).toBe(true);
      }
    });
  }
});

describe('refused schemas name the feature and where it is', () => {
  const refused: [string, unknown, RegExp][] = [
    ['pattern with a backreference', { type: 'object', properties: { zip: { type: 'string', pattern: '^(a)\\1$' } } }, /"pattern".*backreferences.*#\/properties\/zip/],
    ['pattern with lookahead', { type: 'string', pattern: '^(?=a)' }, /lookahead/],
    ['pattern with \\p{...}', { type: 'string', pattern: '\\p{L}' }, /property escapes/],
    ['patternProperties', { type: 'object', patternProperties: { '^x': {} } }, /"patternProperties"/],
    ['not', { not: { type: 'string' } }, /"not"/],
    ['if/then', { if: { type: 'string' }, then: { minLength: 1 } }, /"if"/],
    ['uniqueItems', { type: 'array', uniqueItems: true }, /uniqueItems/],
    ['multipleOf', { type: 'number', multipleOf: 0.5 }, /multipleOf/],
    ['unknown keyword', { type: 'string', maxLenght: 3 }, /unknown keyword "maxLenght"/],
    ['unknown format', { type: 'string', format: 'hostname' }, /format.*hostname/],
    ['remote $ref', { $ref: 'https://example.com/s.json' }, /local references/],
    ['missing $ref target', { $ref: '#/$defs/none' }, /points at nothing/],
    ['allOf of two', { allOf: [{ type: 'string' }, { maxLength: 3 }] }, /allOf/],
    ['overlapping oneOf', { oneOf: [{ type: 'integer' }, { type: 'number' }] }, /oneOf/],
    ['minLength beyond the limit', { type: 'string', minLength: 5000 }, /minLength/],
    ['bounds without an integer', { type: 'number', minimum: 0.2, maximum: 0.8 }, /no integer/],
    ['unknown type', { type: 'decimal' }, /unknown type/],
    ['unsatisfiable', { type: 'object', required: ['a'], additionalProperties: false }, /no object satisfies/],
    ['minimum above maximum', { type: 'integer', minimum: 10, maximum: 3 }, /lower bound 10 is not below the upper bound 3: no integer satisfies both/],
    ['an empty exclusive range', { type: 'number', exclusiveMinimum: 1, maximum: 1 }, /no number satisfies both/],
    ['minLength above maxLength', { type: 'string', minLength: 5, maxLength: 2 }, /"minLength" 5 is above "maxLength" 2/],
    ['minItems above maxItems', { type: 'array', minItems: 3, maxItems: 1 }, /"minItems" 3 is above "maxItems" 1/],
    ['recursion without a base case', { $defs: { n: { type: 'object', properties: { next: { $ref: '#/$defs/n' } }, required: ['next'] } }, $ref: '#/$defs/n' }, /no JSON value satisfies/],
  ];
  for (const [name, schema, message] of refused) {
    it(name, () => {
      let err: unknown;
      try {
        schemaGrammar(schema);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SchemaError);
      expect((err as Error).message).toMatch(message);
    });
  }
});

describe('hostile and very large schemas: refused by a bound that names the part and the limit, or compiled cheaply', () => {
  const refusal = (schema: unknown, compiler?: StructuredOutputs): SchemaError => {
    try {
      if (compiler) compiler.compile({ kind: 'json_schema', schema }, false);
      else schemaGrammar(schema);
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaError);
      return e as SchemaError;
    }
    throw new Error('the schema was accepted');
  };

  // Each of these grew without bound (memory or time) before the compiler had bounds: the
  // per-test timeouts are only there so a regression fails instead of hanging the run.
  it('counted repetitions that multiply: refused before anything is built', { timeout: 30_000 }, () => {
    const e = refusal({ type: 'object', properties: { code: { type: 'string', pattern: '(a|b){1,1000}(x{1,1000}){1,1000}' } } });
    expect(e.path).toBe('#/properties/code');
    expect(e.reason).toMatch(/"pattern" .* is too large to enforce: .* about 2,00\d,\d{3} states; the limit is 1,000,000/);
  });

  it('a pattern whose automaton explodes (2^20 subsets): refused by the work bound, naming the property', { timeout: 30_000 }, () => {
    // Without the wall-clock bound (500 ms by default), which a loaded 2-core machine can reach
    // before the work bound this is about.
    const patient = new StructuredOutputs(tokenizer, { buildDeadlineMs: 60_000 });
    const e = refusal({ type: 'object', properties: { p: { type: 'string', pattern: '^(a|b)*a(a|b){20}$' } } }, patient);
    expect(e.path).toBe('#/properties/p');
    expect(e.reason).toMatch(/too large to enforce: building its automaton takes more than 6,000,000 steps/);
  });

  it('mutually recursive definitions (7^6 expansions): refused by the parts bound', { timeout: 30_000 }, () => {
    const defs = Object.fromEntries(
      Array.from({ length: 6 }, (_, i) => [`d${i}`, { type: 'object', properties: Object.fromEntries(Array.from({ length: 6 }, (_, j) => [`p${j}`, { $ref: `#/$defs/d${j}` }])) }]),
    );
    expect(refusal({ $defs: defs, $ref: '#/$defs/d0' }).reason).toMatch(/expands to more than 10,000 parts.*flatten the recursion/);
  });

  it('definitions shared along many paths (a chain of 24 diamonds) compile once each', { timeout: 30_000 }, () => {
    const defs: Record<string, unknown> = { a24: { type: 'integer' } };
    for (let i = 0; i < 24; i++) {
      defs[`a${i}`] = { type: 'object', properties: { l: { $ref: `#/$defs/b${i}` }, r: { $ref: `#/$defs/c${i}` } }, required: ['l', 'r'] };
      defs[`b${i}`] = { type: 'object', properties: { x: { $ref: `#/$defs/a${i + 1}` } }, required: ['x'] };
      defs[`c${i}`] = { type: 'object', properties: { y: { $ref: `#/$defs/a${i + 1}` } }, required: ['y'] };
    }
    const g = schemaGrammar({ $defs: defs, $ref: '#/$defs/a0' });
    expect(g.stats().nodes).toBeLessThan(5_000);
    let text = '1';
    for (let i = 23; i >= 0; i--) text = `{"l":{"x":${text}},"r":{"y":${text}}}`;
    expect(match(g, text.slice(0, 2_000))).toBe('prefix');
  });

  it('an enum of 200,000 values is a trie: one state per distinct prefix', { timeout: 30_000 }, () => {
    const values = Array.from({ length: 200_000 }, (_, i) => `value${i}`);
    const g = schemaGrammar({ type: 'object', properties: { v: { enum: values } }, required: ['v'] });
    // "value" + 0..199999: 7 prefix nodes, then the digits' trie (222,222 nodes below "value").
    expect(g.stats().nodes).toBeLessThan(230_000);
    for (const v of ['value0', 'value199999', 'value12345']) expect(match(g, `{"v":"${v}"}`), v).toBe('complete');
    for (const v of ['value200000', 'value', 'valu0', 'value01']) expect(match(g, `{"v":"${v}"}`), v).not.toBe('complete');
  });

  it('an enum too large even as a trie is refused with its size and the limit', { timeout: 30_000 }, () => {
    // 100,000 random words of 12 letters share little beyond their first four letters: about
    // 900,000 distinct prefixes.
    const next = rng(7);
    const word = () => Array.from({ length: 12 }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join('');
    const words = Array.from({ length: 100_000 }, word);
    expect(new Set(words).size).toBe(100_000);
    const e = refusal({ type: 'object', properties: { w: { enum: words } } });
    expect(e.path).toBe('#/properties/w');
    expect(e.reason).toMatch(/"enum" is too large to enforce: its 100,000 values .*; the limit is 1,000,000 states/);
  });

  it('a build past its deadline is refused, naming the part, and not remembered: a quieter machine may build it', () => {
    // A deadline of 0 ms has passed by the time the first rule is built.
    const hurried = new StructuredOutputs(tokenizer, { buildDeadlineMs: 0 });
    const schema = { type: 'object', properties: { p: { type: 'string', pattern: '^[a-z]+$' } } };
    for (let i = 0; i < 2; i++) {
      expect(() => hurried.compile({ kind: 'json_schema', schema }, false)).toThrow(/too large to enforce: building its automaton takes too long/);
      expect(hurried.cachedGrammars).toBe(0);
    }
    // A refusal by size is remembered.
    expect(() => hurried.compile({ kind: 'json_schema', schema: { type: 'string', pattern: '(x{1,1000}){1,1000}' } }, false)).toThrow(/the limit is 1,000,000/);
    expect(hurried.cachedGrammars).toBe(1);
    expect(outputs.compile({ kind: 'json_schema', schema }, false).grammar.match(new TextEncoder().encode('{"p":"ok"}'))).toBe('complete');
  });

  it('long strings count through one shared character rule: 20 properties of maxLength 2000 fit', { timeout: 30_000 }, () => {
    const props = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`p${i}`, { type: 'string', maxLength: 2000 }]));
    const g = schemaGrammar({ type: 'object', properties: props, required: Object.keys(props) });
    expect(g.stats().nodes).toBeLessThan(50_000);
    const long = 'é'.repeat(2000);
    expect(match(schemaGrammar({ type: 'string', maxLength: 2000 }), `"${long}"`)).toBe('complete');
    expect(match(schemaGrammar({ type: 'string', maxLength: 2000 }), `"${long}a"`)).toBe('rejected');
    expect(match(schemaGrammar({ type: 'string', minLength: 100 }), `"${'a'.repeat(99)}"`)).toBe('rejected');
    expect(match(schemaGrammar({ type: 'string', minLength: 100 }), `"${'a'.repeat(300)}"`)).toBe('complete');
  });
});
