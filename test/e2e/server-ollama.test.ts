// Ollama's API end to end: the official `ollama` npm client against the real server on a tiny
// checkpoint (and on recorded Qwen3 output for thinking and tool calls). A chat turn must be the
// one /v1/chat/completions gives for the same conversation, streamed as the NDJSON lines the
// client iterates, with model listings the client reads and errors it raises as ResponseError.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { repoRoot } from '../helpers/fixtures.js';
import { get, loadTiny, post, type TinyModel } from './server-harness.js';
import { ScriptedEngine } from './scripted-engine.js';

const key = 'sk-ollama-test';
const recorded =
  '<think>\nTwo cities, so two calls.\n</think>\n\nChecking both.\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "2": "x"}}\n</tool_call>\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>';

let model: TinyModel;
let server: RunningServer;
let ollama: Ollama;
let openai: OpenAI;
let scripted: ScriptedEngine;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  scripted = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Paris and Oslo', reply: recorded }], { tokensPerEvent: 3 });
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0, apiKey: key };
  server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, constraints, modelDir: model.dir }, options);
  // The client sends the key in the headers it is given, as tools put it before a remote Ollama.
  ollama = new Ollama({ host: server.url, headers: { Authorization: `Bearer ${key}` } });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  await model?.engine.close();
});

const greedy = { temperature: 0 } as const;
const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } } }];

