// vLLM's priority field on the real server: under the conf's scheduling_policy: priority a
// request with a lower value runs before those queued ahead of it, both where the server's own
// admission queue holds requests (max_concurrency) and where the engine's does (max_batch_size);
// first come, first served, any priority but 0 is a 400 naming the conf key that would honour it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, loadTiny, metric, post, serve, waitFor, type TestServer, type TinyModel } from './server-harness.js';

const models: TinyModel[] = [];
const servers: TestServer[] = [];
let fcfs: TestServer;

beforeAll(async () => {
  const model = await loadTiny('tiny-a');
  models.push(model);
  fcfs = await serve(model);
  servers.push(fcfs);
});

afterAll(async () => {
  for (const s of servers) await s.server.close();
  for (const m of models) await m.engine.close();
});

const body = (priority: number | undefined, maxTokens: number) => ({
  model: 'qwen3',
  prompt: 'The sea is',
  max_tokens: maxTokens,
  temperature: 0,
  ignore_eos: true,
  ...(priority === undefined ? {} : { priority }),
});

describe('priority', () => {
  it('first come, first served: 0 is accepted, any other value is refused with the conf key to set', async () => {
    expect(models[0].engine.info.schedulingPolicy).toBe('fcfs');
    const zero = await post(`${fcfs.url}/v1/completions`, body(0, 2));
    expect(zero.status).toBe(200);
    for (const [path, extra] of [
      ['/v1/completions', body(3, 2)],
      ['/v1/chat/completions', { model: 'qwen3', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, priority: -1 }],
      ['/v1/responses', { model: 'qwen3', input: 'Hi', max_output_tokens: 2, priority: 2 }],
    ] as const) {
      const r = await post(`${fcfs.url}${path}`, extra);
      expect(r.status, path).toBe(400);
      expect(r.json.error, path).toMatchObject({ param: 'priority', code: 'unsupported_parameter', type: 'invalid_request_error' });
      expect(r.json.error.message).toContain('scheduling_policy: priority');
    }
    const float = await post(`${fcfs.url}/v1/completions`, body(0.5, 2));
    expect(float.status).toBe(400);
  });

  // Where the waiting happens: the server's admission queue (one request generates at a time),
  // or the engine's (one sequence per step).
  for (const queue of ['admission', 'engine'] as const) {
    it(`runs queued requests by priority, then arrival, in the ${queue} queue`, async () => {
      const model = await loadTiny('tiny-a', { schedulingPolicy: 'priority', ...(queue === 'engine' ? { maxBatchSize: 1 } : {}) });
      models.push(model);
      const srv = await serve(model, queue === 'admission' ? { maxConcurrency: 1 } : {});
      servers.push(srv);
      // The server's queue as /metrics shows it; the engine's as its stats count it.
      const gauge = async (name: string) => metric((await get(`${srv.url}/metrics`)).text, name);
      const waiting = async () => (queue === 'admission' ? gauge('grpst_requests_waiting') : model.engine.stats().waiting);
      const running = async () => (queue === 'admission' ? gauge('grpst_requests_running') : model.engine.stats().running);
      const order: string[] = [];
      const send = (name: string, priority: number | undefined, maxTokens: number) =>
        post(`${srv.url}/v1/completions`, body(priority, maxTokens)).then((r) => {
          expect(r.status, JSON.stringify(r.json)).toBe(200);
          order.push(name);
        });
      // The first holds the only turn (900 tokens: long enough to outlast the four sends on a
      // loaded machine); each of the others is queued before the next is sent.
      const all = [send('first', undefined, 900)];
      await waitFor(async () => (await running()) === 1);
      const queued: [string, number | undefined][] = [['b', undefined], ['c', 5], ['d', -3], ['e', -3]];
      for (const [i, [name, priority]] of queued.entries()) {
        all.push(send(name, priority, 2));
        await waitFor(async () => (await waiting()) === i + 1);
      }
      await Promise.all(all);
      // 'first' held the turn all along (its long answer's reply may reach the client after the
      // short ones that ran next, on a busy machine): the queued ones ran by priority, then arrival.
      expect(order.filter((name) => name !== 'first')).toEqual(['d', 'e', 'b', 'c']);
    });
  }
});
