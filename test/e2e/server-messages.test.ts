// Anthropic's Messages API end to end: the official @anthropic-ai/sdk against the real server on
// a tiny checkpoint (and on recorded Qwen3 output for thinking and tool calls). A message must be
// the turn /v1/chat/completions gives for the same conversation, streamed as the events the SDK's
// own MessageStream accumulates, with errors in Anthropic's envelope so the SDK raises its classes.
import Anthropic from '@anthropic-ai/sdk';
import { zodOutputFormat } from '@anthropic-ai/sdk/helpers/zod';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { GenerationEngine, SubmitRequest } from '../../src/engine/types.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { get, loadTiny, post, waitFor, type TinyModel } from './server-harness.js';
import { ScriptedEngine } from './scripted-engine.js';

const key = 'sk-messages-test';
const recorded =
  '<think>\nTwo cities, so two calls.\n</think>\n\nChecking both.\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "2": "x"}}\n</tool_call>\n' +
  '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>';

let model: TinyModel;
let server: RunningServer;
let anthropic: Anthropic;
let openai: OpenAI;
let scripted: ScriptedEngine;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  scripted = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Paris and Oslo', reply: recorded }], { tokensPerEvent: 3 });
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0, reasoningParser: true, apiKey: key };
  server = await startServer({ engine: scripted, tokenizer: model.tokenizer, template: model.template, constraints }, options);
  // The SDK sends the key as x-api-key, as it does to Anthropic.
  anthropic = new Anthropic({ baseURL: server.url, apiKey: key, maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: key, maxRetries: 0 });
});

afterAll(async () => {
  await server?.close();
  await model?.engine.close();
});

const base = { model: 'qwen3', temperature: 0 } as const;
const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object' as const, properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } }];