describe('POST /api/chat', () => {
  it('the same turn as chat completions: greedy text, prompt and answer token counts, done_reason', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Tell me about the sea.' },
    ];
    const r = await ollama.chat({ model: 'qwen3', messages, think: false, options: { ...greedy, num_predict: 12 } });
    const c = await openai.chat.completions.create({ model: 'qwen3', messages: messages as OpenAI.ChatCompletionMessageParam[], enable_thinking: false, max_tokens: 12, ...greedy } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(r.model).toBe('qwen3');
    expect(r.message).toEqual({ role: 'assistant', content: c.choices[0].message.content });
    expect(r.done).toBe(true);
    expect(r.done_reason).toBe(c.choices[0].finish_reason === 'length' ? 'length' : 'stop');
    expect(r.prompt_eval_count).toBe(c.usage!.prompt_tokens);
    expect(r.eval_count).toBe(c.usage!.completion_tokens);
    expect(Number.isNaN(Date.parse(String(r.created_at)))).toBe(false);
    // Nanoseconds: the whole is at least its parts.
    expect(r.eval_duration).toBeGreaterThan(0);
    expect(r.total_duration).toBeGreaterThanOrEqual(r.prompt_eval_duration + r.eval_duration);
    // The served id with Ollama's default tag is the same model.
    const tagged = await ollama.chat({ model: 'qwen3:latest', messages, think: false, options: { ...greedy, num_predict: 12 } });
    expect(tagged.message.content).toBe(r.message.content);
    expect(tagged.model).toBe('qwen3:latest');
    // Tools that list models through /api/tags send that name to the OpenAI routes too.
    const viaOpenai = await openai.chat.completions.create({ model: 'qwen3:latest', messages: messages as OpenAI.ChatCompletionMessageParam[], enable_thinking: false, max_tokens: 12, ...greedy } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(viaOpenai.choices[0].message.content).toBe(c.choices[0].message.content);
  });

  it('streams by the client\'s async iterator: the parts add up to the whole answer, the last one done with the statistics', async () => {
    const request = { model: 'qwen3', messages: [{ role: 'user', content: 'Count to five.' }], think: false, options: { ...greedy, num_predict: 16 } };
    const whole = await ollama.chat(request);
    const parts = [];
    for await (const part of await ollama.chat({ ...request, stream: true })) parts.push(part);
    expect(parts.length).toBeGreaterThan(2);
    expect(parts.slice(0, -1).every((p) => p.done === false && p.message.role === 'assistant')).toBe(true);
    expect(parts.map((p) => p.message.content).join('')).toBe(whole.message.content);
    const last = parts.at(-1)!;
    expect(last).toMatchObject({ done: true, done_reason: whole.done_reason, eval_count: whole.eval_count, prompt_eval_count: whole.prompt_eval_count, message: { role: 'assistant', content: '' } });
  });

  it('streams unless told not to, as NDJSON lines', async () => {
    const r = await post(`${server.url}/api/chat`, { model: 'qwen3', messages: [{ role: 'user', content: 'Hi' }], options: { num_predict: 4 } }, { authorization: `Bearer ${key}` });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-ndjson');
    const lines = r.text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.at(-1)).toMatchObject({ done: true, eval_count: 4, done_reason: 'length' });
  });

  it('num_predict ends the answer with done_reason "length" and that many tokens', async () => {
    const r = await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'Say something long.' }], think: false, options: { ...greedy, num_predict: 5 } });
    expect(r.done_reason).toBe('length');
    expect(r.eval_count).toBe(5);
  });

  it('format: a JSON Schema is enforced, and "json" gives a JSON object', async () => {
    const schema = { type: 'object', properties: { age: { type: 'integer' }, available: { type: 'boolean' } }, required: ['age', 'available'], additionalProperties: false };
    const r = await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'Ollama is 22 years old. Answer in JSON.' }], format: schema, think: false, options: { ...greedy, num_predict: 200 } });
    const parsed = JSON.parse(r.message.content);
    expect(Object.keys(parsed).sort()).toEqual(['age', 'available']);
    expect(Number.isInteger(parsed.age)).toBe(true);
    expect(typeof parsed.available).toBe('boolean');
    const json = await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'Answer in JSON.' }], format: 'json', think: false, options: { ...greedy, num_predict: 200 } });
    const value = JSON.parse(json.message.content);
    expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
  });

  it('recorded Qwen3 output: thinking apart, text, and tool calls with their arguments as objects; streamed alike', async () => {
    const request = { model: 'qwen3', messages: [{ role: 'user', content: 'Weather in Paris and Oslo?' }], think: true, tools, options: { num_predict: 400 } };
    const r = await ollama.chat(request);
    expect(r.message.thinking).toBe('\nTwo cities, so two calls.\n');
    expect(r.message.content).toBe('Checking both.');
    expect(r.message.tool_calls!.map((c) => c.function)).toEqual([
      { index: 0, name: 'get_weather', arguments: { city: 'Paris', 2: 'x' } },
      { index: 1, name: 'get_weather', arguments: { city: 'Oslo' } },
    ]);
    expect(r.done_reason).toBe('stop');
    // On the wire in the model's key order (JSON.parse in the client puts integer-like keys first).
    const raw = await post(`${server.url}/api/chat`, { ...request, stream: false }, { authorization: `Bearer ${key}` });
    expect(raw.text).toContain('"arguments":{"city":"Paris","2":"x"}');

    const parts = [];
    for await (const part of await ollama.chat({ ...request, stream: true })) parts.push(part);
    expect(parts.map((p) => p.message.thinking ?? '').join('')).toBe(r.message.thinking);
    expect(parts.map((p) => p.message.content).join('')).toBe(r.message.content);
    expect(parts.flatMap((p) => p.message.tool_calls ?? []).map((c) => c.function)).toEqual(r.message.tool_calls!.map((c) => c.function));

    // The next turn as Ollama's tool guide writes it: the calls sent back as objects, results as tool messages.
    await ollama.chat({
      model: 'qwen3',
      tools,
      think: false,
      options: { num_predict: 1 },
      messages: [...request.messages, r.message, { role: 'tool', tool_name: 'get_weather', content: 'sunny in Paris' }, { role: 'tool', tool_name: 'get_weather', content: 'snow in Oslo' }],
    });
    const prompt = scripted.prompts.at(-1)!;
    // Rendered from the objects as transformers renders a dict (tojson), in the order the client sent
    // them (its JSON.parse of the answer put the integer-like key first).
    expect(prompt).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"2": "x", "city": "Paris"}}\n</tool_call>');
    expect(prompt).toContain('<tool_response>\nsunny in Paris\n</tool_response>\n<tool_response>\nsnow in Oslo\n</tool_response>');
  });

  it('an empty last assistant message is answered as a fresh turn, not continued', async () => {
    const messages = [{ role: 'user', content: 'Name a color.' }];
    const plain = await ollama.chat({ model: 'qwen3', messages, think: false, options: { ...greedy, num_predict: 4 } });
    const plainPrompt = scripted.prompts.at(-1);
    const r = await ollama.chat({ model: 'qwen3', messages: [...messages, { role: 'assistant', content: '' }], think: false, options: { ...greedy, num_predict: 4 } });
    expect(scripted.prompts.at(-1)).toBe(plainPrompt);
    expect(r.message.content).toBe(plain.message.content);
  });

  it('think turns Qwen3\'s thinking on (true or a level) or off (false) in the prompt', async () => {
    const ask = async (think: boolean | 'high') => {
      await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'Think?' }], think, options: { num_predict: 1 } });
      return scripted.prompts.at(-1)!;
    };
    expect(await ask(false)).toMatch(/<\|im_start\|>assistant\n<think>\n\n<\/think>\n\n$/);
    expect(await ask(true)).toMatch(/<\|im_start\|>assistant\n$/);
    expect(await ask('high')).toMatch(/<\|im_start\|>assistant\n$/);
  });

  it("logprobs with top_logprobs: each token's entry as chat completions gives it, whole and spread over the streamed lines", async () => {
    const messages = [{ role: 'user', content: 'Tell me about the sea.' }];
    const r = await ollama.chat({ model: 'qwen3', messages, think: false, logprobs: true, top_logprobs: 2, options: { ...greedy, num_predict: 8 } });
    const c = await openai.chat.completions.create({ model: 'qwen3', messages: messages as OpenAI.ChatCompletionMessageParam[], enable_thinking: false, max_tokens: 8, logprobs: true, top_logprobs: 2, ...greedy } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(r.logprobs).toHaveLength(r.eval_count);
    expect(r.logprobs).toEqual(c.choices[0].logprobs!.content);
    for (const e of r.logprobs!) expect(e.top_logprobs).toHaveLength(2);
    const parts = await ollama.chat({ model: 'qwen3', messages, think: false, logprobs: true, options: { ...greedy, num_predict: 8 }, stream: true });
    const streamed = [];
    for await (const part of parts) streamed.push(...(part.logprobs ?? []));
    expect(streamed.map((e) => e.token)).toEqual(r.logprobs!.map((e) => e.token));
    // Without alternatives the entry has none, as Ollama's omitempty leaves the list out.
    expect(streamed.every((e) => !('top_logprobs' in e) && (e as { bytes?: number[] }).bytes!.length > 0)).toBe(true);
    const g = await ollama.generate({ model: 'qwen3', prompt: 'The sea is', raw: true, logprobs: true, options: { ...greedy, num_predict: 4 } });
    expect(g.logprobs!.map((e) => e.token).join('')).toBe(g.response);
    const plain = await ollama.chat({ model: 'qwen3', messages, think: false, options: { ...greedy, num_predict: 2 } });
    expect(plain).not.toHaveProperty('logprobs');
    for (const bad of [{ logprobs: true, top_logprobs: 21 }, { top_logprobs: 2 }]) {
      const res = await post(`${server.url}/api/chat`, { model: 'qwen3', messages, stream: false, ...bad }, { authorization: `Bearer ${key}` });
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.json.error).toContain('top_logprobs');
    }
  });

  it('no messages is a load request: done at once with done_reason "load"', async () => {
    const r = await ollama.chat({ model: 'qwen3', messages: [] });
    expect(r).toMatchObject({ done: true, done_reason: 'load', message: { role: 'assistant', content: '' } });
  });
});

