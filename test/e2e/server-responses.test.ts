// The Responses API end to end: the official openai client against the real server on a tiny
// checkpoint. A response must be the same turn /v1/chat/completions gives for the same
// conversation (same prompt tokens, same greedy answer), streamed as the typed events the SDK's
// own accumulator checks, and chained through previous_response_id as OpenAI chains it.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { get, loadTiny, metric, post, waitFor, type TinyModel } from './server-harness.js';
import { request } from 'undici';

let model: TinyModel;
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  // The reasoning parser on, so chat's reasoning_content is there to compare with reasoning items.
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0, reasoningParser: true };
  server = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, constraints }, options);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
});

afterAll(async () => {
  await server?.close();
  await model?.engine.close();
});

const greedy = { model: 'qwen3', temperature: 0 } as const;

async function chat(messages: any[], extra: Record<string, unknown> = {}) {
  return client.chat.completions.create({ ...greedy, messages, max_tokens: 12, ...extra } as any);
}

describe('POST /v1/responses', () => {
  it('a string input is the chat turn of one user message: same prompt, same greedy answer, usage and status', async () => {
    const r = await client.responses.create({ ...greedy, input: 'Tell me about the sea.', max_output_tokens: 12 });
    const c = await chat([{ role: 'user', content: 'Tell me about the sea.' }]);
    expect(r.object).toBe('response');
    expect(r.id).toMatch(/^resp_[0-9a-f]{32}$/);
    expect(r.output_text).toBe(c.choices[0].message.content ?? '');
    expect(r.usage!.input_tokens).toBe(c.usage!.prompt_tokens);
    expect(r.usage!.output_tokens).toBe(c.usage!.completion_tokens);
    expect(r.usage!.total_tokens).toBe(r.usage!.input_tokens + r.usage!.output_tokens);
    const cut = c.choices[0].finish_reason === 'length';
    expect(r.status).toBe(cut ? 'incomplete' : 'completed');
    expect(r.incomplete_details).toEqual(cut ? { reason: 'max_output_tokens' } : null);
    const message = r.output.find((o) => o.type === 'message')!;
    expect(message).toMatchObject({ role: 'assistant', status: cut ? 'incomplete' : 'completed' });
    expect(r.max_output_tokens).toBe(12);
    expect(r.temperature).toBe(0);
  });

  it('instructions, developer and input_text items render as chat system and user turns', async () => {
    const r = await client.responses.create({
      ...greedy,
      instructions: 'Answer in French.',
      input: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'input_text', text: 'Hello' }, { type: 'input_text', text: 'there' }] },
      ],
      max_output_tokens: 12,
    });
    const c = await chat([
      { role: 'system', content: 'Answer in French.' },
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello\nthere' },
    ]);
    expect(r.usage!.input_tokens).toBe(c.usage!.prompt_tokens);
    expect(r.output_text).toBe(c.choices[0].message.content ?? '');
  });

  it('previous_response_id continues the stored conversation; its instructions are not carried over', async () => {
    const first = await client.responses.create({ ...greedy, instructions: 'Only this turn.', input: 'Name a color.', max_output_tokens: 8 });
    const second = await client.responses.create({ ...greedy, previous_response_id: first.id, input: 'And another?', max_output_tokens: 8 });
    const c = await chat(
      [
        { role: 'user', content: 'Name a color.' },
        { role: 'assistant', content: first.output_text },
        { role: 'user', content: 'And another?' },
      ],
      { max_tokens: 8 },
    );
    expect(second.previous_response_id).toBe(first.id);
    expect(second.usage!.input_tokens).toBe(c.usage!.prompt_tokens);
    expect(second.output_text).toBe(c.choices[0].message.content ?? '');
    const stored = await client.responses.retrieve(second.id);
    expect(stored.output_text).toBe(second.output_text);
  });

  it('streams the typed events the SDK accumulates into the same response as the non-streamed one', async () => {
    const body = { ...greedy, input: 'Count to five.', max_output_tokens: 16 };
    const plain = await client.responses.create(body);
    const events: any[] = [];
    for await (const ev of await client.responses.create({ ...body, stream: true })) events.push(ev);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    expect(events[0].type).toBe('response.created');
    expect(events[0].response.status).toBe('in_progress');
    expect(events[1].type).toBe('response.in_progress');
    const last = events[events.length - 1];
    expect(last.type).toBe(plain.status === 'incomplete' ? 'response.incomplete' : 'response.completed');
    const deltas = events.filter((e) => e.type === 'response.output_text.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => e.delta).join('')).toBe(plain.output_text);
    const textDone = events.find((e) => e.type === 'response.output_text.done');
    expect(textDone.text).toBe(plain.output_text);
    const at = plain.output.findIndex((o) => o.type === 'message');
    expect(textDone).toMatchObject({ item_id: expect.stringMatching(/^msg_/), output_index: at, content_index: 0, logprobs: [] });
    // Each item closes with the status the non-streamed response gives it.
    expect(events.filter((e) => e.type === 'response.output_item.done').map((e) => e.item.status)).toEqual(plain.output.map((o) => (o as { status?: string }).status));
    expect(last.response.output.map((o: any) => o.type)).toEqual(plain.output.map((o) => o.type));
    expect(last.response.usage).toEqual(plain.usage);
    // The SDK's stream helper replays every event into its own snapshot, refusing any out of order.
    const stream = client.responses.stream(body);
    const final = await stream.finalResponse();
    expect(final.output_text).toBe(plain.output_text);
  });

  it('a JSON schema with thinking on: a reasoning item, then a message that parses, as chat splits them', async () => {
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false };
    const r = await client.responses.create({
      ...greedy,
      input: 'Is it ok?',
      reasoning: { effort: 'low' },
      text: { format: { type: 'json_schema', name: 'answer', schema, strict: true } },
      max_output_tokens: 200,
    });
    const c = await chat([{ role: 'user', content: 'Is it ok?' }], {
      enable_thinking: true,
      max_tokens: 200,
      response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } },
    });
    expect(r.status).toBe('completed');
    expect(r.output.map((o) => o.type)).toEqual(['reasoning', 'message']);
    const reasoning = r.output[0] as any;
    expect(reasoning.content[0].text).toBe((c.choices[0].message as any).reasoning_content);
    expect(JSON.parse(r.output_text)).toEqual(JSON.parse(c.choices[0].message.content!));
    expect(r.usage!.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
    expect(r.usage!.output_tokens_details.reasoning_tokens).toBeLessThan(r.usage!.output_tokens);
  });

  it('streamed reasoning and function calls: events in item order, replayed by the SDK into the non-streamed output', async () => {
    const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['n'] };
    const tools = [{ type: 'function' as const, name: 'pick', parameters: schema, strict: true }];
    const bodies = [
      { ...greedy, input: 'A number?', reasoning: { effort: 'high' as const }, text: { format: { type: 'json_schema' as const, name: 'n', schema, strict: true } }, max_output_tokens: 200 },
      { ...greedy, input: 'Pick one.', tools, tool_choice: 'required' as const, max_output_tokens: 120 },
    ];
    for (const body of bodies) {
      const plain = await client.responses.create(body);
      const events: any[] = [];
      const stream = client.responses.stream(body);
      stream.on('event', (e) => events.push(e));
      const final = await stream.finalResponse();
      // Ids are new per response; `parsed` and `parsed_arguments` are the stream helper's own additions.
      const strip = (items: unknown[]) => JSON.parse(JSON.stringify(items, (k, v) => (['id', 'call_id', 'parsed', 'parsed_arguments'].includes(k) ? undefined : v)));
      expect(strip(final.output)).toEqual(strip(plain.output));
      // Every item opens, fills and closes before the next one opens.
      const lifecycle = events.filter((e) => e.type === 'response.output_item.added' || e.type === 'response.output_item.done').map((e) => `${e.type.split('.').pop()}:${e.output_index}`);
      expect(lifecycle).toEqual(plain.output.flatMap((_, i) => [`added:${i}`, `done:${i}`]));
      for (const e of events.filter((x) => 'item_id' in x)) expect(e.item_id).toBe(final.output[e.output_index].id);
    }
  });

  it('function tools: a required call comes back as function_call items, and its output continues the turn', async () => {
    const tools = [
      { type: 'function' as const, name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] }, strict: true },
    ];
    const r = await client.responses.create({ ...greedy, input: 'Weather in Paris?', tools, tool_choice: 'required', max_output_tokens: 120 });
    const calls = r.output.filter((o) => o.type === 'function_call') as any[];
    expect(calls.length).toBeGreaterThan(0);
    for (const call of calls) {
      expect(call.name).toBe('get_weather');
      expect(call.call_id).toMatch(/^call_/);
      expect(typeof JSON.parse(call.arguments).city).toBe('string');
    }
    const next = await client.responses.create({
      ...greedy,
      previous_response_id: r.id,
      tools,
      input: calls.map((call) => ({ type: 'function_call_output' as const, call_id: call.call_id, output: 'sunny' })),
      max_output_tokens: 8,
    });
    // The same conversation in chat's shape renders the same prompt.
    const chatTools = tools.map(({ type, ...fn }) => ({ type, function: fn }));
    const c = await chat(
      [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: r.output_text || null, tool_calls: calls.map((call) => ({ id: call.call_id, type: 'function', function: { name: call.name, arguments: call.arguments } })) },
        ...calls.map((call) => ({ role: 'tool', tool_call_id: call.call_id, content: 'sunny' })),
      ],
      { tools: chatTools, max_tokens: 8 },
    );
    expect(next.usage!.input_tokens).toBe(c.usage!.prompt_tokens);
    expect(next.output_text).toBe(c.choices[0].message.content ?? '');
  });

  it('logprobs through include, with top_logprobs alternatives, equal to chat logprobs', async () => {
    const r = await client.responses.create({ ...greedy, input: 'Hi', max_output_tokens: 6, include: ['message.output_text.logprobs'], top_logprobs: 2 });
    const c = await chat([{ role: 'user', content: 'Hi' }], { max_tokens: 6, logprobs: true, top_logprobs: 2 });
    const part = (r.output.find((o) => o.type === 'message') as any).content[0];
    const want = c.choices[0].logprobs!.content!;
    expect(part.logprobs.map((l: any) => l.token)).toEqual(want.map((l) => l.token));
    for (const [i, l] of part.logprobs.entries()) {
      expect(l.logprob).toBeCloseTo(want[i].logprob, 5);
      expect(l.top_logprobs).toHaveLength(2);
    }
  });
});

