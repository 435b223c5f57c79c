// A client's JSON keeps its key order where it reaches the model. JSON.parse moves integer-like
// keys ("2", "10") to the front of every object; Python's json.loads, which vLLM and transformers
// read requests with, keeps the written order. Checked here: the body reader's second walk, the
// ordered objects it makes, their copies, the request schemas that pass them on, and the grammar
// compiler that writes properties in their order.
import { types } from 'node:util';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseOrderedJson, stringifyOrderedJson, withWrittenKeyOrder } from '../../src/parse/ordered-json.js';
import { messagesRequestSchema } from '../../src/server/anthropic/schema-messages.js';
import { chatRequestSchema } from '../../src/server/openai/schema-chat.js';
import { jsonObject } from '../../src/server/openai/schema-common.js';
import { objectInOrder, withKeyOrder } from '../../src/util/key-order.js';
import { match, schemaGrammar } from './structured-sample.js';

const read = (text: string) => withWrittenKeyOrder(text, JSON.parse(text)) as any;

describe('a body read with its written key order', () => {
  it('integer-like keys stay where they were written, in nested objects and objects inside arrays', () => {
    const text = '{"b": 1, "1": {"z": [{"3": "c", "a": 0, "1": "a"}], "0": null}, "a": [], "10": {"x": {"9": 9, "y": 0}}}';
    const value = read(text);
    expect(Object.keys(value)).toEqual(['b', '1', 'a', '10']);
    expect(Object.keys(value[1])).toEqual(['z', '0']);
    expect(Object.keys(value[1].z[0])).toEqual(['3', 'a', '1']);
    expect(Object.keys(value[10].x)).toEqual(['9', 'y']);
    // Everything else is what JSON.parse gave: the values, and the text JSON.stringify writes.
    expect(value).toEqual(JSON.parse(text));
    expect(JSON.stringify(value)).toBe(stringifyOrderedJson(parseOrderedJson(text)));
    expect(Object.entries(value).map(([k]) => k)).toEqual(['b', '1', 'a', '10']);
  });

  it('without a key of digits nothing is walked or wrapped: the very value JSON.parse gave', () => {
    const text = '{"messages": [{"role": "user", "content": "{\\"1\\" is in a string, not a key"}], "n": 2}';
    const parsed = JSON.parse(text);
    expect(withWrittenKeyOrder(text, parsed)).toBe(parsed);
    expect(types.isProxy(parsed.messages[0])).toBe(false);
  });

  it('only objects a plain object cannot list in their order are wrapped', () => {
    const value = read('{"1": {"2": 0, "a": 1}, "x": {"a": 1, "3": 0}}');
    expect(types.isProxy(value)).toBe(false);
    expect(types.isProxy(value[1])).toBe(false);
    expect(types.isProxy(value.x)).toBe(true);
  });

  it('an escaped key of digits, a key written twice and a "__proto__" member are read as JSON.parse reads them', () => {
    expect(Object.keys(read('{"z": 0, "\\u0031": 1}'))).toEqual(['z', '1']);
    const twice = read('{"b": 1, "2": 0, "b": {"a": 1, "0": 2}}');
    expect(Object.keys(twice)).toEqual(['b', '2']);
    expect(Object.keys(twice.b)).toEqual(['a', '0']);
    const proto = read('{"__proto__": {"b": 1, "0": 2}, "1": 0}');
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.keys(proto)).toEqual(['__proto__', '1']);
    expect(Object.keys(proto.__proto__)).toEqual(['b', '0']);
  });

  it('a string of megabytes does not end the walk', () => {
    const text = `{"s": "${'sea '.repeat(2_500_000)}\\"", "2": {"b": 0, "1": 1}}`;
    expect(Object.keys(read(text))).toEqual(['s', '2']);
    expect(Object.keys(read(text)[2])).toEqual(['b', '1']);
  });

  it('the tree keeps each scalar as written', () => {
    const tree = parseOrderedJson('{"a": [1.0, -0.0, 1e20, 12345678901234567, "x\\u00e9", true, null]}');
    expect('object' in tree && tree.object.get('a')).toEqual({ array: ['1.0', '-0.0', '1e20', '12345678901234567', '"x\\u00e9"', 'true', 'null'].map((scalar) => ({ scalar })) });
  });

  it('nesting deeper than the walk can go keeps the parsed value rather than failing', () => {
    const text = `{"a": ${'['.repeat(100_000)}{"1": 0}${']'.repeat(100_000)}, "2": 1}`;
    const parsed = JSON.parse(text);
    expect(withWrittenKeyOrder(text, parsed)).toBe(parsed);
  });
});