describe('POST /api/generate', () => {
  it('with system: the chat turn of that system and user message', async () => {
    const g = await ollama.generate({ model: 'qwen3', system: 'Be brief.', prompt: 'Tell me about the sea.', think: false, options: { ...greedy, num_predict: 10 } });
    const c = await ollama.chat({ model: 'qwen3', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell me about the sea.' }], think: false, options: { ...greedy, num_predict: 10 } });
    expect(g.response).toBe(c.message.content);
    expect(g.prompt_eval_count).toBe(c.prompt_eval_count);
    expect(g.done_reason).toBe(c.done_reason);
    expect(g.eval_count).toBe(c.eval_count);
  });

  it('raw: the prompt goes to the model as it is, as on /v1/completions; streamed alike', async () => {
    const prompt = 'The capital of France is';
    const g = await ollama.generate({ model: 'qwen3', prompt, raw: true, options: { ...greedy, num_predict: 8 } });
    const c = await openai.completions.create({ model: 'qwen3', prompt, max_tokens: 8, ...greedy });
    expect(g.response).toBe(c.choices[0].text);
    expect(g.prompt_eval_count).toBe(c.usage!.prompt_tokens);
    expect(g.done_reason).toBe('length');
    expect(g.eval_count).toBe(8);
    const parts = [];
    for await (const part of await ollama.generate({ model: 'qwen3', prompt, raw: true, stream: true, options: { ...greedy, num_predict: 8 } })) parts.push(part);
    expect(parts.map((p) => p.response).join('')).toBe(g.response);
    expect(parts.at(-1)).toMatchObject({ done: true, done_reason: 'length', eval_count: 8 });
  });

  it('recorded output with think: the think block comes back in thinking', async () => {
    const g = await ollama.generate({ model: 'qwen3', prompt: 'Weather in Paris and Oslo?', think: true, options: { num_predict: 400 } });
    expect(g.thinking).toBe('\nTwo cities, so two calls.\n');
    expect(g.response!.startsWith('Checking both.')).toBe(true);
  });

  it('format is enforced; an empty prompt is a load request; template, suffix, images and context are refused by name', async () => {
    const g = await ollama.generate({ model: 'qwen3', prompt: 'A list of three booleans:', format: { type: 'array', items: { type: 'boolean' }, minItems: 3, maxItems: 3 }, think: false, options: { ...greedy, num_predict: 100 } });
    const list = JSON.parse(g.response!);
    expect(list).toHaveLength(3);
    expect(list.every((b: unknown) => typeof b === 'boolean')).toBe(true);

    expect(await ollama.generate({ model: 'qwen3', prompt: '' })).toMatchObject({ done: true, done_reason: 'load', response: '' });
    // keep_alive 0 is Ollama's unload request: answered as one (the model stays loaded while the server runs).
    expect(await ollama.generate({ model: 'qwen3', prompt: '', keep_alive: '0s' })).toMatchObject({ done: true, done_reason: 'unload' });
    expect(await ollama.chat({ model: 'qwen3', messages: [], keep_alive: 0 })).toMatchObject({ done: true, done_reason: 'unload' });

    const refusals: [Record<string, unknown>, RegExp][] = [
      [{ template: '{{ .Prompt }}' }, /^template is not supported/],
      [{ suffix: '    return x' }, /^suffix/],
      [{ images: ['aGk='] }, /images are not supported/],
      [{ context: [1, 2, 3] }, /^context is not supported/],
    ];
    for (const [extra, message] of refusals)
      await expect(ollama.generate({ model: 'qwen3', prompt: 'hi', ...extra } as Parameters<Ollama['generate']>[0] & { stream?: false })).rejects.toMatchObject({ name: 'ResponseError', status_code: 400, error: expect.stringMatching(message) });
  });
});

describe('model routes', () => {
  const shards = () => readdirSync(model.dir).filter((f) => f.endsWith('.safetensors'));
  const weights = () => shards().reduce((sum, f) => sum + statSync(join(model.dir, f)).size, 0);
  /** Parameters the checkpoint holds, from its safetensors headers. */
  const stored = () =>
    shards().reduce((sum, f) => {
      const bytes = readFileSync(join(model.dir, f));
      const header = JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<string, { shape: number[] }>;
      return sum + Object.entries(header).filter(([k]) => k !== '__metadata__').reduce((n, [, t]) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    }, 0);

  it('list, show, ps and version describe the served model', async () => {
    const { models } = await ollama.list();
    expect(models).toHaveLength(1);
    const m = models[0];
    expect(m).toMatchObject({ name: 'qwen3:latest', model: 'qwen3:latest', size: weights(), details: { family: 'qwen3', format: 'safetensors', quantization_level: 'BF16' } });
    expect(m.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(m.details.parameter_size).toMatch(/^\d+\.\d{2}M$/);

    const shown = await ollama.show({ model: 'qwen3' });
    expect(shown.template).toBe(model.template.source);
    expect(shown.capabilities).toEqual(['completion', 'tools', 'thinking']);
    const info = shown.model_info as unknown as Record<string, unknown>;
    const config = JSON.parse(readFileSync(join(model.dir, 'config.json'), 'utf8'));
    expect(info).toMatchObject({
      'general.architecture': 'qwen3',
      'qwen3.block_count': config.num_hidden_layers,
      'qwen3.embedding_length': config.hidden_size,
      'qwen3.attention.head_count_kv': config.num_key_value_heads,
      // What a request may fill here: the engine's served limit, not the model's positions.
      'qwen3.context_length': 1024,
    });
    expect(info['general.parameter_count']).toBe(stored());
    expect(shown.details).toEqual(m.details);
    expect(shown.parameters).toMatch(/^stop +"<\|im_end\|>"$/m);

    const { models: running } = await ollama.ps();
    expect(running).toHaveLength(1);
    expect(running[0]).toMatchObject({ name: 'qwen3:latest', size: weights(), size_vram: 0, context_length: 1024 });
    expect(Date.parse(String(running[0].expires_at))).toBeGreaterThan(Date.now() + 100 * 365 * 86_400_000);

    // The Ollama release whose API is served, not grpst's own version (GET /version's): tools
    // gate on it, and VS Code's Copilot Chat refuses anything under 0.6.4.
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(await ollama.version()).toEqual({ version: '0.12.11' });
    expect((await get(`${server.url}/version`, { authorization: `Bearer ${key}` })).json).toEqual({ version });
  });

  it('an unknown model is a 404 the client raises as its ResponseError, in Ollama\'s words', async () => {
    const notFound = { name: 'ResponseError', status_code: 404, error: expect.stringMatching(/^model 'llama3.2' not found; this server serves 'qwen3:latest'/) };
    await expect(ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject(notFound);
    await expect(ollama.generate({ model: 'llama3.2', prompt: 'hi' })).rejects.toMatchObject(notFound);
    await expect(ollama.show({ model: 'llama3.2' })).rejects.toMatchObject(notFound);
    await expect(ollama.chat({ model: 'qwen3:8b', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status_code: 404 });
  });

  it('pull, push, create, copy and delete are refused with what to do instead', async () => {
    await expect(ollama.pull({ model: 'qwen3' })).rejects.toMatchObject({ name: 'ResponseError', status_code: 400, error: expect.stringMatching(/^Pulling models is not offered by this server: .*`grpst build`.*`grpst start`/) });
    await expect(ollama.push({ model: 'qwen3' })).rejects.toMatchObject({ status_code: 400, error: expect.stringContaining('grpst archive') });
    await expect(ollama.create({ model: 'x', from: 'qwen3' })).rejects.toMatchObject({ status_code: 400, error: expect.stringContaining('grpst build') });
    await expect(ollama.copy({ source: 'qwen3', destination: 'x' })).rejects.toMatchObject({ status_code: 400, error: expect.stringContaining('served_model_name') });
    await expect(ollama.delete({ model: 'qwen3' })).rejects.toMatchObject({ status_code: 400, error: expect.stringContaining('grpst stop') });
  });
});

describe('errors in Ollama\'s envelope', () => {
  it('bad fields are 400s naming them; unknown options are ignored, as Ollama ignores them', async () => {
    const headers = { authorization: `Bearer ${key}` };
    const wrongType = await post(`${server.url}/api/chat`, { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], options: { temperature: 'hot' } }, headers);
    expect(wrongType.status).toBe(400);
    expect(wrongType.json).toEqual({ error: expect.stringContaining("'options.temperature'") });
    const badFormat = await post(`${server.url}/api/chat`, { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], format: 'yaml' }, headers);
    expect(badFormat.json).toEqual({ error: expect.stringMatching(/^invalid format 'yaml'/) });
    // A schema that cannot be enforced: the fallback offered is Ollama's JSON mode, not OpenAI's spelling of it.
    const badSchema = await post(`${server.url}/api/chat`, { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], format: { type: 'object', properties: { a: { $ref: '#/nope' } } } }, headers);
    expect(badSchema.status).toBe(400);
    expect(badSchema.json.error).toMatch(/^format cannot be enforced: .*Simplify the schema or send "format": "json"\.$/);
    const missing = await post(`${server.url}/api/chat`, { messages: [] }, headers);
    expect(missing.status).toBe(400);
    expect(missing.json.error).toContain("'model'");
    const unknown = await ollama.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], think: false, options: { num_predict: 2, num_ctx: 99_999, mirostat: 2, x_custom: 1 } as never });
    expect(unknown.eval_count).toBe(2);
  });

  it('the API key guards the routes as it guards /v1: the client raises a 401', async () => {
    const bare = new Ollama({ host: server.url });
    await expect(bare.list()).rejects.toMatchObject({ name: 'ResponseError', status_code: 401, error: expect.stringContaining('API key') });
    await expect(bare.chat({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ status_code: 401 });
  });
});