describe('POST /v1/messages', () => {
  it('the same turn as chat: system, messages, greedy text, usage and stop_reason', async () => {
    const m = await anthropic.messages.create({ ...base, max_tokens: 12, system: 'Be brief.', messages: [{ role: 'user', content: 'Tell me about the sea.' }] });
    const c = await openai.chat.completions.create({ ...base, max_tokens: 12, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Tell me about the sea.' }] });
    expect(m.type).toBe('message');
    expect(m.id).toMatch(/^msg_/);
    expect(m.role).toBe('assistant');
    expect(m.content).toEqual([{ type: 'text', text: c.choices[0].message.content, citations: null }]);
    expect(m.stop_reason).toBe(c.choices[0].finish_reason === 'length' ? 'max_tokens' : 'end_turn');
    expect(m.usage.input_tokens + (m.usage.cache_read_input_tokens ?? 0)).toBe(c.usage!.prompt_tokens);
    expect(m.usage.output_tokens).toBe(c.usage!.completion_tokens);
    const count = await anthropic.messages.countTokens({ model: 'qwen3', system: 'Be brief.', messages: [{ role: 'user', content: 'Tell me about the sea.' }] });
    expect(count.input_tokens).toBe(c.usage!.prompt_tokens);
  });

  it('streams the events MessageStream accumulates into the non-streamed message', async () => {
    const body = { ...base, max_tokens: 16, messages: [{ role: 'user' as const, content: 'Count to five.' }] };
    const plain = await anthropic.messages.create(body);
    const types: string[] = [];
    const stream = anthropic.messages.stream(body);
    stream.on('streamEvent', (e) => types.push(e.type));
    const final = await stream.finalMessage();
    expect(final.content).toEqual(plain.content);
    expect(final.stop_reason).toBe(plain.stop_reason);
    expect(final.usage.output_tokens).toBe(plain.usage.output_tokens);
    expect(types[0]).toBe('message_start');
    expect(types.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(types.filter((t) => t === 'content_block_delta').length).toBeGreaterThan(1);
  });

  it('stop_sequences end the text and are named in stop_sequence', async () => {
    const body = { ...base, max_tokens: 24, messages: [{ role: 'user' as const, content: 'Say something long.' }] };
    const full = (await anthropic.messages.create(body)).content[0] as Anthropic.TextBlock;
    const chars = [...full.text];
    expect(chars.length).toBeGreaterThan(8);
    const stop = chars.slice(5, 7).join('');
    const cut = await anthropic.messages.create({ ...body, stop_sequences: [stop] });
    expect(cut.stop_reason).toBe('stop_sequence');
    expect(cut.stop_sequence).toBe(stop);
    expect((cut.content[0] as Anthropic.TextBlock).text).toBe(full.text.slice(0, full.text.indexOf(stop)));
  });

  it('a last assistant message is continued (prefill): the prompt ends inside it', async () => {
    const m = await anthropic.messages.create({ ...base, max_tokens: 4, messages: [{ role: 'user', content: 'Name a color.' }, { role: 'assistant', content: 'The color is' }] });
    // Qwen3's template writes the (empty) think block of the last assistant turn before its text.
    expect(scripted.prompts.at(-1)!.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\nThe color is')).toBe(true);
    expect(m.content.length).toBeLessThanOrEqual(1);
  });

  it('an empty final assistant message is answered as a fresh turn; a user message without blocks is a 400 naming it', async () => {
    const ask = [{ role: 'user' as const, content: 'Name a color.' }];
    const plain = await anthropic.messages.create({ ...base, max_tokens: 4, messages: ask });
    const plainPrompt = scripted.prompts.at(-1);
    // Anthropic's "optional final assistant message" may be empty: there is nothing to continue.
    for (const content of ['', []]) {
      const m = await anthropic.messages.create({ ...base, max_tokens: 4, messages: [...ask, { role: 'assistant', content }] });
      expect(scripted.prompts.at(-1)).toBe(plainPrompt);
      expect(m.content).toEqual(plain.content);
    }
    const empty = { status: 400, error: { type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(/^messages\[0\]\.content is empty/) } } };
    await expect(anthropic.messages.create({ ...base, max_tokens: 4, messages: [{ role: 'user', content: [] }] })).rejects.toMatchObject(empty);
    await expect(anthropic.messages.countTokens({ model: 'qwen3', messages: [{ role: 'user', content: [] }] })).rejects.toMatchObject(empty);
  });

  it('recorded Qwen3 output: thinking, text and tool_use blocks in order, streamed alike; tool results go back as tool turns', async () => {
    const body = { model: 'qwen3', max_tokens: 400, thinking: { type: 'enabled' as const, budget_tokens: 1024 }, tools, messages: [{ role: 'user' as const, content: 'Weather in Paris and Oslo?' }] };
    const m = await anthropic.messages.create(body);
    expect(m.content.map((b) => b.type)).toEqual(['thinking', 'text', 'tool_use', 'tool_use']);
    expect((m.content[0] as Anthropic.ThinkingBlock).thinking).toBe('\nTwo cities, so two calls.\n');
    expect((m.content[1] as Anthropic.TextBlock).text).toBe('Checking both.');
    const uses = m.content.slice(2) as Anthropic.ToolUseBlock[];
    expect(uses.map((u) => u.input)).toEqual([{ city: 'Paris', 2: 'x' }, { city: 'Oslo' }]);
    expect(uses.every((u) => u.id.startsWith('toolu_'))).toBe(true);
    expect(m.stop_reason).toBe('tool_use');

    // Signed, as Anthropic signs thinking: clients keep a thinking block for the next turn only with one.
    expect((m.content[0] as Anthropic.ThinkingBlock).signature.length).toBeGreaterThan(0);

    const final = await anthropic.messages.stream(body).finalMessage();
    const strip = (blocks: unknown[]) => JSON.parse(JSON.stringify(blocks, (k, v) => (k === 'id' ? undefined : v)));
    expect(strip(final.content)).toEqual(strip(m.content));

    // The follow-up turn, as Anthropic's tool-use guide writes it.
    await anthropic.messages.create({
      model: 'qwen3',
      max_tokens: 4,
      tools,
      messages: [
        body.messages[0],
        { role: 'assistant', content: m.content as Anthropic.ContentBlockParam[] },
        { role: 'user', content: uses.map((u) => ({ type: 'tool_result' as const, tool_use_id: u.id, content: `sunny in ${(u.input as { city: string }).city}` })) },
      ],
    });
    const prompt = scripted.prompts.at(-1)!;
    // Rendered from the input object as transformers renders a dict (tojson); JSON.parse of the
    // request put the integer-like key first.
    expect(prompt).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"2": "x", "city": "Paris"}}\n</tool_call>');
    expect(prompt).toContain('<tool_response>\nsunny in Paris\n</tool_response>');
    expect(prompt).toContain('<tool_response>\nsunny in Oslo\n</tool_response>');
  });

  it('tool_choice any forces valid calls of the tools (constrained decoding)', async () => {
    const m = await anthropic.messages.create({ ...base, max_tokens: 120, tools, tool_choice: { type: 'any', disable_parallel_tool_use: true }, messages: [{ role: 'user', content: 'Weather?' }] });
    const uses = m.content.filter((b) => b.type === 'tool_use') as Anthropic.ToolUseBlock[];
    expect(uses).toHaveLength(1);
    expect(uses[0].name).toBe('get_weather');
    expect(typeof (uses[0].input as { city: unknown }).city).toBe('string');
    expect(m.stop_reason).toBe('tool_use');
  });

  it('tool_choice tool forces any tool that tools accepts, a dotted name included', async () => {
    const named = [{ ...tools[0], name: 'weather.get_v2' }];
    const m = await anthropic.messages.create({ ...base, max_tokens: 120, tools: named, tool_choice: { type: 'tool', name: 'weather.get_v2' }, messages: [{ role: 'user', content: 'Weather?' }] });
    expect(m.content.map((b) => (b.type === 'tool_use' ? b.name : b.type))).toEqual(['weather.get_v2']);
    expect(m.stop_reason).toBe('tool_use');
  });
});

/** The event names of a raw stream, in order (the SDK drops ping before a client sees it). */
async function rawEvents(body: Record<string, unknown>): Promise<{ event: string; data: any }[]> {
  const r = await post(`${server.url}/v1/messages`, { ...body, stream: true }, { 'x-api-key': key });
  expect(r.status).toBe(200);
  return [...r.text.matchAll(/^event: (.+)\ndata: (.+)$/gm)].map((m) => ({ event: m[1], data: JSON.parse(m[2]) }));
}

describe('the stream as Anthropic sends it', () => {
  it('message_start carries the usage message_delta and a non-streamed answer report, prefix-cache reads included; then a ping', async () => {
    // Long enough that a repeat is served in part from the prefix cache.
    const system = [{ type: 'text' as const, text: 'Be brief.', cache_control: { type: 'ephemeral' as const } }];
    const body = { ...base, max_tokens: 2, system, messages: [{ role: 'user' as const, content: 'word '.repeat(300) }] };
    await anthropic.messages.create(body);
    const events = await rawEvents(body);
    expect(events.slice(0, 2).map((e) => e.event)).toEqual(['message_start', 'ping']);
    const start = events[0].data.message.usage;
    const delta = events.find((e) => e.event === 'message_delta')!.data.usage;
    expect(start.cache_read_input_tokens).toBeGreaterThan(0);
    expect({ ...start, output_tokens: 0 }).toEqual({ ...delta, output_tokens: 0 });
  });

  it('a thinking block ends with its signature_delta, then content_block_stop', async () => {
    const events = await rawEvents({ model: 'qwen3', max_tokens: 400, thinking: { type: 'enabled', budget_tokens: 1024 }, tools, messages: [{ role: 'user', content: 'Weather in Paris and Oslo?' }] });
    const of0 = events.filter((e) => e.data.index === 0);
    expect(of0[0].data.content_block).toEqual({ type: 'thinking', thinking: '', signature: '' });
    expect(of0.at(-2)!.data.delta).toEqual({ type: 'signature_delta', signature: expect.stringMatching(/^\S{20,}$/) });
    expect(of0.at(-1)!.event).toBe('content_block_stop');
    // Text and tool_use blocks have none.
    expect(events.filter((e) => e.data.delta?.type === 'signature_delta')).toHaveLength(1);
  });
});

describe('request fields the SDK sends', () => {
  it('output_config.format (messages.parse with zodOutputFormat) is enforced: the text parses as the schema', async () => {
    const Answer = z.object({ ok: z.boolean() });
    const m = await anthropic.messages.parse({
      ...base,
      max_tokens: 100,
      thinking: { type: 'disabled' },
      output_config: { format: zodOutputFormat(Answer) },
      messages: [{ role: 'user', content: 'Is it ok?' }],
    });
    expect(m.stop_reason).toBe('end_turn');
    expect(typeof m.parsed_output?.ok).toBe('boolean');
    // The structured-outputs beta's spelling, as its SDK client sends it.
    const beta = await post(`${server.url}/v1/messages?beta=true`, { ...base, max_tokens: 100, output_format: { type: 'json_schema', schema: z.toJSONSchema(Answer) }, messages: [{ role: 'user', content: 'Is it ok?' }] }, { 'x-api-key': key, 'anthropic-beta': 'structured-outputs-2025-11-13' });
    expect(typeof JSON.parse(beta.json.content[0].text).ok).toBe('boolean');
    // A forced tool and a format: the turn is the tool call (the format shapes text, and there is none).
    const both = await post(`${server.url}/v1/messages`, { ...base, max_tokens: 120, tools, tool_choice: { type: 'any', disable_parallel_tool_use: true }, thinking: { type: 'disabled' }, output_config: { format: { type: 'json_schema', schema: { type: 'object' } } }, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    expect(both.status, both.text).toBe(200);
    expect(both.json.stop_reason).toBe('tool_use');
    expect(both.json.content.map((b: { type: string }) => b.type)).toEqual(['tool_use']);
    // A schema that cannot be enforced: Anthropic's API has no JSON mode to fall back on, so none is offered.
    const unenforceable = await post(`${server.url}/v1/messages`, { ...base, max_tokens: 10, output_config: { format: { type: 'json_schema', schema: { type: 'object', properties: { a: { $ref: '#/nope' } } } } }, messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    expect(unenforceable.status).toBe(400);
    expect(unenforceable.json.error.message).toMatch(/^output_config\.format cannot be enforced: .*Simplify the schema\.$/);
  });

  it('consecutive messages of one role are one turn, and a system message is a system turn, as the SDK types allow', async () => {
    const count = (messages: Anthropic.MessageParam[], system?: string) => anthropic.messages.countTokens({ model: 'qwen3', messages, ...(system ? { system } : {}) }).then((c) => c.input_tokens);
    expect(await count([{ role: 'user', content: 'Hello' }, { role: 'user', content: [{ type: 'text', text: 'there' }] }])).toBe(await count([{ role: 'user', content: 'Hello\nthere' }]));
    expect(await count([{ role: 'system', content: 'Be brief.' } as Anthropic.MessageParam, { role: 'user', content: 'Hi' }])).toBe(await count([{ role: 'user', content: 'Hi' }], 'Be brief.'));
    // Tool results sent in one user message and the text in the next read as one turn would.
    await anthropic.messages.create({
      ...base,
      max_tokens: 1,
      tools,
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'sunny' }], is_error: false, cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: 'And now?' },
      ],
    });
    expect(scripted.prompts.at(-1)).toContain('<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>user\nAnd now?<|im_end|>');
  });
});

/** Records the signal of every request the engine gets, to see it aborted. */
class SignalSpy implements GenerationEngine {
  readonly signals: AbortSignal[] = [];
  constructor(private readonly inner: GenerationEngine) {}
  get info() {
    return this.inner.info;
  }
  stats() {
    return this.inner.stats();
  }
  submit(req: SubmitRequest) {
    if (req.signal) this.signals.push(req.signal);
    return this.inner.submit(req);
  }
  close() {
    return Promise.resolve();
  }
}

describe('a client that leaves mid-stream', () => {
  it('cancels its request in the engine at once', async () => {
    const slow = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'at length', reply: 'word '.repeat(400) }], { tokensPerEvent: 1, delayMs: 5 });
    const spy = new SignalSpy(slow);
    const own = await startServer({ engine: spy, tokenizer: model.tokenizer, template: model.template }, { ...defaultServerOptions, host: '127.0.0.1', port: 0 });
    try {
      const client = new Anthropic({ baseURL: own.url, apiKey: 'unused', maxRetries: 0 });
      const stream = client.messages.stream({ model: 'qwen3', max_tokens: 500, messages: [{ role: 'user', content: 'Write at length.' }] });
      const ended = stream.done().catch((err: unknown) => err);
      await new Promise<void>((resolve) => stream.once('text', () => resolve()));
      expect(spy.signals[0].aborted).toBe(false);
      stream.abort();
      await waitFor(async () => spy.signals[0].aborted, 2_000);
      await waitFor(async () => /grpst_request_finished_total\{reason="cancelled"\} [1-9]/.test((await get(`${own.url}/metrics`)).text), 2_000);
      expect(await ended).toBeInstanceOf(Anthropic.APIUserAbortError);
    } finally {
      await own.close();
    }
  });
});

