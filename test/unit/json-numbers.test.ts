// Numbers written as Python writes them: float repr, and the request's own number text kept
// beside JSON.parse's value. Every expected string was printed by Python 3 (json.dumps, str) or
// by transformers 5.25.0's template compiler (Jinja2).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChatTemplate } from '../../src/chat/chat-template.js';
import { pythonFloatRepr, pythonNumber } from '../../src/chat/jinja-numbers.js';
import { renderPrompt } from '../../src/chat/render-prompt.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { holdsWrittenNumbers, keepWrittenNumbers, mayHoldChangedNumber, numberChanged, withWrittenKeysAndNumbers, withWrittenNumbers, writtenNumber } from '../../src/parse/json-numbers.js';
import { withWrittenKeyOrder } from '../../src/parse/ordered-json.js';
import { chatRenderOptions, extraKwargs } from '../../src/server/openai/chat-render.js';
import { toTemplateMessages } from '../../src/server/openai/chat-messages.js';
import { chatRequestSchema } from '../../src/server/openai/schema-chat.js';
import { responsesRequestSchema } from '../../src/server/openai/schema-responses.js';
import { tokenizeRequestSchema } from '../../src/server/openai/schema-tokenize.js';
import { tokenizerDir } from '../helpers/fixtures.js';

/** A body as the server reads it (server/http.ts readJson): one walk for key order and numbers. */
const read = (text: string) => withWrittenKeysAndNumbers(text, JSON.parse(text)) as Record<string, unknown>;
/** The same with a walk for each. */
const readTwice = (text: string) => withWrittenNumbers(text, withWrittenKeyOrder(text, JSON.parse(text))) as Record<string, unknown>;

