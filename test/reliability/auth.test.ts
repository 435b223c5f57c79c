// The API key, beyond the e2e checks: every route of the route table that reaches the model
// demands it (none can be added without a guard), /health and /metrics in all four settings,
// path spellings that could slip past an exact-match router, keys of every length and form,
// and the key kept out of the server's log.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routes } from '../../src/server/routes/index.js';
import { webUiRoutes } from '../../src/server/webui/routes.js';
import { get, loadTiny, post, serve, type TestServer, type TinyModel } from '../e2e/server-harness.js';

const key = 'sk-reliability-0123456789abcdef';
let model: TinyModel;
let locked: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  locked = await serve(model, { apiKey: key, authHealth: false, authMetrics: false });
});

afterAll(async () => {
  await locked?.server.close();
  await model?.engine.close();
});

/** A body each POST route accepts, so "not 401" with the key means it really served. */
const validBody: Record<string, unknown> = {
  '/v1/chat/completions': { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 },
  '/v1/completions': { model: 'qwen3', prompt: 'hi', max_tokens: 1 },
  '/v1/responses': { model: 'qwen3', input: 'hi', max_output_tokens: 1 },
  '/v1/messages': { model: 'qwen3', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] },
  '/v1/messages/count_tokens': { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }] },
  '/api/chat': { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { num_predict: 1 } },
  '/api/generate': { model: 'qwen3', prompt: 'hi', stream: false, options: { num_predict: 1 } },
  '/api/show': { model: 'qwen3' },
  '/api/embed': { model: 'qwen3', input: 'hi' },
  '/api/embeddings': { model: 'qwen3', prompt: 'hi' },
  '/v1/embeddings': { model: 'qwen3', input: 'hi' },
  '/v1/rerank': { model: 'qwen3', query: 'hi', documents: ['hello'] },
  '/v2/rerank': { model: 'qwen3', query: 'hi', documents: ['hello'] },
  '/rerank': { model: 'qwen3', query: 'hi', documents: ['hello'] },
  '/v1/score': { model: 'qwen3', text_1: 'hi', text_2: 'hello' },
  '/score': { model: 'qwen3', text_1: 'hi', text_2: 'hello' },
  '/tokenize': { prompt: 'hi' },
  '/detokenize': { tokens: [1, 2] },
};

/** Ollama's model-management routes refuse (400) whatever the body, once the key lets the request in. */
const refusedWithKey = new Set(['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete']);
/** vLLM's runtime LoRA routes: off on this server (allow_runtime_lora_updating), a 404 once the key lets the request in. */
const offWithKey = new Set(['/v1/load_lora_adapter', '/v1/unload_lora_adapter']);
const served = (path: string) => (refusedWithKey.has(path) ? 400 : offWithKey.has(path) ? 404 : 200);

async function call(method: string, route: string, headers: Record<string, string> = {}, s: TestServer = locked) {
  let path = route.replace('{model}', 'qwen3'); // the served model: with the key it is a 200
  // A stored response of its own for each call (a DELETE removes it), made with the key.
  if (path.includes('{id}')) {
    const made = await post(`${s.url}/v1/responses`, validBody['/v1/responses'], { authorization: `Bearer ${key}` });
    path = path.replace('{id}', made.json.id);
  }
  if (method === 'POST') return post(`${s.url}${path}`, validBody[path] ?? {}, headers);
  if (method === 'DELETE') return del(`${s.url}${path}`, headers);
  return get(`${s.url}${path}`, headers);
}

async function del(url: string, headers: Record<string, string>) {
  const res = await request(url, { method: 'DELETE', headers });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: JSON.parse(text) };
}