describe('an engine failure after the stream opened', () => {
  it("travels as Anthropic's error event, with the request id of the request-id header", async () => {
    // The engine fails after its first tokens: the status line is sent, so the failure can only be an event.
    const failing = new Proxy(model.engine, {
      get(target, prop) {
        if (prop !== 'submit') return Reflect.get(target, prop, target);
        return (req: SubmitRequest) =>
          (async function* () {
            for await (const ev of target.submit(req)) {
              yield { ...ev, finishReason: undefined };
              break;
            }
            throw new Error('the engine stopped: out of memory');
          })();
      },
    }) as GenerationEngine;
    const own = await startServer({ engine: failing, tokenizer: model.tokenizer, template: model.template }, { ...defaultServerOptions, host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${own.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'qwen3', max_tokens: 16, stream: true, messages: [{ role: 'user', content: 'Hello' }] }),
      });
      expect(res.status).toBe(200);
      const id = res.headers.get('request-id');
      expect(id).toMatch(/\S/);
      const text = await res.text();
      const event = /event: error\ndata: (.*)\n/.exec(text);
      expect(event, text).not.toBeNull();
      expect(JSON.parse(event![1])).toMatchObject({ type: 'error', error: { type: 'api_error' }, request_id: id });
    } finally {
      await own.close();
    }
  });
});

