// Tool calling through the server: tools, the assistant's calls and the tool results reach the
// prompt exactly as transformers' apply_chat_template renders them (recorded goldens), and the
// tool_choice variants are accepted or refused as OpenAI defines them. Turning model output into
// tool_calls is covered by the parser tests on recorded model outputs (test/unit/parse.test.ts),
// since the random-weight fixtures never write a call themselves.
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesDir, readJson } from '../helpers/fixtures.js';
import { loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

interface TemplateCase {
  name: string;
  messages: any[];
  tools?: any[];
  add_generation_prompt: boolean;
  enable_thinking?: boolean;
}

const cases = readJson<{ cases: TemplateCase[] }>(join(fixturesDir, 'template-cases.json')).cases;
const goldens = new Map(readJson<{ cases: { name: string; text: string }[] }>(join(fixturesDir, 'template-goldens.json')).cases.map((c) => [c.name, c.text]));

let model: TinyModel;
let srv: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  // The goldens leave enable_thinking unset unless the case says; thinking on is the template's default.
  srv = await serve(model, { enableThinking: true });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

describe('tools through the template', () => {
  for (const name of ['tools', 'tools-system', 'tool-call-and-response', 'two-tool-calls-two-responses']) {
    it(`${name}: the prompt is the one transformers renders`, async () => {
      const c = cases.find((x) => x.name === name)!;
      const body: Record<string, unknown> = { messages: c.messages, tools: c.tools };
      if (c.enable_thinking !== undefined) body.enable_thinking = c.enable_thinking;
      const expected = model.tokenizer.encode(goldens.get(name)!);
      const tok = await post(`${srv.url}/tokenize`, body);
      expect(tok.status).toBe(200);
      expect(tok.json.tokens).toEqual(expected);
      const r = await srv.client.chat.completions.create({ model: 'qwen3', ...body, max_tokens: 4, temperature: 0 } as any);
      expect(r.usage!.prompt_tokens).toBe(expected.length);
      expect(['stop', 'length']).toContain(r.choices[0].finish_reason);
    });
  }

  it('tool_choice none still lists the tools; a named tool and required are accepted', async () => {
    const c = cases.find((x) => x.name === 'tool-call-and-response')!;
    const base = { model: 'qwen3', messages: c.messages, tools: c.tools, max_tokens: 4, temperature: 0 };
    const auto = await srv.client.chat.completions.create(base as any);
    for (const tool_choice of ['none', 'required', { type: 'function', function: { name: 'get_current_weather' } }]) {
      const r = await srv.client.chat.completions.create({ ...base, tool_choice } as any);
      expect(r.usage!.prompt_tokens).toBe(auto.usage!.prompt_tokens);
    }
    const without = await srv.client.chat.completions.create({ ...base, tools: undefined } as any);
    expect(without.usage!.prompt_tokens).toBeLessThan(auto.usage!.prompt_tokens);
  });

  it('tools with duplicate names or an unknown named choice are refused', async () => {
    const c = cases.find((x) => x.name === 'tools')!;
    const dup = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: c.messages, tools: [...c.tools!, ...c.tools!] });
    expect(dup.status).toBe(400);
    expect(dup.json.error.param).toBe('tools');
    const named = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: c.messages, tools: c.tools, tool_choice: { type: 'function', function: { name: 'get_postcode' } } });
    expect(named.status).toBe(400);
    expect(named.json.error.message).toContain('get_postcode');
  });

  it('tool_choice "required" or a named function without tools: 400 naming tool_choice and saying to send tools', async () => {
    const messages = [{ role: 'user', content: 'What is the weather in Boston?' }];
    const named = { type: 'function', function: { name: 'get_current_weather' } };
    for (const [tool_choice, tools] of [['required', undefined], ['required', []], [named, undefined], [named, []]] as const) {
      const what = `${JSON.stringify(tool_choice)} with tools ${JSON.stringify(tools)}`;
      const err = await srv.client.chat.completions.create({ model: 'qwen3', messages, tool_choice, tools, max_tokens: 2 } as any).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, what).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(e.param, what).toBe('tool_choice');
      expect(e.type, what).toBe('invalid_request_error');
      expect(e.message, what).toContain("'tool_choice' is only allowed when 'tools' are specified");
      expect(e.message, what).toMatch(/Send .* in tools/);
    }
  });

  it('tool_choice "auto" or "none" without tools is accepted and changes nothing', async () => {
    const base = { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, temperature: 0 };
    const plain = await srv.client.chat.completions.create(base as any);
    for (const [tool_choice, tools] of [['auto', undefined], ['auto', []], ['none', undefined], ['none', []]] as const) {
      const r = await srv.client.chat.completions.create({ ...base, tool_choice, tools } as any);
      expect(r.usage!.prompt_tokens, `${tool_choice} with tools ${JSON.stringify(tools)}`).toBe(plain.usage!.prompt_tokens);
      expect(r.choices[0].message.content).toBe(plain.choices[0].message.content);
    }
  });
});

describe('tool turns in the conversation', () => {
  const call = { id: 'call_1', type: 'function', function: { name: 'get_current_weather', arguments: '{"location": "Boston"}' } };
  const turns = (assistant: Record<string, unknown>, tool: Record<string, unknown>) => [
    { role: 'user', content: 'What is the weather in Boston?' },
    { role: 'assistant', tool_calls: [call], ...assistant },
    { role: 'tool', content: '{"temperature": 22}', ...tool },
  ];

  it('an assistant turn of tool calls with null or absent content, and a tool result without tool_call_id, are accepted and render alike', async () => {
    // Qwen3's template pairs a result with its call by order and never prints the id, so a
    // result without one (vLLM accepts it; OpenAI does not) renders the same prompt.
    const reference = turns({ content: null }, { tool_call_id: 'call_1' });
    const expected = await post(`${srv.url}/tokenize`, { messages: reference });
    expect(expected.status).toBe(200);
    for (const messages of [turns({}, { tool_call_id: 'call_1' }), turns({ content: null }, {}), turns({}, {})]) {
      const tok = await post(`${srv.url}/tokenize`, { messages });
      expect(tok.json.tokens).toEqual(expected.json.tokens);
      const r = await srv.client.chat.completions.create({ model: 'qwen3', messages, max_tokens: 2, temperature: 0 } as any);
      expect(r.usage!.prompt_tokens).toBe(expected.json.count);
    }
  });
});