describe('stored responses and refusals', () => {
  it('an answer budget past the context is refused naming max_output_tokens, the field this API sets it with', async () => {
    const r = await post(`${server.url}/v1/responses`, { model: 'qwen3', input: 'hi', max_output_tokens: 5000 });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: 'context_length_exceeded', param: 'input' });
    expect(r.json.error.message).toMatch(/Reduce the prompt or max_output_tokens\.$/);
  });


  it('truncation auto drops the oldest turns until the conversation fits; the newest turn alone too long is still refused', async () => {
    const limit = model.engine.info.maxSeqLen;
    const long = (i: number) => `Turn ${i}: ${'the sea is wide and deep '.repeat(30)}`;
    const input = Array.from({ length: 8 }, (_, i) => [
      { role: 'user' as const, content: long(i) },
      { role: 'assistant' as const, content: `Answer ${i}.` },
    ]).flat();
    input.push({ role: 'user', content: 'And the last question?' } as any);
    const body = { ...greedy, instructions: 'Be brief.', input, max_output_tokens: 16 };
    const disabled = await post(`${server.url}/v1/responses`, body);
    expect(disabled.status).toBe(400);
    const r = await client.responses.create({ ...body, truncation: 'auto' } as any);
    expect(r.truncation).toBe('auto');
    expect(r.usage!.input_tokens + 16).toBeLessThanOrEqual(limit);
    // The most turns that fit, cut at a user turn, with the instructions kept: the same prompt as
    // chat gives for that suffix, and one user turn more would not fit.
    const prompt = async (from: number) => (await post(`${server.url}/tokenize`, { messages: [{ role: 'system', content: 'Be brief.' }, ...input.slice(from)] })).json.count;
    let cut = -1;
    for (let i = 0; i < input.length; i += 2) if ((await prompt(i)) === r.usage!.input_tokens) cut = i;
    expect(cut).toBeGreaterThan(0);
    expect((await prompt(cut - 2)) + 16).toBeGreaterThan(limit);
    // The newest turn alone past the context: nothing can be dropped to fit it.
    const huge = await post(`${server.url}/v1/responses`, { ...body, truncation: 'auto', input: [{ role: 'user', content: long(0).repeat(8) }] });
    expect(huge.status).toBe(400);
    expect(huge.json.error.code).toBe('context_length_exceeded');
  });

  it('GET returns a stored response, DELETE removes it, store false keeps nothing', async () => {
    const r = await client.responses.create({ ...greedy, input: 'Keep me', max_output_tokens: 4 });
    expect((await client.responses.retrieve(r.id)).id).toBe(r.id);
    const del = await request(`${server.url}/v1/responses/${r.id}`, { method: 'DELETE' });
    expect(del.statusCode).toBe(200);
    expect(await del.body.json()).toEqual({ id: r.id, object: 'response.deleted', deleted: true });
    const gone = await get(`${server.url}/v1/responses/${r.id}`);
    expect(gone.status).toBe(404);
    expect(gone.json.error.code).toBe('response_not_found');
    const unstored = await client.responses.create({ ...greedy, input: 'Forget me', max_output_tokens: 4, store: false });
    expect((unstored as unknown as { store: boolean }).store).toBe(false);
    expect((await get(`${server.url}/v1/responses/${unstored.id}`)).status).toBe(404);
  });

  it('refuses what it cannot honour by name, in the OpenAI envelope', async () => {
    const url = `${server.url}/v1/responses`;
    const cases: [Record<string, unknown>, number, string, string][] = [
      // OpenAI's status and code for a chain it cannot continue, which clients read to resend the whole input.
      [{ input: 'x', previous_response_id: 'resp_missing' }, 400, 'previous_response_id', 'previous_response_not_found'],
      [{ input: 'x', tools: [{ type: 'web_search' }] }, 400, 'tools[0].type', 'unsupported_parameter'],
      [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'http://x' }] }] }, 400, 'input[0].content[0].type', 'unsupported_content'],
      [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 400, 'input[0].type', 'unsupported_parameter'],
      [{ input: [{ type: 'function_call', name: 'f' }] }, 400, 'input[0]', 'invalid_value'],
      // A text part without its text is malformed, not an unsupported kind of content.
      [{ input: [{ type: 'message', role: 'user', content: [{ type: 'input_text' }] }] }, 400, 'input[0].content[0].text', 'missing_required_parameter'],
      [{ input: 'x', tools: [fn('f')], tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'function', name: 'g' }] } }, 400, 'tool_choice.tools[0].name', 'invalid_value'],
      [{ input: 'x', tools: [fn('f')], tool_choice: { type: 'allowed_tools', mode: 'auto', tools: [{ type: 'web_search' }] } }, 400, 'tool_choice.tools[0].type', 'unsupported_parameter'],
      [{ input: 'x', tools: [fn('f')], tool_choice: { type: 'mcp', server_label: 'deepwiki' } }, 400, 'tool_choice', 'unsupported_parameter'],
      [{ input: 'x', tools: [fn('f')], tool_choice: { type: 'function' } }, 400, 'tool_choice.name', 'invalid_value'],
      [{ input: 'x', tools: [fn('f')], tool_choice: { type: 'allowed_tools', mode: 'sometimes', tools: [] } }, 400, 'tool_choice.mode', 'invalid_value'],
      // The planner's refusal names this endpoint's field, not chat's response_format.
      [{ input: 'x', text: { format: { type: 'json_schema', name: 'x', schema: { type: 'string', pattern: '^(a)\\1$' } } } }, 400, 'text.format', 'unsupported_schema'],
      [{ input: 'x', background: true }, 400, 'background', 'unsupported_parameter'],
      [{ input: 'x', conversation: 'conv_1' }, 400, 'conversation', 'unsupported_parameter'],
      // Compaction and moderation would change what the model reads or what comes back.
      [{ input: 'x', context_management: [{ type: 'compaction', compact_threshold: 1000 }] }, 400, 'context_management', 'unsupported_parameter'],
      [{ input: 'x', moderation: { model: 'omni-moderation-latest' } }, 400, 'moderation', 'unsupported_parameter'],
      [{ input: 'x', include: ['file_search_call.results'] }, 400, 'include[0]', 'unsupported_parameter'],
      [{ input: [] }, 400, 'input', 'invalid_value'],
      [{ input: 'x', model: 'gpt-4o' }, 404, 'model', 'model_not_found'],
    ];
    for (const [body, status, param, code] of cases) {
      const r = await post(url, body);
      expect({ body, status: r.status, param: r.json?.error?.param, code: r.json?.error?.code }).toEqual({ body, status, param, code });
      expect(r.json.error.message.length).toBeGreaterThan(20);
      if (param === 'text.format') expect(r.json.error.message).not.toContain('response_format');
    }
  });
});