describe('a context overflow, in Anthropic\'s words', () => {
  // Clients tell an overflow from other 400s by Anthropic's own message alone: LangChain's
  // ChatAnthropic raises ContextOverflowError on "prompt is too long", agents compact the
  // conversation on it or parse the numbers to retry with a max_tokens that fits.
  const envelope = (message: string) => ({ status: 400, error: { type: 'error', error: { type: 'invalid_request_error', message } } });

  it('a prompt past the context: "prompt is too long" with its count and the longest prompt taken, created or streamed; count_tokens still counts it', async () => {
    const maxSeqLen = model.engine.info.maxSeqLen;
    const messages = [{ role: 'user' as const, content: 'word '.repeat(maxSeqLen) }];
    // As Anthropic's count_tokens does: a prompt too long to answer is still counted, so a client can see by how much.
    const { input_tokens: counted } = await anthropic.messages.countTokens({ model: 'qwen3', messages });
    expect(counted).toBeGreaterThan(maxSeqLen);
    // The longest prompt leaves room for one answer token.
    const refusal = envelope(`prompt is too long: ${counted} tokens > ${maxSeqLen - 1} maximum`);
    await expect(anthropic.messages.create({ ...base, max_tokens: 4, messages })).rejects.toMatchObject(refusal);
    await expect(anthropic.messages.stream({ ...base, max_tokens: 4, messages }).finalMessage()).rejects.toMatchObject(refusal);
    const raw = await post(`${server.url}/v1/messages`, { ...base, max_tokens: 4, stream: true, messages }, { 'x-api-key': key });
    expect(raw.status).toBe(400);
    expect(raw.json).toEqual({ ...refusal.error, request_id: raw.headers['request-id'] });
  });

  it('a max_tokens the rest of the context cannot hold: the sum Anthropic words, with the three numbers', async () => {
    const maxSeqLen = model.engine.info.maxSeqLen;
    const messages = [{ role: 'user' as const, content: 'Tell me about the sea.' }];
    const { input_tokens: counted } = await anthropic.messages.countTokens({ model: 'qwen3', messages });
    const maxTokens = maxSeqLen - counted + 1;
    await expect(anthropic.messages.create({ ...base, max_tokens: maxTokens, messages })).rejects.toMatchObject(
      envelope(`input length and \`max_tokens\` exceed context limit: ${counted} + ${maxTokens} > ${maxSeqLen}, decrease input length or \`max_tokens\` and try again`),
    );
  });
});

