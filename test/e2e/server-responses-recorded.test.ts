// The Responses API on outputs a real Qwen3 writes (recorded, replayed in front of the real
// engine): a think block, an answer and two tool calls in one turn become reasoning, message and
// function_call items in that order, streamed or not; and an engine failure after the stream
// began ends it with response.failed, the error inside, and nothing stored.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerationEngine, SubmitRequest, TokenEvent } from '../../src/engine/types.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { get, loadTiny, type TinyModel } from './server-harness.js';
import { ScriptedEngine } from './scripted-engine.js';

const recorded =
  '<think>\nThe user wants the weather in two cities. I should call the tool twice.\n</think>\n\n' +
  'Let me look both up.\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "2": "second key"}}\n</tool_call>\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>';

const tools = [{ type: 'function' as const, name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];

/** Yields a few tokens of the real engine's answer, then fails as a lost device would. */
class FailingEngine implements GenerationEngine {
  constructor(private readonly real: GenerationEngine) {}
  get info() {
    return this.real.info;
  }
  stats() {
    return this.real.stats();
  }
  async *submit(req: SubmitRequest): AsyncIterable<TokenEvent> {
    if (!req.tokens.length) return;
    yield { tokens: [785, 3974] };
    yield { tokens: [], finishReason: 'error', error: 'device lost' };
  }
  close() {
    return Promise.resolve();
  }
}

let model: TinyModel;
let server: RunningServer;
let client: OpenAI;
let failing: RunningServer;
let scripted: ScriptedEngine;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  scripted = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Paris and Oslo', reply: recorded }], { tokensPerEvent: 3 });
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true };
  server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template }, options);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
  failing = await startServer({ engine: new FailingEngine(model.engine), tokenizer: model.tokenizer, template: model.template }, options);
});

afterAll(async () => {
  await server?.close();
  await failing?.close();
  await model?.engine.close();
});

describe('recorded Qwen3 output through /v1/responses', () => {
  const body = { model: 'qwen3', input: 'Weather in Paris and Oslo?', tools, max_output_tokens: 400 };

  it('reasoning, the answer and each call become items in the order written, arguments as written', async () => {
    const r = await client.responses.create(body);
    expect(r.status).toBe('completed');
    expect(r.output.map((o) => o.type)).toEqual(['reasoning', 'message', 'function_call', 'function_call']);
    // The text between the tags, as chat's reasoning_content holds it.
    expect((r.output[0] as any).content[0].text).toBe('\nThe user wants the weather in two cities. I should call the tool twice.\n');
    expect(r.output_text).toBe('Let me look both up.');
    const calls = r.output.slice(2) as any[];
    // The model's key order survives, integer-like keys included.
    expect(calls.map((c) => c.arguments)).toEqual(['{"city":"Paris","2":"second key"}', '{"city":"Oslo"}']);
    expect(new Set(calls.map((c) => c.call_id)).size).toBe(2);
    expect(r.usage!.output_tokens_details.reasoning_tokens).toBeGreaterThan(10);
  });

  it('streamed, the SDK rebuilds the same items; the follow-up turn sends the calls and their results', async () => {
    const plain = await client.responses.create(body);
    const deltas: string[] = [];
    const stream = client.responses.stream(body);
    stream.on('response.reasoning_text.delta', (e) => deltas.push(e.delta));
    const final = await stream.finalResponse();
    const strip = (items: unknown[]) => JSON.parse(JSON.stringify(items, (k, v) => (['id', 'call_id', 'parsed', 'parsed_arguments'].includes(k) ? undefined : v)));
    expect(strip(final.output)).toEqual(strip(plain.output));
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe((plain.output[0] as any).content[0].text);

    const calls = plain.output.filter((o) => o.type === 'function_call') as any[];
    const follow = await client.responses.create({
      model: 'qwen3',
      previous_response_id: plain.id,
      tools,
      input: calls.map((c) => ({ type: 'function_call_output' as const, call_id: c.call_id, output: `sunny in ${JSON.parse(c.arguments).city}` })),
      max_output_tokens: 4,
    });
    expect(follow.status).toBeDefined();
    // The prompt the engine got holds the first turn's calls (as written) and both results.
    const prompt = scripted.prompts.at(-1)!;
    expect(prompt).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"city":"Paris","2":"second key"}}\n</tool_call>');
    expect(prompt).toContain('<tool_response>\nsunny in Paris\n</tool_response>');
    expect(prompt).toContain('<tool_response>\nsunny in Oslo\n</tool_response>');
    expect(prompt.indexOf('Let me look both up.')).toBeLessThan(prompt.indexOf('sunny in Paris'));
  });
});

describe('a failure after the stream began', () => {
  it('ends with response.failed carrying the error, and the response is not stored', async () => {
    const c = new OpenAI({ baseURL: `${failing.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const events: any[] = [];
    for await (const e of await c.responses.create({ model: 'qwen3', input: 'hi', stream: true })) events.push(e);
    const last = events.at(-1);
    expect(last.type).toBe('response.failed');
    expect(last.response.status).toBe('failed');
    expect(last.response.error.code).toBe('engine_error');
    expect(last.response.error.message).toContain('device lost');
    expect(events.some((e) => e.type === 'response.output_text.delta')).toBe(true);
    expect((await get(`${failing.url}/v1/responses/${last.response.id}`)).status).toBe(404);
  });
});
