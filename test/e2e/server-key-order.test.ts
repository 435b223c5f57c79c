// Integer-like keys keep the client's order end to end, as vLLM (Python's json.loads) keeps it:
// in the tools and call arguments the prompt shows the model, and in the order the grammar makes
// the model write a schema's properties. Bodies are sent as raw JSON text, since a JavaScript
// object (and so any SDK) would itself move "1" before "b". The prompts are read where the engine
// receives them (a scripted engine with no rules, in front of the real one, records each).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/index.js';
import { post, type TinyModel } from './server-harness.js';
import { closeRecordingServer, startRecordingServer, type ScriptedEngine } from './scripted-engine.js';

let model: TinyModel;
let server: RunningServer;
let engine: ScriptedEngine;

beforeAll(async () => {
  ({ model, engine, server } = await startRecordingServer());
});

afterAll(() => closeRecordingServer({ model, server }));

/** Posts JSON text as written and returns the prompt the engine received for it. */
async function promptOf(path: string, body: string): Promise<string> {
  const before = engine.prompts.length;
  const r = await post(`${server.url}${path}`, body);
  expect(r.status, r.text).toBe(200);
  expect(engine.prompts.length).toBe(before + 1);
  return engine.prompts[before];
}

const properties = '{"b": {"type": "string"}, "1": {"type": "integer"}, "a": {"type": "boolean"}}';
const parameters = `{"type": "object", "properties": ${properties}}`;
/** The tool as Qwen3's template prints it (tojson), keys as the client wrote them. */
const toolLine = `{"type": "function", "function": {"name": "pick", "parameters": ${parameters}}}`;
const user = '{"role": "user", "content": "Seat?"}';

describe('the prompt shows the client key order', () => {
  it("a tool's parameters, on chat, /tokenize, responses and messages", async () => {
    const chatTools = `[{"type": "function", "function": {"name": "pick", "parameters": ${parameters}}}]`;
    const chat = await promptOf('/v1/chat/completions', `{"model": "qwen3", "max_tokens": 1, "messages": [${user}], "tools": ${chatTools}}`);
    expect(chat).toContain(`<tools>\n${toolLine}\n</tools>`);
    const tok = await post(`${server.url}/tokenize`, `{"messages": [${user}], "tools": ${chatTools}}`);
    expect(model.tokenizer.decode(tok.json.tokens)).toBe(chat);
    const responses = await promptOf('/v1/responses', `{"model": "qwen3", "max_output_tokens": 1, "input": "Seat?", "tools": [{"type": "function", "name": "pick", "parameters": ${parameters}}]}`);
    expect(responses).toBe(chat);
    const messages = await promptOf('/v1/messages', `{"model": "qwen3", "max_tokens": 1, "messages": [${user}], "tools": [{"name": "pick", "input_schema": ${parameters}}]}`);
    expect(messages).toBe(chat);
  });

  it("a call's arguments sent as an object: Anthropic's tool_use input and a chat tool call", async () => {
    const args = '{"z": 1, "2": 2}';
    const anthropic = await promptOf(
      '/v1/messages',
      `{"model": "qwen3", "max_tokens": 1, "messages": [${user}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "pick", "input": ${args}}]},` +
        ' {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}',
    );
    expect(anthropic).toContain(`<tool_call>\n{"name": "pick", "arguments": ${args}}\n</tool_call>`);
    const chatTurns = (given: string) =>
      `{"model": "qwen3", "max_tokens": 1, "messages": [${user}, {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "pick", "arguments": ${given}}}]},` +
      ' {"role": "tool", "tool_call_id": "t1", "content": "ok"}]}';
    expect(await promptOf('/v1/chat/completions', chatTurns(args))).toBe(anthropic);
    // The same arguments as JSON text, which the template prints as they are.
    expect(await promptOf('/v1/chat/completions', chatTurns(JSON.stringify(args)))).toBe(anthropic);
  });
});

describe('structured outputs write properties in the client order', () => {
  const schema = '{"type": "object", "properties": {"b": {"enum": [1, 2]}, "1": {"type": "boolean"}, "a": {"enum": ["x", "y"]}}, "required": ["b", "1", "a"], "additionalProperties": false}';
  const keysOf = (json: string) => [...json.matchAll(/"(\w+)":/g)].map((m) => m[1]);
  const chat = (fields: string) => `{"model": "qwen3", "max_tokens": 48, "temperature": 0, "messages": [${user}], ${fields}}`;

  it('response_format, guided_json as text, text.format and output_config.format', async () => {
    const answers: [string, (json: any) => string, string][] = [
      ['/v1/chat/completions', (j) => j.choices[0].message.content, chat(`"response_format": {"type": "json_schema", "json_schema": {"name": "seat", "schema": ${schema}}}`)],
      ['/v1/chat/completions', (j) => j.choices[0].message.content, chat(`"guided_json": ${JSON.stringify(schema)}`)],
      ['/v1/responses', (j) => j.output.find((o: any) => o.type === 'message').content[0].text, `{"model": "qwen3", "max_output_tokens": 48, "temperature": 0, "input": "Seat?", "text": {"format": {"type": "json_schema", "name": "seat", "schema": ${schema}}}}`],
      ['/v1/messages', (j) => j.content.find((b: any) => b.type === 'text').text, `{"model": "qwen3", "max_tokens": 48, "temperature": 0, "messages": [${user}], "output_config": {"format": {"type": "json_schema", "schema": ${schema}}}}`],
    ];
    for (const [path, text, body] of answers) {
      const r = await post(`${server.url}${path}`, body);
      expect(r.status, r.text).toBe(200);
      const answer = text(r.json);
      expect(keysOf(answer), `${path}: ${answer}`).toEqual(['b', '1', 'a']);
      expect(JSON.parse(answer)).toEqual({ b: expect.any(Number), 1: expect.any(Boolean), a: expect.any(String) });
    }
  });

  it("a forced tool's arguments", async () => {
    const tools = `[{"type": "function", "function": {"name": "pick", "parameters": ${schema}}}]`;
    const r = await post(`${server.url}/v1/chat/completions`, chat(`"tools": ${tools}, "tool_choice": {"type": "function", "function": {"name": "pick"}}`));
    expect(r.status, r.text).toBe(200);
    const call = r.json.choices[0].message.tool_calls[0].function;
    expect(call.name).toBe('pick');
    expect(keysOf(call.arguments), call.arguments).toEqual(['b', '1', 'a']);
  });
});