describe('the Models API, as the SDK reads it', () => {
  it('models.list and models.retrieve give ModelInfo with the limits /v1/messages enforces', async () => {
    const { maxSeqLen, maxInputLen } = model.engine.info;
    const expected = {
      id: 'qwen3',
      type: 'model',
      display_name: 'qwen3',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      max_input_tokens: Math.min(maxInputLen, maxSeqLen - 1),
      max_tokens: maxSeqLen - 1,
    };
    const page = await anthropic.models.list();
    expect(page.data).toEqual([expect.objectContaining(expected)]);
    expect(await anthropic.models.retrieve('qwen3')).toMatchObject(expected);
    // The OpenAI SDK reads the same list, its own fields beside Anthropic's.
    expect((await openai.models.list()).data[0]).toMatchObject({ id: 'qwen3', object: 'model', max_model_len: maxSeqLen, max_tokens: maxSeqLen - 1 });
  });
});

describe('errors in Anthropic\'s envelope', () => {
  it('the SDK raises its own classes, with the message naming the field', async () => {
    await expect(anthropic.messages.create({ model: 'qwen3', max_tokens: 4, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'http://x/y.png' } }] }] })).rejects.toMatchObject({
      status: 400,
      error: { type: 'error', error: { type: 'invalid_request_error' } },
    });
    await expect(anthropic.messages.create({ model: 'claude-opus', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(Anthropic.NotFoundError);
    const unauth = new Anthropic({ baseURL: server.url, apiKey: 'wrong', maxRetries: 0 });
    await expect(unauth.messages.create({ model: 'qwen3', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
    const raw = await post(`${server.url}/v1/messages`, { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    expect(raw.status).toBe(400);
    expect(raw.json.type).toBe('error');
    expect(raw.json.error.type).toBe('invalid_request_error');
    expect(raw.json.error.message).toContain('max_tokens');
    // Each error body names its request's id beside the error, the one the request-id header gives.
    const failed = await anthropic.messages.create({ model: 'qwen3', max_tokens: 0, messages: [{ role: 'user', content: 'hi' }] }).then(
      () => undefined,
      (e: unknown) => e as InstanceType<typeof Anthropic.APIError>,
    );
    expect(failed?.requestID).toMatch(/^req_/);
    expect(failed?.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' }, request_id: failed?.requestID });
    expect(raw.json.request_id).toBe(raw.headers['request-id']);
    const wrongMethod = await get(`${server.url}/v1/messages`, { 'x-api-key': key });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.json).toMatchObject({ type: 'error', request_id: wrongMethod.headers['request-id'] });
    const server_tool = await post(`${server.url}/v1/messages`, { model: 'qwen3', max_tokens: 4, tools: [{ type: 'web_search_20250305', name: 'web_search' }], messages: [{ role: 'user', content: 'hi' }] }, { 'x-api-key': key });
    expect(server_tool.status).toBe(400);
    expect(server_tool.json.error.message).toMatch(/^tools\[0\]\.type: Tools of type 'web_search_20250305' are server tools/);
  });
});