describe('pythonFloatRepr', () => {
  it('writes repr(float) digit for digit', () => {
    // python3 -c 'print(repr(float(t)))' for each t.
    const cases: [number, string][] = [
      [1, '1.0'],
      [-0, '-0.0'],
      [0, '0.0'],
      [1e20, '1e+20'],
      [1500, '1500.0'],
      [1e16, '1e+16'],
      [1.5e16, '1.5e+16'],
      [9999999999999998, '9999999999999998.0'],
      [1e15, '1000000000000000.0'],
      [123456, '123456.0'],
      [1e-5, '1e-05'],
      [0.0001, '0.0001'],
      [1.5e-7, '1.5e-07'],
      [3e-10, '3e-10'],
      [2.5, '2.5'],
      [0.1, '0.1'],
      [-12.75, '-12.75'],
      [1e308, '1e+308'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [5e-324, '5e-324'],
      [1e21, '1e+21'],
      [1.2345678901234568e-300, '1.2345678901234568e-300'],
      [Infinity, 'inf'],
      [-Infinity, '-inf'],
      [NaN, 'nan'],
    ];
    for (const [x, repr] of cases) expect(pythonFloatRepr(x), String(x)).toBe(repr);
  });
});

describe('numbers JSON.parse changes', () => {
  it('are the integral floats and the integers it cannot spell', () => {
    const changed = ['1.0', '-0.0', '0e0', '1e20', '1E20', '1.5e3', '100.0', '12345678901234567', '-12345678901234567890', '1e16', '-3.25e2', '123456789012345678901234567890'];
    const same = ['1', '-0', '2.5', '1e-5', '0.0001', '-3.25e-2', '100000000000000000000', '9007199254740991', '1e400', '12'];
    for (const t of changed) expect(numberChanged(t, JSON.parse(t)), t).toBe(true);
    for (const t of same) expect(numberChanged(t, JSON.parse(t)), t).toBe(false);
  });

  it('the scan finds bodies that can hold one and passes plain ones', () => {
    const walked = ['{"a": 1.0}', '{"temperature": 0.7, "x": 1.0}', '{"a": -0.0}', '{"a": [0.5, 100.000]}', '{"a":[2,1e3]}', '{"a": 2.5e-3}', '{"a":\n -12345678901234567}', '{"a": 0.99999999999999999}', '{"a": 99999999.999999999}'];
    // Fractions that are not whole numbers: JSON.parse's double prints as the text does.
    const passed = ['{"a": 1, "b": [2, -3], "c": "x"}', '{"a": 123456789012345}', '{"v1.0": true}', '{"a": 0.5}', '{"temperature": 0.7, "top_p": 0.95, "b": [1.05, -2.50]}', '{"a": 123456789.12345}'];
    for (const t of walked) expect(mayHoldChangedNumber(t), t).toBe(true);
    for (const t of passed) expect(mayHoldChangedNumber(t), t).toBe(false);
    // A body with 1.0 beside such fractions is walked, and the 1.0 is recorded.
    const body = read('{"temperature": 0.7, "kwargs": {"x": 1.0, "y": 0.5}}') as any;
    expect([writtenNumber(body.kwargs, 'x'), writtenNumber(body.kwargs, 'y')]).toEqual(['1.0', undefined]);
  });

  it('the scan finds every number JSON.parse changes', () => {
    const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
    const token = fc
      .tuple(fc.boolean(), digits(1, 20), fc.option(fc.oneof(digits(1, 20), fc.constantFrom('0', '00', '9999999999', '0000000000000001'))), fc.option(fc.tuple(fc.constantFrom('e', 'E-', 'e+'), digits(1, 3))))
      .map(([minus, int, frac, exp]) => `${minus ? '-' : ''}${int.replace(/^0+(?=\d)/, '')}${frac === null ? '' : `.${frac}`}${exp === null ? '' : exp.join('')}`);
    fc.assert(
      fc.property(token, (t) => {
        if (numberChanged(t, JSON.parse(t))) expect(mayHoldChangedNumber(`{"a": ${t}}`), t).toBe(true);
      }),
      { numRuns: 20_000, seed: 20_261_205 },
    );
    for (const t of ['1.0', '-0.0', '0e0', '1e20', '100.0', '12345678901234567', '0.99999999999999999', '9.9999999999999999', '99999999.999999999', '-0.' + '0'.repeat(400) + '1'])
      expect(numberChanged(t, JSON.parse(t)) && mayHoldChangedNumber(`[${t}]`), t).toBe(true);
  });

  it.each([
    ['one walk', read],
    ['a walk for each', readTwice],
  ])('keeps the text of each against its container, and leaves the parsed values alone (%s)', (_name, reader) => {
    const text =
      '{"tools": [{"parameters": {"default": 1.0, "maximum": 1e20, "minimum": -0.0, "step": 0.5, "n": 3, "enum": [1.5e3, 2, 12345678901234567]}}],' +
      ' "k\\u0031": {"x": 2.0}, "s": "a \\" : 1.0, \\\\", "dup": {"x": 1.0}, "dup": {"x": 1}, "1": {"y": 4.0}, "b": 5.0}';
    const body = reader(text) as any;
    expect(body).toEqual(JSON.parse(text));
    expect(Object.keys(body)).toEqual(['tools', 'k1', 's', 'dup', '1', 'b']);
    const params = body.tools[0].parameters;
    expect(params.default).toBe(1);
    expect([writtenNumber(params, 'default'), writtenNumber(params, 'maximum'), writtenNumber(params, 'minimum')]).toEqual(['1.0', '1e20', '-0.0']);
    expect([writtenNumber(params, 'step'), writtenNumber(params, 'n')]).toEqual([undefined, undefined]);
    expect([0, 1, 2].map((i) => writtenNumber(params.enum, String(i)))).toEqual(['1.5e3', undefined, '12345678901234567']);
    expect(writtenNumber(body.k1, 'x')).toBe('2.0');
    // A key written twice: JSON.parse keeps the later value, and so does the record.
    expect(holdsWrittenNumbers(body.dup) && writtenNumber(body.dup, 'x')).toBeFalsy();
    // Objects seen in written key order (an integer-like key) are the ones recorded.
    expect(writtenNumber(body['1'], 'y')).toBe('4.0');
    expect(writtenNumber(body, 'b')).toBe('5.0');
    expect(holdsWrittenNumbers(body.tools)).toBe(false);
  });

  it('a string of megabytes does not end the walk', () => {
    const body = read(`{"s": "${'sea '.repeat(2_500_000)}\\"", "a": {"x": 1.0}}`) as any;
    expect(writtenNumber(body.a, 'x')).toBe('1.0');
  });

  it('an object walked again keeps only the record of the later text', () => {
    const value = JSON.parse('{"x": 1}');
    withWrittenNumbers('{"x": 1.0}', value);
    expect(writtenNumber(value, 'x')).toBe('1.0');
    withWrittenNumbers('{"x": 1e0, "y": 0.5}', value);
    expect(writtenNumber(value, 'x')).toBe('1e0');
    withWrittenNumbers('{"x": 1, "z": 2.0}', value);
    expect(holdsWrittenNumbers(value)).toBe(false);
  });
});

describe('the template bridge', () => {
  it('prints markers, and floats the template computes, as Jinja2 does', () => {
    // transformers' _compile_jinja_template(...).render(x=10**16, y=1.0, z=12345678901234567)
    const t = new ChatTemplate('{{ x }}|{{ [4 / 2, x / 1, y, z, 0.5, w] | tojson }}|{{ x / 1 }}|{{ 4 / 2 }}|{{ y }}|{{ z }}|{{ w }}');
    const kwargs = { x: 1e16, y: pythonNumber('1.0', 1), z: pythonNumber('12345678901234567', 12345678901234567), w: pythonNumber('-0.0', -0) };
    expect(t.render([], { kwargs, pythonNumbers: true })).toBe('10000000000000000|[2.0, 1e+16, 1.0, 12345678901234567, 0.5, -0.0]|1e+16|2.0|1.0|12345678901234567|-0.0');
  });
});

describe('numbers placed directly in chat_template_kwargs and documents', () => {
  // Printed by Jinja2 3.1 from json.loads of the same text, tojson as transformers' json.dumps.
  const source =
    '{{ foo }} {{ big }} {{ neg }} {{ e }} {{ half }} {{ deep | tojson }} {{ list | tojson }}{% if documents is defined %} {{ documents | tojson }} {{ documents[0].score }}{% endif %}';
  const kwargs = '{"enable_thinking": false, "foo": 1.0, "big": 12345678901234567, "neg": -0.0, "e": 1e20, "half": 0.5, "deep": {"x": 2.0, "2": 3.0}, "list": [4.0, 1]}';
  const documents = '[{"title": "sea", "score": 1.0, "1": 5.0}]';
  const printed = '1.0 12345678901234567 -0.0 1e+20 0.5 {"x": 2.0, "2": 3.0} [4.0, 1]';
  const withDocuments = `${printed} [{"title": "sea", "score": 1.0, "1": 5.0}] 1.0`;
  const template = new ChatTemplate(source);
  const tok = Tokenizer.fromDir(tokenizerDir);
  const messages = '[{"role": "user", "content": "hi"}]';

  it('reach the template with their text, through the chat and /tokenize schemas, with documents or without', () => {
    for (const [extra, expected] of [
      ['', printed],
      [`, "documents": ${documents}`, withDocuments],
    ]) {
      for (const schema of [chatRequestSchema, tokenizeRequestSchema]) {
        const body = schema.parse(read(`{"messages": ${messages}, "chat_template_kwargs": ${kwargs}${extra}}`)) as any;
        const { kwargs: given } = chatRenderOptions(body, { thinking: false, template: source });
        expect(renderPrompt(template, tok, toTemplateMessages(body.messages), { kwargs: given }).text, extra).toBe(expected);
      }
    }
  });

  it('reach the template with their text through the responses schema', () => {
    const body = responsesRequestSchema.parse(read(`{"input": "hi", "chat_template_kwargs": ${kwargs}}`));
    expect(renderPrompt(template, tok, [{ role: 'user', content: 'hi' }], { kwargs: extraKwargs(body.chat_template_kwargs) }).text).toBe(printed);
  });

  it('a copy keeps the text only of the members it holds unchanged', () => {
    const source = read('{"a": 1.0, "b": 2.0, "c": 3.0, "d": {"e": 4.0}}') as any;
    const copy = keepWrittenNumbers(source, { a: source.a, b: 7, d: source.d });
    expect([writtenNumber(copy, 'a'), writtenNumber(copy, 'b'), writtenNumber(copy, 'c')]).toEqual(['1.0', undefined, undefined]);
    expect(writtenNumber(copy.d, 'e')).toBe('4.0');
    expect(holdsWrittenNumbers(keepWrittenNumbers(source, { b: 7 }))).toBe(false);
  });

  it('the kwargs keep the order the client wrote their keys in', () => {
    const body = chatRequestSchema.parse(read(`{"messages": ${messages}, "chat_template_kwargs": {"z": 1.0, "2": 0, "enable_thinking": true, "a": 1}}`));
    expect(Object.keys(extraKwargs(body.chat_template_kwargs)!)).toEqual(['z', '2', 'a']);
  });
});
