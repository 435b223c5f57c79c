// Tool calling through the server: tools, the assistant's calls and the tool results reach the
// prompt exactly as transformers' apply_chat_template renders them (recorded goldens), and the
// tool_choice variants are accepted or refused as OpenAI defines them. Turning model output into
// tool_calls is covered by the parser tests on recorded model outputs (test/unit/parse.test.ts),
// since the random-weight fixtures never write a call themselves; parallel_tool_calls replays a
// recorded output of two calls in front of the real engine (scripted-engine.ts).
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesDir, readJson } from '../helpers/fixtures.js';
import { loadTiny, post, serve, sseFrames, type TestServer, type TinyModel } from './server-harness.js';
import { ScriptedEngine } from './scripted-engine.js';

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

describe('reasoning sent back with a tool call', () => {
  it('under vLLM\'s name `reasoning` renders the think block as `reasoning_content` does', async () => {
    const call = { id: 'call_1', type: 'function', function: { name: 'get_current_weather', arguments: '{"location": "Boston"}' } };
    const turns = (assistant: Record<string, unknown>) => [
      { role: 'user', content: 'What is the weather in Boston?' },
      { role: 'assistant', content: null, tool_calls: [call], ...assistant },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 22}' },
    ];
    const thought = 'The user wants the weather; I will call the tool.';
    const tokens = async (messages: unknown[]) => (await post(`${srv.url}/tokenize`, { messages })).json.tokens as number[];
    const asContent = await tokens(turns({ reasoning_content: thought }));
    expect(model.tokenizer.decode(asContent)).toContain(`<think>\n${thought}\n</think>`);
    expect(await tokens(turns({ reasoning: thought }))).toEqual(asContent);
    const r = await srv.client.chat.completions.create({ model: 'qwen3', messages: turns({ reasoning: thought }), max_tokens: 1 } as any);
    expect(r.usage!.prompt_tokens).toBe(asContent.length);
  });
});

describe('parallel_tool_calls false under tool_choice "auto"', () => {
  const recorded =
    'Let me look both up.\n' +
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>';
  const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const messages = [{ role: 'user' as const, content: 'Weather in Paris and Oslo?' }];
  let scripted: TestServer;

  beforeAll(async () => {
    const engine = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Paris and Oslo', reply: recorded }]);
    scripted = await serve({ engine, tokenizer: model.tokenizer, template: model.template });
  });

  afterAll(async () => {
    await scripted?.server.close();
  });

  it('returns only the first call, streamed or not, and ends the answer there (as vLLM and OpenAI do); left out, both calls come back', async () => {
    const base = { model: 'qwen3', messages, tools, max_tokens: 100 };
    const both = await scripted.client.chat.completions.create(base);
    expect(both.choices[0].message.tool_calls!.map((c) => (c.type === 'function' ? c.function.arguments : ''))).toEqual(['{"city":"Paris"}', '{"city":"Oslo"}']);

    const one = await scripted.client.chat.completions.create({ ...base, parallel_tool_calls: false });
    const choice = one.choices[0];
    expect(choice.message.content).toBe('Let me look both up.');
    expect(choice.message.tool_calls!.map((c) => (c.type === 'function' ? c.function.arguments : ''))).toEqual(['{"city":"Paris"}']);
    expect(choice.finish_reason).toBe('tool_calls');
    expect((choice as any).stop_reason).toBeNull();
    // Generation stopped after the first call instead of writing the second.
    expect(one.usage!.completion_tokens).toBeLessThan(both.usage!.completion_tokens);

    const streamed = await post(`${scripted.url}/v1/chat/completions`, { ...base, parallel_tool_calls: false, stream: true });
    const frames = sseFrames(streamed.text).filter((f) => f !== '[DONE]');
    const calls = frames.flatMap((f) => f.choices[0]?.delta?.tool_calls ?? []);
    expect(calls.filter((d: any) => d.function?.name).map((d: any) => d.index)).toEqual([0]);
    expect(calls.map((d: any) => d.function.arguments).join('')).toBe('{"city":"Paris"}');
    expect(frames.at(-1).choices[0].finish_reason).toBe('tool_calls');
  });

  it('the Responses API returns one function_call item', async () => {
    const r = await scripted.client.responses.create({
      model: 'qwen3',
      input: 'Weather in Paris and Oslo?',
      tools: [{ type: 'function', name: 'get_weather', parameters: tools[0].function.parameters, strict: false }],
      parallel_tool_calls: false,
      max_output_tokens: 100,
    });
    expect(r.output.filter((item) => item.type === 'function_call').map((item) => (item.type === 'function_call' ? item.arguments : ''))).toEqual(['{"city":"Paris"}']);
    expect(r.status).toBe('completed');
  });
});
