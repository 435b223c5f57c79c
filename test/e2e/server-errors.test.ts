// Every error the server answers with, in OpenAI's envelope; readiness; API keys.
import fs from 'node:fs';
import path from 'node:path';
import { APIError, NotFoundError } from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { GenerationEngine } from '../../src/engine/types.js';
import { repoRoot } from '../helpers/fixtures.js';
import { ScriptedEngine } from './scripted-engine.js';
import { get, loadTiny, metric, post, serve, waitFor, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
const chat = (extra: Record<string, unknown> = {}) => ({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0, ...extra });

function expectEnvelope(r: { status: number; json: any }, status: number, fields: { code?: string | null; param?: string | null; type?: string } = {}) {
  expect(r.status).toBe(status);
  expect(Object.keys(r.json)).toEqual(['error']);
  expect(Object.keys(r.json.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof r.json.error.message).toBe('string');
  expect(r.json.error.message.length).toBeGreaterThan(10);
  expect(r.json.error).toMatchObject(fields);
}

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model, { maxBodyBytes: 64 * 1024 });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

describe('request errors', () => {
  it('invalid JSON, invalid UTF-8, and bodies that are not objects: 400', async () => {
    const url = `${srv.url}/v1/chat/completions`;
    expectEnvelope(await post(url, '{"model": "qwen3", "messages": ['), 400, { code: 'invalid_json', type: 'invalid_request_error' });
    expectEnvelope(await post(url, '[1, 2]'), 400, { code: 'invalid_json' });
    expectEnvelope(await post(url, ''), 400, { code: 'invalid_json' });
    const badUtf8 = Buffer.concat([Buffer.from('{"model": "qwen3", "messages": [{"role": "user", "content": "'), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]);
    expectEnvelope(await post(url, badUtf8), 400, { code: 'invalid_encoding' });
  });

  it('schema errors name the parameter', async () => {
    const url = `${srv.url}/v1/chat/completions`;
    expectEnvelope(await post(url, chat({ temperature: 7 })), 400, { param: 'temperature' });
    expectEnvelope(await post(url, chat({ top_p: 7 })), 400, { param: 'top_p' });
    expectEnvelope(await post(url, chat({ max_tokens: -1 })), 400, { param: 'max_tokens' });
    expectEnvelope(await post(url, chat({ max_tokens: 0 })), 400, { param: 'max_tokens' });
    expectEnvelope(await post(url, chat({ max_tokens: undefined, max_completion_tokens: 0 })), 400, { param: 'max_completion_tokens' });
    expectEnvelope(await post(url, chat({ n: 0 })), 400, { param: 'n' });
    expectEnvelope(await post(url, chat({ max_tokens: 1e300 })), 400, { param: 'max_tokens' });
    expectEnvelope(await post(url, { model: 'qwen3', messages: 'hi' }), 400, { param: 'messages' });
    expectEnvelope(await post(url, { model: 'qwen3', messages: [{ role: 'wizard', content: 'x' }] }), 400, { param: 'messages[0].role' });
    expectEnvelope(await post(url, chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })), 400, {
      param: 'messages[0].content[0].type',
    });
    expectEnvelope(await post(url, chat({ tool_choice: { type: 'function', function: { name: 'nope' } } })), 400, { param: 'tool_choice' });
    expectEnvelope(await post(url, chat({ top_logprobs: 2 })), 400, { param: 'top_logprobs' });
    expectEnvelope(await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: [1, 2, 999999999] }), 400, { param: 'prompt' });
    // In a list of prompts the entry at fault is named.
    expectEnvelope(await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: ['a', ''] }), 400, { param: 'prompt[1]' });
    expectEnvelope(await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: [[1], [2, 999999999]] }), 400, { param: 'prompt[1]' });
    expectEnvelope(await post(`${srv.url}/detokenize`, { tokens: [999999999] }), 400, { param: 'tokens' });
    // stream_options needs stream, as OpenAI answers; null is no options at all.
    expectEnvelope(await post(url, chat({ stream_options: { include_usage: true } })), 400, { param: 'stream_options' });
    expectEnvelope(await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: 'hi', max_tokens: 1, stream: false, stream_options: {} }), 400, { param: 'stream_options' });
    expect((await post(url, chat({ stream_options: null }))).status).toBe(200);
    // Unknown fields are ignored, as OpenAI clients send many.
    expect((await post(url, chat({ store: false, metadata: { a: 1 }, parallel_tool_calls: true }))).status).toBe(200);
  });

  it('a message with an empty content array: 400 naming that message, on chat and /tokenize alike', async () => {
    const url = `${srv.url}/v1/chat/completions`;
    const user = { role: 'user', content: 'hi' };
    const cases: [Record<string, unknown>[], string][] = [
      [[{ role: 'user', content: [] }], 'messages[0].content'],
      [[{ role: 'system', content: [] }, user], 'messages[0].content'],
      [[user, { role: 'assistant', content: [] }, user], 'messages[1].content'],
      [[user, { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c', content: [] }], 'messages[2].content'],
    ];
    for (const [messages, param] of cases) {
      for (const r of [await post(url, chat({ messages })), await post(`${srv.url}/tokenize`, { messages })]) {
        expectEnvelope(r, 400, { param, code: 'invalid_value', type: 'invalid_request_error' });
        expect(r.json.error.message).toMatch(/array too short.*Send a string or one or more .*parts/);
      }
    }
    // One part, or an empty string, is a turn.
    expect((await post(url, chat({ messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] }))).status).toBe(200);
    expect((await post(url, chat({ messages: [{ role: 'system', content: '' }, user] }))).status).toBe(200);
  });

  it('a model that is not served: 404 through the official client', async () => {
    const err = await srv.client.chat.completions.create({ ...chat(), model: 'gpt-4o' } as any).catch((e) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.code).toBe('model_not_found');
    expect(err.param).toBe('model');
    expectEnvelope(await post(`${srv.url}/v1/completions`, { model: 'qwen4', prompt: 'x' }), 404, { code: 'model_not_found' });
    // models.retrieve: the served model, or the same 404
    const served = await srv.client.models.retrieve('qwen3');
    expect(served).toMatchObject({ id: 'qwen3', object: 'model', owned_by: 'grpst' });
    const missing = await srv.client.models.retrieve('gpt-4o').catch((e) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(missing.code).toBe('model_not_found');
  });

  it('a request naming no model (null or "", as clients without a model setting send) is served, as vLLM serves it', async () => {
    for (const model of [null, '']) {
      const c = await post(`${srv.url}/v1/chat/completions`, chat({ model }));
      expect(c.status, JSON.stringify(c.json)).toBe(200);
      expect(c.json.model).toBe('qwen3');
      const t = await post(`${srv.url}/v1/completions`, { model, prompt: 'x', max_tokens: 2 });
      expect(t.status, JSON.stringify(t.json)).toBe(200);
      expect((await post(`${srv.url}/tokenize`, { model, prompt: 'x' })).status).toBe(200);
    }
  });

  it('prompt plus max_tokens over max_seq_len: 400 context_length_exceeded with both numbers', async () => {
    const r = await post(`${srv.url}/v1/chat/completions`, chat({ max_tokens: 5000 }));
    expectEnvelope(r, 400, { code: 'context_length_exceeded', param: 'messages' });
    const maxLen = model.engine.info.maxSeqLen;
    const promptTokens = (await post(`${srv.url}/tokenize`, { messages: chat().messages })).json.count as number;
    expect(r.json.error.message).toContain(String(maxLen));
    expect(r.json.error.message).toContain(String(promptTokens + 5000));
    const long = await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: Array(maxLen + 1).fill(9707), max_tokens: 1 });
    expectEnvelope(long, 400, { code: 'context_length_exceeded', param: 'prompt' });
  });

  it("every context overflow's message carries OpenAI's own sentence, which clients that see only the message go by", async () => {
    // openai-python 3 puts only the message in an error's text, not the body with its code, and
    // LangChain tells a context overflow (ContextOverflowError, which its agents catch to shorten
    // the conversation and retry) from other 400s by that text.
    const sentence = 'Input tokens exceed the configured limit';
    const maxLen = model.engine.info.maxSeqLen;
    const long = 'word '.repeat(maxLen);
    const refusals = [
      await post(`${srv.url}/v1/chat/completions`, chat({ messages: [{ role: 'user', content: long }], max_tokens: undefined })),
      await post(`${srv.url}/v1/chat/completions`, chat({ max_tokens: maxLen })),
      await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: long, max_tokens: 1 }),
      await post(`${srv.url}/v1/responses`, { model: 'qwen3', input: 'hi', max_output_tokens: maxLen }),
    ];
    for (const r of refusals) {
      expect(r.json.error?.code, JSON.stringify(r.json)).toBe('context_length_exceeded');
      expect(r.json.error.message).toContain(sentence);
      // vLLM's wording stays, for the clients that match that.
      expect(r.json.error.message).toContain(`maximum context length is ${maxLen} tokens`);
    }
  });

  it('unknown routes 404, wrong methods 405, big bodies 413', async () => {
    const unknown = await get(`${srv.url}/v1/nothing`);
    expectEnvelope(unknown, 404, { code: 'unknown_url' });
    // The message lists what the server has, every API included.
    for (const route of ['POST /v1/chat/completions', 'POST /v1/messages', 'GET /v1/responses/{id}/input_items', 'POST /api/chat', 'GET /health'])
      expect(unknown.json.error.message).toContain(route);
    // Under /api the errors come in Ollama's envelope, as its clients read them.
    const ollama = await get(`${srv.url}/api/nothing`);
    expect(ollama.status).toBe(404);
    expect(Object.keys(ollama.json)).toEqual(['error']);
    expect(ollama.json.error).toMatch(/^No route GET \/api\/nothing/);
    const ollamaWrong = await get(`${srv.url}/api/chat`);
    expect(ollamaWrong.status).toBe(405);
    expect(ollamaWrong.json.error).toMatch(/use POST/);
    const wrong = await get(`${srv.url}/v1/chat/completions`);
    expectEnvelope(wrong, 405, { code: 'method_not_allowed' });
    expect(wrong.headers.allow).toBe('POST');
    const big = await post(`${srv.url}/v1/chat/completions`, chat({ messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }));
    expectEnvelope(big, 413, { code: 'request_too_large' });
    // The server lives on.
    expect((await post(`${srv.url}/v1/chat/completions`, chat())).status).toBe(200);
  });

  it('queue full: 429 once max_concurrency run and max_queue wait', async () => {
    // The running request is a scripted slow answer (20 s at most, aborted at the end): a real
    // 400-token one could finish on a fast moment of a loaded machine before the queue is probed.
    const slow = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Hold the slot', reply: 'word '.repeat(1000) }], { delayMs: 20 });
    const busy = await serve({ ...model, engine: slow }, { maxConcurrency: 1, maxQueue: 1 });
    const ac = new AbortController();
    const long = { ...chat({ max_tokens: 1000, ignore_eos: true, messages: [{ role: 'user', content: 'Hold the slot' }] }), stream: true };
    const open = async () => {
      const res = await request(`${busy.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(long), headers: { 'content-type': 'application/json' }, signal: ac.signal });
      res.body.on('error', () => undefined);
      return res;
    };
    const first = await open();
    expect(first.statusCode).toBe(200);
    const second = open();
    // Queued once the server has read it (polled: a fixed wait can be too short on a loaded machine).
    await waitFor(async () => metric((await get(`${busy.url}/metrics`)).text, 'grpst_requests_waiting') === 1);
    const third = await post(`${busy.url}/v1/chat/completions`, chat());
    expectEnvelope(third, 429, { code: 'queue_full' });
    expect(third.headers['retry-after']).toBeDefined();
    const err = await busy.client.chat.completions.create(chat() as any).catch((e) => e);
    expect(err).toBeInstanceOf(APIError);
    expect(err.status).toBe(429);
    ac.abort();
    await second.catch(() => undefined);
    await busy.server.close();
  });
});

describe('readiness', () => {
  it('/health answers 503 until the engine is loaded, and requests wait for nothing', async () => {
    let resolve!: (e: GenerationEngine) => void;
    const pending = new Promise<GenerationEngine>((r) => (resolve = r));
    const early = await serve({ ...model, engine: pending });
    const h = await get(`${early.url}/health`);
    expect(h.status).toBe(503);
    expect(h.json.status).toBe('loading');
    // /ping is liveness: alive while loading (a liveness probe on /health would restart the load).
    const ping = await get(`${early.url}/ping`);
    expect([ping.status, ping.json.status]).toEqual([200, 'loading']);
    // /version (vLLM's) answers while loading too, with the package's version; /api/version
    // answers too, with the Ollama release whose API is served.
    const version = await get(`${early.url}/version`);
    expect(version.status).toBe(200);
    expect(version.json).toEqual({ version: JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version });
    expect((await get(`${early.url}/api/version`)).json).toEqual({ version: '0.12.11' });
    expectEnvelope(await post(`${early.url}/v1/chat/completions`, chat()), 503, { code: 'model_not_ready' });
    expect(metric((await get(`${early.url}/metrics`)).text, 'grpst_model_ready')).toBe(0);
    resolve(model.engine);
    await early.server.ready;
    expect((await get(`${early.url}/health`)).status).toBe(200);
    expect((await get(`${early.url}/ping`)).json.status).toBe('ready');
    expect((await post(`${early.url}/v1/chat/completions`, chat())).status).toBe(200);
    await early.server.close();

    const failed = await serve({ ...model, engine: Promise.reject(new Error('weights file is truncated')) });
    await failed.server.ready.catch(() => undefined);
    const f = await get(`${failed.url}/health`);
    expect(f.status).toBe(503);
    expect(f.json).toMatchObject({ status: 'failed', error: 'weights file is truncated' });
    expect(failed.logs.join('\n')).toContain('weights file is truncated');
    await failed.server.close();
  });
});

describe('API key', () => {
  it('every /v1 route and tokenize demand it; health and metrics as configured; never logged', async () => {
    const key = 'sk-test-0123456789';
    const locked = await serve(model, { apiKey: key, authMetrics: true });
    for (const [method, path] of [['POST', '/v1/chat/completions'], ['POST', '/v1/completions'], ['GET', '/v1/models'], ['POST', '/tokenize'], ['POST', '/detokenize'], ['GET', '/metrics']]) {
      const none = method === 'GET' ? await get(`${locked.url}${path}`) : await post(`${locked.url}${path}`, {});
      expectEnvelope(none, 401, { code: 'invalid_api_key' });
      const wrong = method === 'GET' ? await get(`${locked.url}${path}`, { authorization: `Bearer ${key}x` }) : await post(`${locked.url}${path}`, {}, { authorization: `Bearer ${key}x` });
      expect(wrong.status).toBe(401);
      expect(wrong.text).not.toContain(key);
    }
    expect((await get(`${locked.url}/health`)).status).toBe(200);
    expect((await get(`${locked.url}/metrics`, { authorization: `Bearer ${key}` })).status).toBe(200);
    const r = await locked.client.chat.completions.create(chat() as any);
    expect(r.choices.length).toBe(1);
    const models = await locked.client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(['qwen3']);
    expect(locked.logs.join('\n')).not.toContain(key);
    // The access log: one line per request, refused ones too, with its x-request-id; no probes.
    const traced = await post(`${locked.url}/v1/chat/completions`, chat(), { authorization: 'Bearer wrong-key-123', 'x-request-id': 'trace-me-42' });
    expect(traced.status).toBe(401);
    // Logged when the server has finished the response, which may be after the client has it.
    await vi.waitFor(() => expect(locked.logs).toContainEqual(expect.stringMatching(/^access: POST \/v1\/chat\/completions 401 \d+ ms trace-me-42$/)), { timeout: 5_000, interval: 10 });
    expect(locked.logs).toContainEqual(expect.stringMatching(/^access: GET \/v1\/models 200 \d+ ms req_[0-9a-f]{24}$/));
    expect(locked.logs.filter((l) => /^access: GET \/(health|metrics) /.test(l))).toEqual([]);
    await locked.server.close();
    const quiet = await serve(model, { accessLog: false });
    await quiet.client.models.list();
    await new Promise((r) => setTimeout(r, 50));
    expect(quiet.logs.filter((l) => l.startsWith('access: '))).toEqual([]);
    await quiet.server.close();
  });
});