const fn = (name: string) => ({ type: 'function' as const, name, parameters: { type: 'object', properties: { n: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['n'] }, strict: true });

describe('what the SDKs send', () => {
  it('accepts the request fields OpenAI clients commonly send, and echoes the ones a response carries', async () => {
    const r = await client.responses.create({
      ...greedy,
      input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] }],
      max_output_tokens: 4,
      // The SDK's ReasoningEffort includes "max": thinking on, as any effort above minimal.
      reasoning: { effort: 'max', summary: 'auto' },
      text: { format: { type: 'text' }, verbosity: 'low' },
      store: false,
      service_tier: 'auto',
      prompt_cache_key: 'conv-1',
      safety_identifier: 'user-1',
      parallel_tool_calls: false,
      metadata: { app: 'test' },
      ...({ max_tool_calls: 3 } as object),
      prompt_cache_retention: '24h',
      prompt_cache_options: { mode: 'implicit', ttl: '30m' },
      // Asked for none: the same as leaving them out.
      context_management: [],
      moderation: null,
      background: false,
      conversation: null,
    });
    expect(r.reasoning?.effort).toBe('max');
    // Thinking on: the prompt "high" renders, not the one with the empty think block "none" adds.
    const high = await client.responses.create({ ...greedy, input: 'Hello', max_output_tokens: 1, reasoning: { effort: 'high' } });
    expect(r.usage!.input_tokens).toBe(high.usage!.input_tokens);
    expect([r.prompt_cache_key, r.safety_identifier, r.service_tier]).toEqual(['conv-1', 'user-1', 'default']);
    expect([r.prompt_cache_retention, (r as { max_tool_calls?: number }).max_tool_calls]).toEqual(['24h', 3]);
    // stream_options only shapes the stream's events (this server adds no obfuscation to leave out).
    const events = await client.responses.create({ ...greedy, input: 'Hello', max_output_tokens: 2, stream: true, stream_options: { include_obfuscation: false } });
    let done: string | undefined;
    for await (const e of events) if (e.type === 'response.completed' || e.type === 'response.incomplete') done = e.response.status;
    expect(done).toBe('incomplete');
    expect(r.metadata).toEqual({ app: 'test' });
    // completed_at is set on completed responses only.
    expect(r.status).toBe('incomplete');
    expect(r.completed_at).toBeNull();
  });

  it('tool_choice allowed_tools: the model sees and may call only the listed functions', async () => {
    const tools = [fn('pick'), fn('drop')];
    const r = await client.responses.create({
      ...greedy,
      input: 'Choose.',
      tools,
      tool_choice: { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'drop' }] },
      max_output_tokens: 120,
    });
    const calls = r.output.filter((o) => o.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall[];
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.every((c) => c.name === 'drop')).toBe(true);
    // The same prompt chat renders with only that tool, required.
    const c = await chat([{ role: 'user', content: 'Choose.' }], { tools: [{ type: 'function', function: { name: 'drop', parameters: tools[1].parameters, strict: true } }], tool_choice: 'required', max_tokens: 120 });
    expect(r.usage!.input_tokens).toBe(c.usage!.prompt_tokens);
  });

  it('a client that leaves mid-stream cancels its sequence in the engine, and nothing is stored', async () => {
    const metrics = async () => (await get(`${server.url}/metrics`)).text;
    const cancelled = (text: string) => Number(/grpst_request_finished_total\{reason="cancelled"\} (\S+)/.exec(text)?.[1] ?? 0);
    const before = cancelled(await metrics());
    const stream = await client.responses.create({ ...greedy, input: 'Write at length.', max_output_tokens: 900, ignore_eos: true, stream: true } as OpenAI.Responses.ResponseCreateParamsStreaming);
    let id = '';
    for await (const e of stream) {
      if (e.type === 'response.created') id = e.response.id;
      if (e.type === 'response.output_text.delta') break;
    }
    stream.controller.abort();
    expect(metric(await metrics(), 'grpst_engine_sequences_running')).toBeLessThanOrEqual(1);
    await waitFor(async () => {
      const m = await metrics();
      return metric(m, 'grpst_engine_sequences_running') === 0 && cancelled(m) > before;
    }, 5_000);
    expect(metric(await metrics(), 'grpst_requests_running')).toBe(0);
    expect((await get(`${server.url}/v1/responses/${id}`)).status).toBe(404);
  });
});