describe('API key', () => {
  it('every route that reaches the model or the tokenizer is guarded, in the table itself', () => {
    const modelRoutes = routes.filter((r) => r.path.startsWith('/v1/') || r.path.startsWith('/v2/') || r.path.startsWith('/api/') || /tokenize|rerank|score/.test(r.path));
    expect([...new Set(modelRoutes.map((r) => r.path))].sort()).toEqual(['/api/chat', '/api/copy', '/api/create', '/api/delete', '/api/embed', '/api/embeddings', '/api/generate', '/api/ps', '/api/pull', '/api/push', '/api/show', '/api/tags', '/api/version', '/detokenize', '/rerank', '/score', '/tokenize', '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/load_lora_adapter', '/v1/messages', '/v1/messages/count_tokens', '/v1/models', '/v1/models/{model}', '/v1/rerank', '/v1/responses', '/v1/responses/{id}', '/v1/responses/{id}/input_items', '/v1/score', '/v1/unload_lora_adapter', '/v2/rerank']);
    for (const r of modelRoutes) expect(r.guard, r.path).toBe('api');
    // The web page's static files need no key (the page asks the user for it); they reach no model.
    for (const r of webUiRoutes()) expect(r.path.startsWith('/v1/') || /tokenize/.test(r.path)).toBe(false);
  });

  it('no key, a wrong key, a key of any length or form: 401 on every guarded route; the key: served', async () => {
    const wrongs = ['', ' ', 'sk', key.slice(0, -1), `${key}x`, key.toUpperCase(), `${key} ${key}`, 'k'.repeat(10_000), 'clé\u00ff', `Basic ${Buffer.from(`user:${key}`).toString('base64')}`];
    for (const r of routes.filter((x) => x.guard === 'api')) {
      expect((await call(r.method, r.path)).status, r.path).toBe(401);
      for (const w of wrongs) {
        const res = await call(r.method, r.path, { authorization: w.startsWith('Basic') ? w : `Bearer ${w}` });
        expect(res.status, `${r.path} with ${w.slice(0, 20)}`).toBe(401);
        // Anthropic's routes answer in its envelope, whose error type its SDK maps to AuthenticationError.
        if (r.path.startsWith('/api/')) expect(res.json).toEqual({ error: expect.stringContaining('API key') });
        else if (r.errorEnvelope) expect(res.json).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
        else expect(res.json.error.code).toBe('invalid_api_key');
        expect(res.text).not.toContain(key);
      }
      expect((await call(r.method, r.path, { 'x-api-key': `${key}-` })).status).toBe(401);
      expect((await call(r.method, r.path, { authorization: `Bearer ${key}` })).status, r.path).toBe(served(r.path));
      expect((await call(r.method, r.path, { authorization: `bearer   ${key}  ` })).status, r.path).toBe(served(r.path));
      expect((await call(r.method, r.path, { 'x-api-key': key })).status, r.path).toBe(served(r.path));
    }
    // HEAD is served as GET, behind the same guard.
    const head = await fetch(`${locked.url}/v1/models`, { method: 'HEAD' });
    expect(head.status).toBe(401);
  });

  it('path spellings an exact-match router might miss never serve without the key', async () => {
    for (const p of ['/v1/models/', '/v1/models?x=1', '//v1/models', '/V1/models', '/v1/./models', '/v1/%6dodels', '/v1/models%00', '/v1/models#x', '/v1//models', '/tokenize/']) {
      const r = await get(`${locked.url}${p}`);
      expect([401, 404, 405], p).toContain(r.status);
      if (r.status !== 401) expect(r.text).not.toContain('"object":"list"');
    }
  });

  it('/health and /metrics demand the key exactly as configured', async () => {
    for (const authHealth of [false, true]) {
      for (const authMetrics of [false, true]) {
        const s = await serve(model, { apiKey: key, authHealth, authMetrics });
        expect((await get(`${s.url}/health`)).status).toBe(authHealth ? 401 : 200);
        expect((await get(`${s.url}/metrics`)).status).toBe(authMetrics ? 401 : 200);
        expect((await get(`${s.url}/health`, { authorization: `Bearer ${key}` })).status).toBe(200);
        expect((await get(`${s.url}/metrics`, { authorization: `Bearer ${key}` })).status).toBe(200);
        await s.server.close();
      }
    }
  });

  it('a browser preflight asking for the openai SDK\'s headers is allowed without the key; every answer carries x-request-id', async () => {
    const asked = 'authorization, content-type, x-stainless-lang, x-stainless-package-version, x-stainless-os, x-stainless-retry-count, openai-organization';
    const pre = await fetch(`${locked.url}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST', 'access-control-request-headers': asked },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-headers')).toBe(asked);
    expect(pre.headers.get('access-control-allow-origin')).toBe('*');
    const bare = await fetch(`${locked.url}/v1/models`, { method: 'OPTIONS' });
    expect(bare.headers.get('access-control-allow-headers')).toBe('authorization, content-type, x-api-key');

    const mine = await get(`${locked.url}/v1/models`, { authorization: `Bearer ${key}`, 'x-request-id': 'job-42.step_7' });
    expect(mine.headers['x-request-id']).toBe('job-42.step_7');
    const refused = await get(`${locked.url}/v1/models`);
    expect(refused.status).toBe(401);
    expect(refused.headers['x-request-id']).toMatch(/^req_[0-9a-f]{24}$/);
    const odd = await get(`${locked.url}/health`, { 'x-request-id': 'not a token' });
    expect(odd.headers['x-request-id']).toMatch(/^req_[0-9a-f]{24}$/);
    expect(refused.headers['access-control-expose-headers']).toContain('x-request-id');
    // The official client reads it as the request id of what it returns.
    const page = await locked.client.models.list().withResponse();
    expect(page.request_id).toMatch(/^req_[0-9a-f]{24}$/);
  });

  it('the key never reaches the log', async () => {
    expect(locked.logs.length).toBeGreaterThan(0);
    expect(locked.logs.join('\n')).not.toContain(key);
  });
});
