// Clients that go away, 1,000 times, at every point of a request's life: while the body is
// still being uploaded, while queued for admission, before the first token, in the middle of a
// stream, and in the middle of a non-streamed answer. Afterwards /metrics shows no request
// slot, engine sequence or KV block still held, and the server answers as before.
import net from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, loadTiny, metric, post, serve, waitFor, type TestServer, type TinyModel } from '../e2e/server-harness.js';

const total = 1_000;
const wave = 25;

let model: TinyModel;
let srv: TestServer;
const ask = (i: number, maxTokens: number, stream: boolean) =>
  JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content: `Disconnect test ${i}: ${'words '.repeat(i % 40)}` }], max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream });

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  // Few slots, so every wave has requests waiting in the admission queue when their clients leave.
  srv = await serve(model, { maxConcurrency: 8, maxQueue: 64 });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

async function scrape() {
  const text = (await get(`${srv.url}/metrics`)).text;
  return {
    running: metric(text, 'grpst_requests_running'),
    waiting: metric(text, 'grpst_requests_waiting'),
    sequences: metric(text, 'grpst_engine_sequences_running'),
    kv: metric(text, 'grpst_kv_blocks_used'),
    cancelled: Number(/^grpst_request_finished_total\{reason="cancelled"\} (\S+)$/m.exec(text)?.[1] ?? 0),
  };
}

type Leave = 'upload' | 'queued' | 'first-token' | 'mid-stream' | 'mid-response';
const kinds: Leave[] = ['upload', 'queued', 'first-token', 'mid-stream', 'mid-stream', 'mid-response'];

/** One client that leaves at the given point; resolves once it has gone. */
async function leave(kind: Leave, i: number, agent: Agent): Promise<void> {
  if (kind === 'upload') {
    // Headers and half the body, then the socket is destroyed.
    const body = ask(i, 4, true);
    await new Promise<void>((resolve) => {
      const sock = net.connect(Number(new URL(srv.url).port), '127.0.0.1', () => {
        sock.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, body.length >> 1)}`);
        setTimeout(() => sock.destroy(), 5);
      });
      sock.on('close', () => resolve());
      sock.on('error', () => resolve());
    });
    return;
  }
  const ac = new AbortController();
  const stream = kind !== 'mid-response';
  const pending = request(`${srv.url}/v1/chat/completions`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: ask(i, 900, stream), signal: ac.signal });
  if (kind === 'queued' || kind === 'mid-response') {
    // Gone while waiting for a slot or for the whole answer: no byte of the answer was read.
    await new Promise((r) => setTimeout(r, kind === 'queued' ? 1 : 30 + (i % 50)));
    ac.abort();
    await pending.then((res) => res.body.text(), () => undefined).catch(() => undefined);
    return;
  }
  try {
    const res = await pending;
    res.body.on('error', () => undefined);
    let chunks = 0;
    // The first chunk is the role; later ones carry tokens.
    const want = kind === 'first-token' ? 1 : 3 + (i % 8);
    for await (const _ of res.body) if (++chunks >= want) break;
  } catch {
    // Refused (429) or reset: the client is gone either way.
  } finally {
    ac.abort();
  }
}

describe('clients that disconnect', () => {
  it(`${total} disconnects at every stage leak no slot, sequence or KV block`, async () => {
    const normal = { model: 'qwen3', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 16, temperature: 0, ignore_eos: true };
    const before = (await post(`${srv.url}/v1/chat/completions`, normal)).json.choices[0].message.content as string;
    await waitFor(async () => (await scrape()).sequences === 0);
    const baseline = await scrape();
    const agent = new Agent({ connections: wave * 2 });
    let peakSequences = 0;
    let peakWaiting = 0;
    const counts = new Map<Leave, number>();
    for (let start = 0; start < total; start += wave) {
      const clients = Array.from({ length: wave }, (_, k) => {
        const i = start + k;
        const kind = kinds[i % kinds.length];
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        return leave(kind, i, agent);
      });
      await new Promise((r) => setTimeout(r, 15));
      const during = await scrape();
      peakSequences = Math.max(peakSequences, during.sequences);
      peakWaiting = Math.max(peakWaiting, during.waiting);
      await Promise.all(clients);
    }
    await agent.close();
    expect([...counts.values()].reduce((a, b) => a + b, 0)).toBe(total);

    // Everything a client held is given back, promptly.
    await waitFor(async () => {
      const m = await scrape();
      return m.running === 0 && m.waiting === 0 && m.sequences === 0 && m.kv <= baseline.kv;
    }, 20_000);
    const after = await scrape();
    console.log(`disconnects: ${JSON.stringify({ total, kinds: Object.fromEntries(counts), peakSequences, peakWaiting, cancelled: after.cancelled - baseline.cancelled, kvBefore: baseline.kv, kvAfter: after.kv })}`);
    // The load did reach the engine and the queue, and the engine saw the cancellations.
    expect(peakSequences).toBeGreaterThan(0);
    expect(after.cancelled - baseline.cancelled).toBeGreaterThan(total / 3);

    // All 8 slots are free: 16 requests at once all finish (a leaked slot would leave some waiting forever).
    const answers = await Promise.all(Array.from({ length: 16 }, () => post(`${srv.url}/v1/chat/completions`, normal)));
    for (const a of answers) expect(a.json.choices[0].message.content).toBe(before);
    expect(srv.logs.filter((l) => !l.startsWith('model qwen3 ready') && !l.startsWith('access: '))).toEqual([]);
  });
});
