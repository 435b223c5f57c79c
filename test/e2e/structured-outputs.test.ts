// Structured outputs end to end: the real server with its structured-output compiler, the real
// native runtime on a tiny random-weight checkpoint (which never writes JSON on its own), and the
// official openai client. Every answer must parse and validate (ajv), whatever the model wanted.
import ajvModule from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions, type ServerOptions } from '../../src/server/options.js';
import { answerSpec, ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { loadTiny, post, sseFrames, type TinyModel } from './server-harness.js';

// Both packages are CommonJS: under NodeNext their default import is module.exports.
const ajv = new ajvModule.default({ strict: false, allErrors: true });
addFormatsModule.default(ajv);

const weatherTool = {
  type: 'function' as const,
  function: {
    name: 'get_current_weather',
    description: 'Get the current weather in a given location',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
      },
      required: ['location'],
    },
  },
};
const postcodeTool = {
  type: 'function' as const,
  function: {
    name: 'get_postcode',
    description: 'Get the postcode of a city',
    parameters: { type: 'object', properties: { city: { type: 'string', description: 'The city name' } }, required: ['city'] },
  },
};

/** A dozen schemas covering what the compiler enforces. */
type JsonSchema = Record<string, unknown>;
const schemas: Record<string, JsonSchema> = {
  person: {
    type: 'object',
    properties: { name: { type: 'string', minLength: 1, maxLength: 20 }, age: { type: 'integer', minimum: 0, maximum: 120 }, email: { type: 'string', format: 'email' } },
    required: ['name', 'age'],
    additionalProperties: false,
  },
  todoList: {
    type: 'array',
    items: { type: 'object', properties: { id: { type: 'integer' }, done: { type: 'boolean' }, note: { type: 'string', maxLength: 30 } }, required: ['id', 'done'] },
    minItems: 1,
    maxItems: 3,
  },
  tree: { $defs: { node: { type: 'object', properties: { label: { type: 'string', maxLength: 8 }, children: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }, required: ['label', 'children'] } }, $ref: '#/$defs/node' },
  union: { anyOf: [{ type: 'string', enum: ['yes', 'no'] }, { type: 'null' }, { type: 'object', properties: { code: { const: 42 } }, required: ['code'] }] },
  formats: { type: 'object', properties: { at: { type: 'string', format: 'date-time' }, day: { type: 'string', format: 'date' }, id: { type: 'string', format: 'uuid' } }, required: ['at', 'day', 'id'] },
  numbers: { type: 'object', properties: { p: { type: 'number', minimum: 0, maximum: 1 }, t: { type: 'number' }, n: { type: 'integer', exclusiveMinimum: -5, exclusiveMaximum: 5 } }, required: ['p', 't', 'n'] },
  scores: { type: 'object', additionalProperties: { type: 'integer', minimum: 0 }, minProperties: 1, maxProperties: 3 },
  color: { enum: ['red', 'green', 'blue'] },
  nested: { type: 'object', properties: { a: { type: 'object', properties: { b: { type: 'object', properties: { c: { type: 'object', properties: { d: { type: 'boolean' } }, required: ['d'] } }, required: ['c'] } } } }, required: ['a'] },
  tuple: { type: 'array', prefixItems: [{ type: 'string', maxLength: 10 }, { type: 'integer' }, { type: 'boolean' }], items: false, minItems: 3 },
  text: { type: 'object', properties: { summary: { type: 'string', minLength: 3, maxLength: 60 }, words: { type: 'array', items: { type: 'string', maxLength: 12 }, maxItems: 4 } }, required: ['summary', 'words'] },
  nullable: { type: 'object', properties: { a: { type: ['string', 'null'], maxLength: 10 }, b: { type: 'number', nullable: true } }, required: ['a', 'b'] },
};

let model: TinyModel;
let server: RunningServer;
let client: OpenAI;
let compiler: ServerConstraintCompiler;

