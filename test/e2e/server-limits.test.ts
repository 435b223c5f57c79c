// What one request may hold and how long a client may take to send it: past each limit a clear
// error in OpenAI's envelope (through the official client where it can send the request), and
// the server serves on. The real server on the real runtime and a tiny checkpoint.
import { connect } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { mapConfs } from '../../src/config/resolve.js';
import { serverConfSchema } from '../../src/config/server-schema.js';
import { loadTiny, post, serve, sseFrames, waitFor, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
/** Timeouts short enough for a test, far below how long the long answer below takes. */
const timeouts = { requestTimeoutMs: 300, headersTimeoutMs: 150 };

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model, timeouts);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

const user = (content: string) => ({ role: 'user' as const, content });
const chat = (extra: Record<string, unknown>) => ({ model: 'qwen3', messages: [user('hi')], max_tokens: 2, temperature: 0, ...extra });

/** The official client's error for a request (undefined when it succeeded). */
async function refusal(body: Record<string, unknown>): Promise<InstanceType<typeof OpenAI.APIError> | undefined> {
  return srv.client.chat.completions.create(body as any).then(
    () => undefined,
    (e: unknown) => {
      if (!(e instanceof OpenAI.APIError)) throw e;
      return e;
    },
  );
}

interface RawAnswer {
  status: number;
  headers: string;
  json: any;
  /** Everything the connection received (a keep-alive one may carry several answers). */
  text: string;
}

/** Writes `parts` to a new connection (waiting `gapMs` before each after the first) and reads until the server closes it. */
function raw(parts: string[], gapMs = 0, url = srv.url): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(new URL(url).port as unknown as number, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString();
      const [head, body] = [text.slice(0, text.indexOf('\r\n\r\n')), text.slice(text.indexOf('\r\n\r\n') + 4)];
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]), headers: head.toLowerCase(), json, text });
    });
    socket.on('connect', async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
        if (socket.writable) socket.write(p);
      }
    });
  });
}

