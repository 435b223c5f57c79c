// Numbers in a request reach the prompt as transformers and vLLM (Python's json.loads and
// json.dumps) write them: `1.0` stays "1.0", `1e20` is "1e+20", `-0.0` stays "-0.0", an integer
// past 2^53 keeps its digits, on every route that renders the chat template, wherever the body
// holds the number (tools, call arguments, chat_template_kwargs, documents). Bodies are sent as
// raw JSON text, since a JavaScript object (and so any SDK) holds only the double. The prompts are
// read where the engine receives them (a scripted engine with no rules, in front of the real one).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/index.js';
import { post, type TinyModel } from './server-harness.js';
import { closeRecordingServer, startRecordingServer, type ScriptedEngine } from './scripted-engine.js';

let model: TinyModel;
let server: RunningServer;
let engine: ScriptedEngine;

beforeAll(async () => {
  // Trusted request templates: the one below prints the kwargs and documents it is given.
  ({ model, engine, server } = await startRecordingServer({ trustRequestChatTemplate: true }));
});

afterAll(() => closeRecordingServer({ model, server }));

/** Posts JSON text as written and returns the prompt the engine received for it, and its length in tokens. */
async function promptOf(path: string, body: string): Promise<{ text: string; tokens: number }> {
  const before = engine.prompts.length;
  const r = await post(`${server.url}${path}`, body);
  expect(r.status, r.text).toBe(200);
  expect(engine.prompts.length).toBe(before + 1);
  return { text: engine.prompts[before], tokens: engine.requests[before].tokens.length };
}

const parameters = '{"type": "object", "properties": {"x": {"type": "number", "default": 1.0, "maximum": 1e20, "minimum": -0.0}, "id": {"type": "integer", "enum": [12345678901234567, 2]}}}';
const args = '{"x": 2.0, "id": 12345678901234567, "scale": 1.5e3}';
// As Python 3 writes them: json.dumps(json.loads(text)).
const toolLine =
  '{"type": "function", "function": {"name": "scale", "parameters": {"type": "object", "properties": {"x": {"type": "number", "default": 1.0, "maximum": 1e+20, "minimum": -0.0}, "id": {"type": "integer", "enum": [12345678901234567, 2]}}}}}';
const callLine = '{"name": "scale", "arguments": {"x": 2.0, "id": 12345678901234567, "scale": 1500.0}}';
const user = '{"role": "user", "content": "Scale it."}';
const chatMessages = `[${user}, {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "scale", "arguments": ${args}}}]}, {"role": "tool", "tool_call_id": "t1", "content": "ok"}]`;
const chatTools = `[{"type": "function", "function": {"name": "scale", "parameters": ${parameters}}}]`;

describe('the prompt writes numbers as Python does', () => {
  it('chat completions and /tokenize: tools and a call whose arguments are an object', async () => {
    const chat = await promptOf('/v1/chat/completions', `{"model": "qwen3", "max_tokens": 1, "messages": ${chatMessages}, "tools": ${chatTools}}`);
    expect(chat.text).toContain(`<tools>\n${toolLine}\n</tools>`);
    expect(chat.text).toContain(`<tool_call>\n${callLine}\n</tool_call>`);
    const tok = await post(`${server.url}/tokenize`, `{"messages": ${chatMessages}, "tools": ${chatTools}}`);
    expect(tok.status, tok.text).toBe(200);
    expect(model.tokenizer.decode(tok.json.tokens)).toBe(chat.text);
  });

  it('Anthropic messages and count_tokens: input_schema and tool_use input', async () => {
    const body = (extra: string) =>
      `{"model": "qwen3", ${extra}"messages": [${user}, {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "scale", "input": ${args}}]},` +
      ` {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}], "tools": [{"name": "scale", "input_schema": ${parameters}}]}`;
    const messages = await promptOf('/v1/messages', body('"max_tokens": 1, '));
    expect(messages.text).toContain(`<tools>\n${toolLine}\n</tools>`);
    expect(messages.text).toContain(`<tool_call>\n${callLine}\n</tool_call>`);
    const counted = await post(`${server.url}/v1/messages/count_tokens`, body(''));
    expect(counted.status, counted.text).toBe(200);
    expect(counted.json.input_tokens).toBe(messages.tokens);
  });

  it('responses tools and Ollama chat tools and tool calls', async () => {
    const responses = await promptOf('/v1/responses', `{"model": "qwen3", "max_output_tokens": 1, "input": "Scale it.", "tools": [{"type": "function", "name": "scale", "parameters": ${parameters}}]}`);
    expect(responses.text).toContain(`<tools>\n${toolLine}\n</tools>`);
    const ollama = await promptOf(
      '/api/chat',
      `{"model": "qwen3", "stream": false, "options": {"num_predict": 1}, "messages": [${user}, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "scale", "arguments": ${args}}}]},` +
        ` {"role": "tool", "content": "ok"}], "tools": ${chatTools}}`,
    );
    expect(ollama.text).toContain(`<tools>\n${toolLine}\n</tools>`);
    expect(ollama.text).toContain(`<tool_call>\n${callLine}\n</tool_call>`);
  });

  it('a forced tool whose schema has such numbers still constrains its arguments to them', async () => {
    const schema = '{"type": "object", "properties": {"x": {"enum": [1.0, 2.5]}}, "required": ["x"], "additionalProperties": false}';
    const r = await post(
      `${server.url}/v1/chat/completions`,
      `{"model": "qwen3", "max_tokens": 32, "temperature": 0, "messages": [${user}], "tools": [{"type": "function", "function": {"name": "scale", "parameters": ${schema}}}], "tool_choice": {"type": "function", "function": {"name": "scale"}}}`,
    );
    expect(r.status, r.text).toBe(200);
    const call = r.json.choices[0].message.tool_calls[0].function;
    expect([1, 2.5]).toContain(JSON.parse(call.arguments).x);
    expect(engine.prompts.at(-1)).toContain('"enum": [1.0, 2.5]');
  });

  it('chat_template_kwargs and documents, numbers placed directly in them and deeper, on chat completions and /tokenize', async () => {
    const template = JSON.stringify('{{ foo }} {{ big }} {{ neg }} {{ deep | tojson }} {{ documents | tojson }} {{ documents[0].score }}|{% for m in messages %}{{ m.content }}{% endfor %}');
    const fields = `"chat_template": ${template}, "chat_template_kwargs": {"enable_thinking": false, "foo": 1.0, "big": 12345678901234567, "neg": -0.0, "deep": {"x": 2.0}}, "documents": [{"title": "sea", "score": 1.0}]`;
    // Jinja2 with json.loads of the same text (tojson as transformers' json.dumps).
    const printed = '1.0 12345678901234567 -0.0 {"x": 2.0} [{"title": "sea", "score": 1.0}] 1.0|Scale it.';
    const chat = await promptOf('/v1/chat/completions', `{"model": "qwen3", "max_tokens": 1, "messages": [${user}], ${fields}}`);
    expect(chat.text).toBe(printed);
    const tok = await post(`${server.url}/tokenize`, `{"messages": [${user}], ${fields}}`);
    expect(tok.status, tok.text).toBe(200);
    expect(model.tokenizer.decode(tok.json.tokens)).toBe(printed);
  });
});