async function start(overrides: Partial<ServerOptions> = {}): Promise<{ server: RunningServer; client: OpenAI; compiler: ServerConstraintCompiler }> {
  const options: ServerOptions = { ...defaultServerOptions, host: '127.0.0.1', port: 0, ...overrides };
  // The wall-clock bound on building a grammar (500 ms by default) far away: these tests ask for
  // the size bounds by name, and on a busy machine the deadline would otherwise come first (its
  // own refusal is covered in test/unit/structured-schema.test.ts).
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  const s = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, constraints }, options);
  return { server: s, client: new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 300_000 }), compiler: constraints };
}

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  ({ server, client, compiler } = await start());
});

afterAll(async () => {
  await server?.close();
  await model?.engine.close();
});

const ask = (content: string) => [{ role: 'user' as const, content }];

describe('response_format', () => {
  it('100 requests across a dozen schemas: every answer parses and validates', async () => {
    const jobs: { name: string; schema: JsonSchema; run: () => Promise<{ text: string; finish: string | null }> }[] = [];
    const names = Object.keys(schemas);
    for (let i = 0; i < 100; i++) {
      const name = names[i % names.length];
      const schema = schemas[name];
      const response_format = { type: 'json_schema' as const, json_schema: { name, schema, strict: true } };
      const seed = 1000 + i;
      if (i % 4 === 3) {
        // /v1/completions takes response_format too.
        jobs.push({ name, schema, run: async () => {
          const r = await client.completions.create({ model: 'qwen3', prompt: `Give me ${name} as JSON:`, max_tokens: 300, seed, response_format } as any);
          return { text: r.choices[0].text, finish: r.choices[0].finish_reason };
        } });
      } else {
        jobs.push({ name, schema, run: async () => {
          const r = await client.chat.completions.create({ model: 'qwen3', messages: ask(`Describe a ${name} as JSON.`), max_tokens: 300, seed, temperature: i % 3 === 0 ? 0 : 1, response_format });
          return { text: r.choices[0].message.content ?? '', finish: r.choices[0].finish_reason };
        } });
      }
    }
    // Sixteen at a time: constrained requests decode together in the engine's batch.
    const results: { name: string; schema: JsonSchema; text: string; finish: string | null }[] = [];
    for (let i = 0; i < jobs.length; i += 16) {
      const batch = jobs.slice(i, i + 16);
      const out = await Promise.all(batch.map((j) => j.run()));
      out.forEach((o, k) => results.push({ name: batch[k].name, schema: batch[k].schema, ...o }));
    }
    expect(results).toHaveLength(100);
    for (const r of results) {
      let value: unknown;
      expect(() => (value = JSON.parse(r.text)), `${r.name}: ${r.text}`).not.toThrow();
      const ok = ajv.validate(r.schema, value);
      expect(ok, `${r.name}: ${r.text}\n${ajv.errorsText()}`).toBe(true);
      expect(r.finish).toBe('stop');
    }
  });

  it('json_object: an object, also when streamed', async () => {
    const r = await client.chat.completions.create({ model: 'qwen3', messages: ask('JSON please'), max_tokens: 200, seed: 7, response_format: { type: 'json_object' } });
    const value = JSON.parse(r.choices[0].message.content!);
    expect(typeof value === 'object' && value !== null && !Array.isArray(value)).toBe(true);
    const stream = await client.chat.completions.create({ model: 'qwen3', messages: ask('JSON please'), max_tokens: 200, seed: 7, stream: true, response_format: { type: 'json_object' } });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    expect(text).toBe(r.choices[0].message.content);
  });

  it('a schema feature that cannot be enforced is a 400 naming it', async () => {
    const r = await post(`${server.url}/v1/chat/completions`, {
      model: 'qwen3',
      messages: ask('hi'),
      response_format: { type: 'json_schema', json_schema: { name: 'zip', schema: { type: 'object', properties: { zip: { type: 'string', pattern: '^(\\d)\\1{4}$' } } } } },
    });
    expect(r.status).toBe(400);
    expect(r.json.error.param).toBe('response_format');
    expect(r.json.error.message).toContain('"pattern"');
    expect(r.json.error.message).toContain('backreferences');
    expect(r.json.error.message).toContain('#/properties/zip');
    await expect(client.chat.completions.create({ model: 'qwen3', messages: ask('hi'), response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { not: {} } } } })).rejects.toMatchObject({ status: 400 });
  });

  it('schemas too large to enforce are a 400 naming the part and the limit; the server serves on', async () => {
    const refused = async (schema: JsonSchema, tools?: OpenAI.Chat.Completions.ChatCompletionTool[]) => {
      const body = tools
        ? { model: 'qwen3', messages: ask('hi'), tools, tool_choice: 'required' as const, max_tokens: 8 }
        : { model: 'qwen3', messages: ask('hi'), max_tokens: 8, response_format: { type: 'json_schema' as const, json_schema: { name: 'big', schema } } };
      const err = await client.chat.completions.create(body).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      const e = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(e.code).toBe('unsupported_schema');
      return { message: e.message, param: e.param };
    };
    // Counted repetitions that multiply: refused before anything is built.
    const blowUp = await refused({ type: 'object', properties: { code: { type: 'string', pattern: '(a|b){1,1000}(x{1,1000}){1,1000}' } } });
    expect(blowUp.param).toBe('response_format');
    expect(blowUp.message).toMatch(/"pattern" .*too large to enforce.*the limit is 1,000,000.*#\/properties\/code/);
    // A pattern whose automaton explodes, in a tool's parameters: the tool is named.
    const tool = { type: 'function' as const, function: { name: 'lookup', parameters: { type: 'object', properties: { p: { type: 'string', pattern: '^(a|b)*a(a|b){20}$' } } } } };
    const inTool = await refused({}, [tool]);
    expect(inTool.param).toBe('tools');
    expect(inTool.message).toMatch(/tool 'lookup'.*more than 6,000,000 steps.*#\/properties\/p/);
    // Mutually recursive definitions.
    const defs = Object.fromEntries(
      Array.from({ length: 6 }, (_, i) => [`d${i}`, { type: 'object', properties: Object.fromEntries(Array.from({ length: 6 }, (_, j) => [`p${j}`, { $ref: `#/$defs/d${j}` }])) }]),
    );
    expect((await refused({ $defs: defs, $ref: '#/$defs/d0' })).message).toMatch(/more than 10,000 parts.*flatten the recursion/);
    // An enum of 200,000 values compiles, and answers with one of them.
    const values = Array.from({ length: 200_000 }, (_, i) => `v${i}`);
    const r = await client.chat.completions.create({
      model: 'qwen3',
      messages: ask('Pick one.'),
      max_tokens: 16,
      seed: 1,
      response_format: { type: 'json_schema', json_schema: { name: 'pick', schema: { enum: values } } },
    });
    expect(values).toContain(JSON.parse(r.choices[0].message.content!));
  });

  it.each([true, false])('with thinking on (reasoning parser %s), the think block stays free text, apart from the answer, which validates', async (reasoningParser) => {
    const s = await start({ reasoningParser });
    try {
      const schema = schemas.person;
      let reasoned = 0;
      for (const seed of [1, 2, 3]) {
        const r = await s.client.chat.completions.create({ model: 'qwen3', messages: ask('Think, then answer.'), max_tokens: 120, seed, enable_thinking: true, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } } as any);
        const msg = r.choices[0].message as { content: string; reasoning_content?: string };
        expect(ajv.validate(schema, JSON.parse(msg.content)), msg.content).toBe(true);
        // The think budget (half of max_tokens here) closes the block in time for the answer.
        reasoned += msg.reasoning_content ? 1 : 0;
        expect(r.choices[0].finish_reason).toBe('stop');
      }
      expect(reasoned).toBeGreaterThan(0);
      // Streamed alike: the content deltas join into the JSON alone.
      const stream = await s.client.chat.completions.create({ model: 'qwen3', messages: ask('Think, then answer.'), max_tokens: 120, seed: 1, enable_thinking: true, stream: true, response_format: { type: 'json_schema', json_schema: { name: 'person', schema } } } as any);
      let content = '';
      for await (const chunk of stream as any) content += chunk.choices[0]?.delta?.content ?? '';
      expect(ajv.validate(schema, JSON.parse(content)), content).toBe(true);
      if (!reasoningParser) {
        // Without a response format the conf's choice stands: no reasoning_content.
        const plain = await s.client.chat.completions.create({ model: 'qwen3', messages: ask('Hi'), max_tokens: 8, seed: 1, enable_thinking: true } as any);
        expect((plain.choices[0].message as { reasoning_content?: string }).reasoning_content).toBeUndefined();
      }
    } finally {
      await s.server.close();
    }
  });
});

