// A KV pool smaller than max_seq_len (as one sized from free memory can be): a request that
// fits max_seq_len but not the pool is refused up front as past the context, never admitted to
// generate until the cache is full and then fail with a 500; what the pool holds is served to
// the end, and /v1/models lists that length.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, loadTiny, metric, post, serve, type TestServer, type TinyModel } from '../e2e/server-harness.js';

// 16 blocks of 16 tokens: 256 tokens, an eighth of max_seq_len.
const poolTokens = 256;
const maxSeqLen = 2048;

let model: TinyModel;
let srv: TestServer;
const ids = (n: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 7919) % 50000));

beforeAll(async () => {
  model = await loadTiny('tiny-a', { maxSeqLen, maxTokensInPagedKvCache: poolTokens, maxBatchSize: 4 });
  srv = await serve(model);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

describe('a KV pool smaller than max_seq_len', () => {
  it('limits requests to what the pool holds: refused with 400 past it, served to the end within it', async () => {
    expect(model.engine.info.maxSeqLen).toBe(maxSeqLen);

    // Within max_seq_len, past the pool: the answer would outgrow the cache midway.
    const long = await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: ids(10), max_tokens: 400, ignore_eos: true });
    expect(long.status, long.text).toBe(400);
    expect(long.json.error.code).toBe('context_length_exceeded');
    expect(long.json.error.message).toContain(`maximum context length is ${poolTokens} tokens`);
    // A prompt the pool cannot hold at all.
    const prompt = await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: ids(poolTokens + 20), max_tokens: 1 });
    expect(prompt.status, prompt.text).toBe(400);
    expect(prompt.json.error.code).toBe('context_length_exceeded');
    const streamed = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 500, stream: true });
    expect(streamed.status, streamed.text).toBe(400);

    // Exactly the pool: served to the end, streamed or not.
    const fits = await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: ids(10), max_tokens: poolTokens - 10, ignore_eos: true });
    expect(fits.status, fits.text).toBe(200);
    expect(fits.json.choices[0].finish_reason).toBe('length');
    expect(fits.json.usage.total_tokens).toBe(poolTokens);
    const fitsStream = await post(`${srv.url}/v1/completions`, { model: 'qwen3', prompt: ids(10), max_tokens: poolTokens - 10, ignore_eos: true, stream: true });
    expect(fitsStream.text).not.toContain('"error"');
    expect(fitsStream.text).toContain('"finish_reason":"length"');
    expect(fitsStream.text).toContain('data: [DONE]');
    // No max_tokens: the budget is what is left of the pool, not of max_seq_len.
    const rest = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], ignore_eos: true });
    expect(rest.status, rest.text).toBe(200);
    expect(rest.json.choices[0].finish_reason).toBe('length');
    expect(rest.json.usage.total_tokens).toBe(poolTokens);

    // The length that can be served is the one listed and logged.
    expect((await get(`${srv.url}/v1/models`)).json.data[0].max_model_len).toBe(poolTokens);
    expect(srv.logs.join('\n')).toContain(`the KV cache holds ${poolTokens} tokens, fewer than the engine's max_seq_len ${maxSeqLen}`);
    const tokenized = await post(`${srv.url}/tokenize`, { model: 'qwen3', prompt: 'hello' });
    expect(tokenized.json.max_model_len).toBe(poolTokens);
    const metrics = (await get(`${srv.url}/metrics`)).text;
    expect(metric(metrics, 'grpst_kv_blocks_used')).toBe(0);
    expect(metrics).not.toMatch(/grpst_request_finished_total\{reason="error"\}/);
    // A 500 in the access log is its status (`access: POST /path 500 12 ms ...`), not a latency of 500 ms.
    expect(srv.logs.filter((l) => /^access: \S+ \S+ 500 |Generation failed/.test(l))).toEqual([]);
  });
});
