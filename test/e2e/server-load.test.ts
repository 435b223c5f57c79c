// Many streams at once, clients that leave, and draining: the batch changes nothing about a
// greedy answer, a disconnect frees its KV blocks at once, a drain loses no request.
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, loadTiny, metric, post, serve, sseFrames, waitFor, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
const ask = (i: number, maxTokens = 16) => ({
  model: 'qwen3',
  messages: [{ role: 'user' as const, content: `Question number ${i}: what comes after ${i * 7}?` }],
  temperature: 0,
  max_tokens: maxTokens,
  ignore_eos: true,
});

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

async function metrics(s: TestServer) {
  return (await get(`${s.url}/metrics`)).text;
}

describe('load', () => {
  it('32 concurrent streams give the same greedy answers as one at a time', async () => {
    const serial: string[] = [];
    for (let i = 0; i < 32; i++) serial.push((await srv.client.chat.completions.create(ask(i))).choices[0].message.content!);
    const concurrent = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        const s = await srv.client.chat.completions.create({ ...ask(i), stream: true });
        let text = '';
        for await (const c of s) text += c.choices[0]?.delta.content ?? '';
        return text;
      }),
    );
    expect(concurrent).toEqual(serial);
    expect(new Set(serial).size).toBeGreaterThan(1);
  });

  it('a client that disconnects mid-stream frees its sequence and KV blocks at once', async () => {
    await waitFor(async () => metric(await metrics(srv), 'grpst_engine_sequences_running') === 0);
    const baseline = metric(await metrics(srv), 'grpst_kv_blocks_used');
    const ac = new AbortController();
    const res = await request(`${srv.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...ask(1, 900), messages: [{ role: 'user', content: 'long '.repeat(60) }], stream: true }),
      signal: ac.signal,
    });
    res.body.on('error', () => undefined);
    let chunks = 0;
    for await (const _ of res.body) if (++chunks >= 5) break;
    const during = await metrics(srv);
    expect(metric(during, 'grpst_kv_blocks_used')).toBeGreaterThan(baseline);
    expect(metric(during, 'grpst_engine_sequences_running')).toBe(1);
    ac.abort();
    const gone = Date.now();
    await waitFor(async () => {
      const m = await metrics(srv);
      return metric(m, 'grpst_kv_blocks_used') <= baseline && metric(m, 'grpst_engine_sequences_running') === 0;
    }, 5_000);
    expect(Date.now() - gone).toBeLessThan(2_000);
    expect(metric(await metrics(srv), 'grpst_requests_running')).toBe(0);
    expect(await metrics(srv)).toMatch(/grpst_request_finished_total\{reason="cancelled"\} [1-9]/);
  });
});

describe('drain', () => {
  it('lets running streams finish, then closes; stragglers get an error frame and [DONE]', async () => {
    const own = await serve(model);
    // Long enough that the four overlap even when a loaded machine sends them far apart.
    const streams = Array.from({ length: 4 }, (_, i) => post(`${own.url}/v1/chat/completions`, { ...ask(i, 400), stream: true }));
    await waitFor(async () => metric(await metrics(own), 'grpst_requests_running') === 4);
    await own.server.drain(60_000);
    for (const r of await Promise.all(streams)) {
      const frames = sseFrames(r.text);
      expect(frames.at(-1)).toBe('[DONE]');
      expect(frames.at(-2).choices[0].finish_reason).toBe('length');
    }
    await expect(get(`${own.url}/health`)).rejects.toThrow();

    const short = await serve(model);
    const slow = post(`${short.url}/v1/chat/completions`, { ...ask(3, 900), stream: true });
    await waitFor(async () => metric(await metrics(short), 'grpst_requests_running') === 1);
    await short.server.drain(100);
    const frames = sseFrames((await slow).text);
    expect(frames.at(-1)).toBe('[DONE]');
    expect(frames.at(-2).error).toMatchObject({ code: 'cancelled', type: 'server_error' });
    expect(frames.at(-2).error.message).toContain('shutting down');
  });
});