describe('tool_choice', () => {
  const tools = [weatherTool, postcodeTool];
  const checks = new Map(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));

  it('required: tool calls to the listed tools whose arguments validate', async () => {
    const seen = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const r = await client.chat.completions.create({ model: 'qwen3', messages: ask("What's the weather like in Boston today?"), tools, tool_choice: 'required', max_tokens: 200, seed });
      const choice = r.choices[0];
      expect(choice.finish_reason).toBe('tool_calls');
      expect(choice.message.tool_calls!.length).toBeGreaterThan(0);
      for (const call of choice.message.tool_calls!) {
        if (call.type !== 'function') throw new Error('not a function call');
        expect(checks.get(call.function.name)!(JSON.parse(call.function.arguments)), call.function.arguments).toBe(true);
        seen.add(call.function.name);
      }
    }
    expect(seen.size).toBeGreaterThan(0);
  });

  it('named: that tool once (as vLLM), also streamed; the follow-up turn with the results renders through the template', async () => {
    const tool_choice = { type: 'function' as const, function: { name: 'get_postcode' } };
    const r = await client.chat.completions.create({ model: 'qwen3', messages: ask('Postcode of Paris?'), tools, tool_choice, max_tokens: 150, seed: 3 });
    const calls = r.choices[0].message.tool_calls!;
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    expect(calls.map((c) => (c.type === 'function' ? c.function.name : ''))).toEqual(['get_postcode']);
    for (const c of calls) if (c.type === 'function') expect(checks.get('get_postcode')!(JSON.parse(c.function.arguments))).toBe(true);

    const res = await post(`${server.url}/v1/chat/completions`, { model: 'qwen3', messages: ask('Postcode of Paris?'), tools, tool_choice, max_tokens: 150, seed: 3, stream: true });
    const deltas = sseFrames(res.text).filter((f) => f !== '[DONE]').flatMap((f) => f.choices[0]?.delta?.tool_calls ?? []);
    expect(deltas.filter((d: any) => d.function?.name).map((d: any) => d.function.name)).toEqual(calls.map(() => 'get_postcode'));

    const followUp = [
      ...ask('Postcode of Paris?'),
      { role: 'assistant' as const, content: null, tool_calls: calls },
      ...calls.map((c) => ({ role: 'tool' as const, tool_call_id: c.id, content: '{"postcode": "75001"}' })),
    ];
    const tok = await post(`${server.url}/tokenize`, { model: 'qwen3', messages: followUp, tools });
    expect(tok.status).toBe(200);
    const prompt = model.tokenizer.decode(tok.json.tokens);
    const first = calls[0].type === 'function' ? calls[0].function : undefined;
    expect(prompt).toContain(`<tool_call>\n{"name": "get_postcode", "arguments": ${first!.arguments}}\n</tool_call>`);
    expect(prompt).toContain('<tool_response>\n{"postcode": "75001"}\n</tool_response>');
    const next = await client.chat.completions.create({ model: 'qwen3', messages: followUp, tools, max_tokens: 8, seed: 1 });
    expect(next.usage!.prompt_tokens).toBe(tok.json.count);
  });

  it('a forced call cut by max_tokens is still the call (arguments so far, finish length), never markup in content', async () => {
    const tool_choice = { type: 'function' as const, function: { name: 'get_postcode' } };
    for (const [choice, max_tokens] of [[tool_choice, 3], [tool_choice, 12], ['required', 12]] as const) {
      const r = await client.chat.completions.create({ model: 'qwen3', messages: ask('Postcode of Paris?'), tools, tool_choice: choice, max_tokens, seed: 3 });
      const c = r.choices[0];
      expect(c.finish_reason).toBe('length');
      expect(c.message.content ?? '').not.toContain('<tool_call>');
      for (const call of c.message.tool_calls ?? []) if (call.type === 'function') expect(tools.map((t) => t.function.name)).toContain(call.function.name);
      if (choice !== 'required') expect(c.message.tool_calls!.map((t) => (t.type === 'function' ? t.function.name : ''))).toEqual(['get_postcode']);
    }
    // Streamed, the cut call arrives as a tool_calls delta before finish_reason length.
    const res = await post(`${server.url}/v1/chat/completions`, { model: 'qwen3', messages: ask('Postcode of Paris?'), tools, tool_choice, max_tokens: 3, seed: 3, stream: true });
    const frames = sseFrames(res.text).filter((f) => f !== '[DONE]');
    const deltas = frames.flatMap((f) => f.choices[0]?.delta?.tool_calls ?? []);
    expect(deltas.filter((d: any) => d.function?.name).map((d: any) => d.function.name)).toEqual(['get_postcode']);
    expect(frames.map((f) => f.choices[0]?.delta?.content ?? '').join('')).not.toContain('<tool_call>');
    expect(frames.at(-1).choices[0].finish_reason).toBe('length');
  });

  it('parallel_tool_calls false: exactly one call; the grammar the server compiled for it allows nothing after one', async () => {
    for (const seed of [1, 2]) {
      const r = await client.chat.completions.create({ model: 'qwen3', messages: ask('Postcode of Paris?'), tools: [postcodeTool], tool_choice: 'required', max_tokens: 120, seed, n: 4, temperature: 2, parallel_tool_calls: false });
      for (const c of r.choices) {
        expect(c.finish_reason).toBe('tool_calls');
        expect(c.message.tool_calls!.length).toBe(1);
      }
    }
    // The random model seldom goes on to a second call on its own, so the grammar is checked
    // directly: the one these requests compiled (a cache hit now) ends after one call, where the
    // grammar of the same tools without the flag lets another call follow.
    const imEnd = model.tokenizer.tokenToId('<|im_end|>')!;
    const afterOneCall = (parallel: boolean) => {
      const compiled = compiler.outputs.compile(answerSpec({ thinking: false, toolCalls: { tools: [postcodeTool], parallel } })!, false);
      const m = compiled.grammar.matcher({ eosTokenIds: [imEnd] });
      for (const t of model.tokenizer.encode('<tool_call>\n{"name": "get_postcode", "arguments": {"city": "Paris"}}\n</tool_call>')) expect(m.accept(t)).toBe(true);
      return { compileMs: compiled.compileMs, allowed: [...m.allowed()] };
    };
    expect(afterOneCall(false)).toEqual({ compileMs: 0, allowed: [imEnd] });
    expect(afterOneCall(true).allowed.length).toBeGreaterThan(1);
  });

  it('none: the answer carries no tool call (the matcher tests show <tool_call> is masked out)', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const r = await client.chat.completions.create({ model: 'qwen3', messages: ask('Weather in Boston?'), tools, tool_choice: 'none', max_tokens: 40, seed });
      expect(r.choices[0].message.tool_calls ?? []).toEqual([]);
      expect(r.choices[0].message.content ?? '').not.toContain('<tool_call>');
    }
  });

  it('forced together with a response format (the OpenAI Agents SDK sends both for an agent with tools and an output_type): the call wins, as in OpenAI and vLLM', async () => {
    const person = { type: 'json_schema' as const, json_schema: { name: 'person', schema: schemas.person, strict: true } };
    const r = await client.chat.completions.create({ model: 'qwen3', messages: ask('Postcode of Paris?'), tools, tool_choice: 'required', response_format: person, max_tokens: 150, seed: 3 });
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    const call = r.choices[0].message.tool_calls![0];
    if (call.type !== 'function') throw new Error('not a function call');
    expect(checks.get(call.function.name)!(JSON.parse(call.function.arguments))).toBe(true);
    // The next turn, tool_choice back to auto, may call again or answer (the test below); kept
    // from calling, its answer is held to the format.
    const next = await client.chat.completions.create({
      model: 'qwen3',
      messages: [...ask('Postcode of Paris?'), { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: call.id, content: '75001' }],
      tools,
      tool_choice: 'auto',
      response_format: person,
      logit_bias: { [model.tokenizer.tokenToId('<tool_call>')!]: -100 },
      max_tokens: 150,
      seed: 3,
    });
    expect(ajv.validate(schemas.person, JSON.parse(next.choices[0].message.content!))).toBe(true);
    // The Responses API spelling: text.format with a named function.
    const res = await post(`${server.url}/v1/responses`, {
      model: 'qwen3',
      input: 'Postcode of Paris?',
      tools: [{ type: 'function', ...postcodeTool.function }],
      tool_choice: { type: 'function', name: 'get_postcode' },
      text: { format: { type: 'json_schema', name: 'person', schema: schemas.person, strict: true } },
      max_output_tokens: 150,
    });
    expect(res.status, res.text).toBe(200);
    expect(res.json.output.map((o: any) => o.type)).toEqual(['function_call']);
    expect(checks.get('get_postcode')!(JSON.parse(res.json.output[0].arguments))).toBe(true);
  });

  it("auto beside a response format (an Agents SDK agent with tools and an output_type): the turn is calls or the formatted answer, as OpenAI's models choose; guided_choice still holds the whole output", async () => {
    const person = { type: 'json_schema' as const, json_schema: { name: 'person', schema: schemas.person, strict: true } };
    // The random model is pushed each way with a logit_bias on <tool_call>: what a push can reach is the grammar's to say.
    const callToken = model.tokenizer.tokenToId('<tool_call>')!;
    const turn = (bias: number, more: Record<string, unknown> = { response_format: person }) =>
      client.chat.completions.create({ model: 'qwen3', messages: ask('Postcode of Paris?'), tools, tool_choice: 'auto', max_tokens: 150, seed: 3, logit_bias: { [callToken]: bias }, ...more });
    const called = (await turn(100)).choices[0];
    expect(called.finish_reason, called.message.content ?? '').toBe('tool_calls');
    for (const call of called.message.tool_calls!) {
      if (call.type !== 'function') throw new Error('not a function call');
      expect(checks.get(call.function.name)!(JSON.parse(call.function.arguments)), call.function.arguments).toBe(true);
    }
    const answered = (await turn(-100)).choices[0];
    expect(answered.message.tool_calls ?? []).toEqual([]);
    expect(ajv.validate(schemas.person, JSON.parse(answered.message.content!))).toBe(true);
    // The Responses API spelling: text.format, tool_choice left out ("auto").
    const res = await post(`${server.url}/v1/responses`, {
      model: 'qwen3',
      input: 'Postcode of Paris?',
      tools: [{ type: 'function', ...postcodeTool.function }],
      text: { format: { type: 'json_schema', name: 'person', schema: schemas.person, strict: true } },
      logit_bias: { [callToken]: 100 },
      max_output_tokens: 150,
    });
    expect(res.status, res.text).toBe(200);
    expect(new Set(res.json.output.map((o: any) => o.type))).toEqual(new Set(['function_call']));
    // vLLM's guided_choice is the whole output, tools or not, as in vLLM.
    const chosen = (await turn(100, { guided_choice: ['yes', 'no'] })).choices[0];
    expect(chosen.message.tool_calls ?? []).toEqual([]);
    expect(['yes', 'no']).toContain(chosen.message.content);
    // Arguments under auto were never enforced: a tool schema the compiler cannot take leaves the
    // turn to the format, where a forced choice would be refused.
    const unenforceable = [{ type: 'function' as const, function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string', pattern: '^(a)\\1$' } } } } }];
    const formatOnly = (await turn(100, { tools: unenforceable, response_format: { type: 'json_object' } })).choices[0];
    expect(formatOnly.message.tool_calls ?? []).toEqual([]);
    expect(typeof JSON.parse(formatOnly.message.content!)).toBe('object');
  });
});

describe('sharing the batch', () => {
  it('an unconstrained greedy answer is the same alone and beside constrained requests', async () => {
    const plain = { model: 'qwen3', messages: ask('Tell me a story.'), max_tokens: 48, temperature: 0 };
    const alone = await client.chat.completions.create(plain);
    const constrained = Array.from({ length: 8 }, (_, i) =>
      client.chat.completions.create({ model: 'qwen3', messages: ask('JSON'), max_tokens: 64, seed: i, response_format: { type: 'json_schema', json_schema: { name: 'todo', schema: schemas.todoList } } }),
    );
    const [together, ...others] = await Promise.all([client.chat.completions.create(plain), ...constrained]);
    expect(together.choices[0].message.content).toBe(alone.choices[0].message.content);
    for (const o of others) expect(ajv.validate(schemas.todoList, JSON.parse(o.choices[0].message.content!))).toBe(true);
  });
});
