// Schema errors in OpenAI's words and codes: the parameter's path with brackets, and a code a
// client can switch on (the official SDKs expose both as err.param / err.code).
import { describe, expect, it } from 'vitest';
import { fromZod, paramPath } from '../../src/server/errors.js';
import { chatRequestSchema } from '../../src/server/openai/schema-chat.js';
import { completionRequestSchema } from '../../src/server/openai/schema-completion.js';

const user = { role: 'user', content: 'hi' };

function refusal(schema: typeof chatRequestSchema | typeof completionRequestSchema, body: unknown) {
  const parsed = schema.safeParse(body);
  expect(parsed.success, JSON.stringify(body)).toBe(false);
  const e = fromZod(parsed.error!, body);
  return { status: e.status, param: e.param, code: e.code, message: e.message };
}
const chat = (body: unknown) => refusal(chatRequestSchema, body);

describe('fromZod', () => {
  it('spells paths as OpenAI does', () => {
    expect(paramPath(['messages', 0, 'content', 1, 'type'])).toBe('messages[0].content[1].type');
    expect(paramPath(['tools', 3, 'function', 'name'])).toBe('tools[3].function.name');
    expect(paramPath([])).toBe('');
  });

  it('a missing parameter is missing_required_parameter, a wrong type invalid_type', () => {
    expect(chat({ model: 'q' })).toEqual({ status: 400, param: 'messages', code: 'missing_required_parameter', message: "Missing required parameter: 'messages'." });
    expect(chat({ messages: [{ role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { arguments: '{}' } }] }] })).toMatchObject({
      param: 'messages[0].tool_calls[0].function.name',
      code: 'missing_required_parameter',
    });
    expect(chat({ messages: 'hi' })).toMatchObject({ param: 'messages', code: 'invalid_type', message: "Invalid type for 'messages': expected array, received string." });
    expect(chat({ messages: [user], n: 1.5 })).toMatchObject({ param: 'n', code: 'invalid_type' });
    expect(refusal(completionRequestSchema, { prompt: 'a', max_tokens: '4' })).toMatchObject({ param: 'max_tokens', code: 'invalid_type' });
  });

  it('a union of types refused by its type lists what is accepted', () => {
    const r = refusal(completionRequestSchema, { prompt: { text: 'a' } });
    expect(r).toMatchObject({ param: 'prompt', code: 'invalid_type' });
    expect(r.message).toMatch(/^Invalid type for 'prompt': expected .*string.* or .*received object\.$/);
    expect(refusal(completionRequestSchema, { max_tokens: 4 })).toMatchObject({ param: 'prompt', code: 'missing_required_parameter' });
  });

  it('limits carry the kind of value and the side', () => {
    expect(chat({ messages: [user], temperature: 3 })).toMatchObject({ param: 'temperature', code: 'decimal_above_max_value', message: "Invalid 'temperature': expected number to be <=2." });
    expect(chat({ messages: [user], temperature: 2.5 }).code).toBe('decimal_above_max_value');
    expect(chat({ messages: [user], n: 65 })).toMatchObject({ param: 'n', code: 'integer_above_max_value' });
    expect(chat({ messages: [user], n: 0 })).toMatchObject({ param: 'n', code: 'integer_below_min_value' });
    expect(chat({ messages: [user], top_p: -0.5 })).toMatchObject({ param: 'top_p', code: 'decimal_below_min_value' });
    expect(chat({ messages: [user], stop: Array.from({ length: 17 }, (_, i) => `s${i}`) })).toMatchObject({ param: 'stop', code: 'array_above_max_length' });
    const tool = (i: number) => ({ type: 'function', function: { name: `f${i}` } });
    expect(chat({ messages: [user], tools: Array.from({ length: 129 }, (_, i) => tool(i)) })).toMatchObject({ param: 'tools', code: 'array_above_max_length' });
    expect(chat({ messages: [] })).toMatchObject({ param: 'messages', code: 'empty_array' });
    expect(chat({ messages: [user], response_format: { type: 'json_schema', json_schema: { name: 'x'.repeat(65) } } })).toMatchObject({
      param: 'response_format.json_schema.name',
      code: 'string_above_max_length',
    });
  });

  it('anything else is invalid_value, naming the value', () => {
    const r = chat({ messages: [{ role: 'wizard', content: 'x' }] });
    expect(r).toMatchObject({ param: 'messages[0].role', code: 'invalid_value' });
    expect(r.message).toMatch(/^Invalid value for 'messages\[0\]\.role': expected one of 'system' \| 'developer' \| 'user' .*\.$/);
    expect(chat({ messages: [{ role: 'user', content: [] }] })).toMatchObject({ param: 'messages[0].content', code: 'invalid_value' });
  });
});