function expectEnvelope(r: RawAnswer, status: number, code: string) {
  expect(r.status).toBe(status);
  expect(r.headers).toContain('content-type: application/json');
  expect(r.headers).toContain('connection: close');
  expect(Object.keys(r.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(r.json.error.code).toBe(code);
  expect(r.json.error.type).toBe('invalid_request_error');
}

describe('counts one request may hold', () => {
  it('messages, content parts, tool calls, tools, stop strings: past the limit a 400 naming the field and the limit', async () => {
    const tool = (i: number) => ({ type: 'function', function: { name: `tool_${i}`, parameters: { type: 'object', properties: {} } } });
    const part = { type: 'text', text: 'a' };
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ['messages', { messages: Array.from({ length: 2049 }, () => user('a')) }, 'messages', /at most 2,048 messages/],
      ['content parts', { messages: [{ role: 'user', content: Array(257).fill(part) }] }, 'messages[0].content', /at most 256 content parts/],
      [
        'tool calls',
        { messages: [user('q'), { role: 'assistant', content: null, tool_calls: Array.from({ length: 129 }, (_, i) => ({ id: `c${i}`, type: 'function', function: { name: 'f', arguments: '{}' } })) }] },
        'messages[1].tool_calls',
        /at most 128 tool calls/,
      ],
      ['tools', { tools: Array.from({ length: 129 }, (_, i) => tool(i)) }, 'tools', /at most 128 tools/],
      ['stop strings', { stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 'stop', /at most 16 stop strings/],
    ];
    for (const [name, extra, param, message] of cases) {
      const err = await refusal(chat(extra));
      expect(err, name).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err!.param, name).toBe(param);
      expect(err!.code, name).toBe('array_above_max_length');
      expect(err!.message, name).toMatch(message);
    }
    // At the limits the same requests pass validation. 2,048 messages or 128 tools make too long a
    // prompt for this engine (a different error); /tokenize renders them.
    expect(await refusal(chat({ messages: [{ role: 'user', content: Array(256).fill(part) }], stop: Array(16).fill('zz') }))).toBeUndefined();
    expect((await refusal(chat({ messages: Array.from({ length: 2048 }, () => user('a')) })))?.code).toBe('context_length_exceeded');
    const tokenize = await post(`${srv.url}/tokenize`, { messages: Array.from({ length: 2048 }, () => user('a')), tools: Array.from({ length: 128 }, (_, i) => tool(i)) });
    expect(tokenize.status).toBe(200);
  });
});

describe('how long a client may take to send its request', () => {
  it('headers or a body that arrive too slowly: 408 in the envelope, naming the limits and the fix', async () => {
    const slowHeaders = await raw(['POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n', 'content-type: application/json\r\n'], 1_000);
    expectEnvelope(slowHeaders, 408, 'request_timeout');
    expect(slowHeaders.json.error.message).toMatch(/0\.15 s for a request's headers and 0\.3 s for the whole request.*request_timeout_s/);
    const body = JSON.stringify(chat({}));
    const slowBody = await raw([`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 10)}`, body.slice(10)], 1_000);
    expectEnvelope(slowBody, 408, 'request_timeout');
    // The server serves on.
    expect((await post(`${srv.url}/v1/chat/completions`, chat({}))).status).toBe(200);
  });

  it('a slow request is counted once in /metrics, as the 408 it got: under its route once its headers arrived, never also as a disconnect', async () => {
    const own = await serve(model, timeouts);
    try {
      const body = JSON.stringify(chat({}));
      const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`;
      expectEnvelope(await raw([head + body.slice(0, 10), body.slice(10)], 1_000, own.url), 408, 'request_timeout');
      expectEnvelope(await raw(['POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n', 'content-type: application/json\r\n'], 1_000, own.url), 408, 'request_timeout');
      let metrics = '';
      await waitFor(async () => (metrics = await (await fetch(`${own.url}/metrics`)).text()).includes('route="/v1/chat/completions"'));
      expect(metrics).toMatch(/^grpst_requests_total\{route="\/v1\/chat\/completions",status="408"\} 1$/m);
      // Headers that never arrived never reached a route.
      expect(metrics).toMatch(/^grpst_requests_total\{route="client_error",status="408"\} 1$/m);
      expect(metrics).not.toContain('disconnected');
      expect(metrics.match(/^grpst_requests_total\{[^}]*status="408"\} \d+$/gm)).toHaveLength(2);
      expect(own.logs.filter((l) => l.startsWith('access: POST /v1/chat/completions'))).toEqual([expect.stringMatching(/^access: POST \/v1\/chat\/completions 408 \d+ ms req_[0-9a-f]+$/)]);
    } finally {
      await own.server.close();
    }
  });

  it('on a keep-alive connection, a later request too slow to send its headers gets its own 408, counted once as client_error', async () => {
    const own = await serve(model, timeouts);
    try {
      const r = await raw(['GET /ping HTTP/1.1\r\nhost: x\r\n\r\n', 'GET /ping HTTP/1.1\r\nhost: x\r\n', 'x-a: b\r\n'], 1_000, own.url);
      expect(r.status).toBe(200);
      expect(r.text).toMatch(/^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 408 Request Timeout\r\n[\s\S]*"code":"request_timeout"/);
      const metrics = await (await fetch(`${own.url}/metrics`)).text();
      expect(metrics).toMatch(/^grpst_requests_total\{route="\/ping",status="200"\} 1$/m);
      expect(metrics).toMatch(/^grpst_requests_total\{route="client_error",status="408"\} 1$/m);
    } finally {
      await own.server.close();
    }
  });

  it('an answer is not timed: streams far longer than the request timeout end with [DONE]', async () => {
    // A timeout of 100 ms, checked every 50 ms: the answers below take several times longer.
    const quick = await serve(model, { requestTimeoutMs: 100, headersTimeoutMs: 50 });
    try {
      const started = performance.now();
      const r = await post(`${quick.url}/v1/chat/completions`, chat({ max_tokens: 900, ignore_eos: true, n: 2, stream: true, stream_options: { include_usage: true } }));
      const elapsed = performance.now() - started;
      const frames = sseFrames(r.text);
      expect(frames.at(-1)).toBe('[DONE]');
      expect(frames.at(-2).usage.completion_tokens).toBe(1800);
      // Only meaningful when the answer outlasted the timeout several times over.
      expect(elapsed).toBeGreaterThan(4 * 100);
    } finally {
      await quick.server.close();
    }
  });

  it('what is not HTTP, or headers too large: 400 and 431 in the envelope', async () => {
    expectEnvelope(await raw(['GARBAGE / HTTP/1.1\r\n\r\n']), 400, 'invalid_http');
    expectEnvelope(await raw([`GET /health HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`]), 431, 'headers_too_large');
    expect((await post(`${srv.url}/v1/chat/completions`, chat({}))).status).toBe(200);
    // Answered before the router, and counted all the same.
    const metrics = await (await fetch(`${srv.url}/metrics`)).text();
    expect(metrics).toMatch(/^grpst_requests_total\{route="client_error",status="400"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^grpst_requests_total\{route="client_error",status="431"\} [1-9]\d*$/m);
  });

  it('server.yml request_timeout_s sets it', () => {
    const inference = inferenceConfSchema.parse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e' } }] });
    expect(mapConfs(inference, serverConfSchema.parse({ request_timeout_s: 2.5 })).server.requestTimeoutMs).toBe(2_500);
    expect(mapConfs(inference, serverConfSchema.parse({})).server.requestTimeoutMs).toBeUndefined();
  });
});

describe('connections', () => {
  it('past max_connections a request gets a 503 it can retry (and /health its answer), counted and logged; then the connection closes', async () => {
    const limited = await serve(model, { maxConnections: 3 });
    const port = Number(new URL(limited.url).port);
    const ask = (path: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        const chunks: Buffer[] = [];
        socket.on('data', (d) => chunks.push(d));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks).toString()));
        socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      });
    // Three idle keep-alive connections hold the limit.
    const open = () => new Promise<ReturnType<typeof connect>>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => resolve(socket));
    });
    const held = await Promise.all([open(), open(), open()]);
    const refused = await ask('/v1/models');
    expect(refused).toMatch(/^HTTP\/1\.1 503 /);
    expect(refused.toLowerCase()).toContain('retry-after: 1');
    expect(refused.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(refused.slice(refused.indexOf('\r\n\r\n') + 4)).error).toMatchObject({ code: 'too_many_connections', type: 'server_error' });
    expect(await ask('/health')).toMatch(/^HTTP\/1\.1 200 /); // probes are answered all the same
    expect(await ask('/ping?from=kubelet')).toMatch(/^HTTP\/1\.1 200 /);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(await ask('/v1/models')).toMatch(/^HTTP\/1\.1 200 /);
    const metrics = await ask('/metrics');
    expect(metrics).toMatch(/^grpst_connections_over_limit_total 3$/m);
    expect(metrics).toMatch(/^grpst_requests_total\{route="connection_limit",status="503"\} 1$/m);
    expect(limited.logs.join('\n')).toContain('connections past max_connections (3) are answered 503');
    await limited.server.close();
  });

  it('a labelled counter with no sample yet has no series (an unlabelled 0 would be one of its own)', async () => {
    const fresh = await serve(model, { modelId: 'qwen3-tiny' });
    const text = await (await fetch(`${fresh.url}/metrics`)).text();
    expect(text).toContain('# TYPE grpst_request_finished_total counter');
    expect(text).not.toMatch(/^grpst_request_finished_total /m);
    expect(text).toMatch(/^grpst_prompt_tokens_total 0$/m);
    // The served name is on one info series (docs/metrics.md), so every other grpst series keeps its
    // identity; vLLM's names carry it on each, as vLLM's do.
    expect(text.match(/^grpst_.*model_name=/gm)).toHaveLength(1);
    expect(text).not.toMatch(/^vllm:request_success_total\{/m);
    expect(text).toMatch(/^vllm:prompt_tokens_total\{model_name="qwen3-tiny",engine="0"\} 0$/m);
    expect(text).toMatch(/^grpst_model_info\{model_name="qwen3-tiny"\} 1$/m);
    await fresh.server.close();
  });
});

describe("generation_config.json's max_new_tokens", () => {
  it('is the length of an answer whose request sets none, on chat and responses; a request that sets one gets it', async () => {
    const capped = await serve(model, { defaultMaxTokens: 5 });
    try {
      const body = { model: 'qwen3', messages: [user('Tell me a long story.')], temperature: 0, ignore_eos: true };
      const free = await capped.client.chat.completions.create(body as any);
      expect(free.usage!.completion_tokens).toBe(5);
      expect(free.choices[0].finish_reason).toBe('length');
      const asked = await capped.client.chat.completions.create({ ...body, max_tokens: 9 } as any);
      expect(asked.usage!.completion_tokens).toBe(9);
      const r = await capped.client.responses.create({ model: 'qwen3', input: 'Tell me a long story.', temperature: 0, ignore_eos: true } as any);
      expect(r.usage!.output_tokens).toBe(5);
      expect(r.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    } finally {
      await capped.server.close();
    }
  });
});