describe('ordered objects', () => {
  it('list keys added later after the ordered ones and drop deleted ones', () => {
    const o = withKeyOrder({ 1: 'one', b: 'bee', a: 'a' } as Record<string, string>, ['b', '1', 'a']);
    o[0] = 'zero';
    delete o.a;
    expect(Object.keys(o)).toEqual(['b', '1', '0']);
    expect(o[1]).toBe('one');
    expect('b' in o).toBe(true);
  });

  it('a copy made with objectInOrder keeps the order; one that needs none stays a plain object', () => {
    const copy = objectInOrder(Object.entries(read('{"z": 1, "2": 2}')).map(([k, v]) => [k.toUpperCase(), v]));
    expect(Object.keys(copy)).toEqual(['Z', '2']);
    expect(types.isProxy(objectInOrder([['2', 0], ['z', 1]]))).toBe(false);
    expect(Object.keys(objectInOrder([['b', 1], ['1', 2], ['b', 3]]))).toEqual(['b', '1']);
  });
});

describe('request schemas pass the client objects on', () => {
  it('tool parameters, a call given as an object and a response_format schema keep their order through validation', () => {
    const body = read(
      '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {"z": 1, "2": 2}}}]}],' +
        ' "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"b": {}, "1": {}, "a": {}}}}}],' +
        ' "response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"properties": {"y": {}, "0": {}}}}}}',
    );
    const parsed = chatRequestSchema.parse(body);
    const call = parsed.messages[1];
    expect(call.role === 'assistant' && Object.keys(call.tool_calls![0].function.arguments as object)).toEqual(['z', '2']);
    expect(Object.keys(parsed.tools![0].function.parameters!.properties as object)).toEqual(['b', '1', 'a']);
    const rf = parsed.response_format!;
    expect(rf.type === 'json_schema' && Object.keys(rf.json_schema.schema!.properties as object)).toEqual(['y', '0']);
  });

  it('a tool_use input and an input_schema keep their order', () => {
    const body = read(
      '{"model": "m", "max_tokens": 1, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"z": 1, "2": 2}}]}],' +
        ' "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"b": {}, "1": {}}}}]}',
    );
    const parsed = messagesRequestSchema.parse(body);
    const blocks = parsed.messages[0].content as Record<string, unknown>[];
    expect(Object.keys(blocks[0].input as object)).toEqual(['z', '2']);
    expect(Object.keys(parsed.tools![0].input_schema!.properties as object)).toEqual(['b', '1']);
  });

  it('jsonObject refuses what z.record refuses, with the same issues', () => {
    const record = z.object({ p: z.record(z.string(), z.unknown()) });
    const mine = z.object({ p: jsonObject() });
    for (const p of ['s', 1, null, [], true, undefined]) expect(mine.safeParse({ p }).error?.issues, String(p)).toEqual(record.safeParse({ p }).error?.issues);
    const union = (member: z.ZodType) => z.union([z.string(), member]);
    for (const v of [1, [], null]) expect(union(jsonObject()).safeParse(v).error?.issues).toEqual(union(z.record(z.string(), z.unknown())).safeParse(v).error?.issues);
  });
});

describe('the grammar writes properties in the written order', () => {
  it('a schema whose properties hold an integer-like key', () => {
    const text = '{"type": "object", "properties": {"b": {"type": "integer"}, "1": {"type": "boolean"}}, "required": ["b", "1"], "additionalProperties": false}';
    const written = schemaGrammar(read(text));
    expect(match(written, '{"b": 1, "1": true}')).toBe('complete');
    expect(match(written, '{"1": true, "b": 1}')).toBe('rejected');
    // The same schema as JSON.parse reorders it is another grammar, not the first one from the cache.
    const reordered = schemaGrammar(JSON.parse(text));
    expect(match(reordered, '{"1": true, "b": 1}')).toBe('complete');
    expect(match(reordered, '{"b": 1, "1": true}')).toBe('rejected');
  });
});
