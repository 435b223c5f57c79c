// Requests sent at a rate (src/bench/arrivals.ts: arrivalTimes; src/bench/load.ts: runLoad with
// requestRate): Poisson or gamma arrivals that repeat from run to run, each request sent no earlier than it arrived, and never
// more in flight than the concurrency allows.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrivalTimes } from '../../src/bench/arrivals.js';
import { runLoad, tokenPrompt } from '../../src/bench/load.js';

describe('arrivalTimes', () => {
  it('starts at 0, only grows, repeats, and its gaps average 1 / rate', () => {
    const times = arrivalTimes(20_000, 5);
    expect(times[0]).toBe(0);
    expect(times.every((t, i) => i === 0 || t > times[i - 1])).toBe(true);
    expect(arrivalTimes(20_000, 5)).toEqual(times);
    const meanGap = times[times.length - 1] / (times.length - 1);
    expect(meanGap).toBeGreaterThan(0.2 * 0.97);
    expect(meanGap).toBeLessThan(0.2 * 1.03);
    // exponential gaps: about 1 / e of them longer than the mean
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    const longer = gaps.filter((g) => g > 0.2).length / gaps.length;
    expect(Math.abs(longer - Math.exp(-1))).toBeLessThan(0.02);
    // the same draws at another rate: every time scaled
    arrivalTimes(100, 10).forEach((t, i) => expect(t).toBeCloseTo(times[i] / 2, 12));
  });

  it('burstiness: gamma gaps of mean 1 / rate whose spread is 1 / sqrt(burstiness) of it', () => {
    const stats = (b: number) => {
      const times = arrivalTimes(40_000, 4, b);
      const gaps = times.slice(1).map((t, i) => t - times[i]);
      const mean = gaps.reduce((a, g) => a + g, 0) / gaps.length;
      const sd = Math.sqrt(gaps.reduce((a, g) => a + (g - mean) ** 2, 0) / gaps.length);
      // bunching: the share of gaps under a tenth of the mean
      const short = gaps.filter((g) => g < 0.025).length / gaps.length;
      // bursty gaps can be below a double's resolution at the run's time: arrivals at the same instant
      return { times, mean, cv: sd / mean, short, ordered: gaps.every((g) => g >= 0) };
    };
    for (const b of [0.25, 0.5, 1, 2, 4]) {
      const s = stats(b);
      expect(s.times[0], `burstiness ${b}`).toBe(0);
      expect(s.ordered, `burstiness ${b}`).toBe(true);
      expect(Math.abs(s.mean - 0.25) / 0.25, `burstiness ${b}: mean gap ${s.mean}`).toBeLessThan(0.03);
      expect(Math.abs(s.cv - 1 / Math.sqrt(b)) * Math.sqrt(b), `burstiness ${b}: cv ${s.cv}`).toBeLessThan(0.05);
      expect(arrivalTimes(200, 4, b), `burstiness ${b} repeats`).toEqual(s.times.slice(0, 200));
    }
    // burstiness 1 is the Poisson schedule itself
    expect(arrivalTimes(500, 4, 1)).toEqual(arrivalTimes(500, 4));
    // bursty arrivals bunch: far more near-simultaneous pairs than at 1, far fewer at 4
    // (a tenth of the mean gap: 1 - e^-0.1 = 9.5% of exponential gaps)
    expect(stats(0.25).short).toBeGreaterThan(0.4);
    expect(Math.abs(stats(1).short - (1 - Math.exp(-0.1)))).toBeLessThan(0.01);
    expect(stats(4).short).toBeLessThan(0.001);
  });
});

describe('runLoad with a request rate', () => {
  // A server that streams its tokens 20 ms apart (long enough for a capped pair to overlap on a
  // loaded machine) and counts the requests it holds at once.
  let inFlight = 0;
  let most = 0;
  let url = '';
  const server = http.createServer((req, res) => {
    if (req.url !== '/v1/completions') return void res.writeHead(404).end(); // no engine counters (/metrics)
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      const n = (JSON.parse(body) as { max_tokens: number }).max_tokens;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      for (let i = 0; i < n; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        res.write(`data: ${JSON.stringify({ choices: [{ text: 'x' }] })}\n\n`);
      }
      inFlight--;
      res.end(`data: ${JSON.stringify({ choices: [], usage: { completion_tokens: n } })}\n\ndata: [DONE]\n\n`);
    });
  });
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('sends each request once it has arrived', async () => {
    most = 0;
    const rate = 50;
    const r = await runLoad({ url, model: 'm', concurrency: 16, requests: 12, prompt: tokenPrompt(4), outputTokens: 3, requestRate: rate });
    const arrive = arrivalTimes(12, rate);
    expect(r.timings.map((t) => t.index).sort((a, b) => a - b)).toEqual([...Array(12).keys()]);
    for (const t of r.timings) {
      expect(t.ok).toBe(true);
      expect(t.sent).toBeGreaterThanOrEqual(arrive[t.index] - 0.002); // timers may fire a ms early
    }
    expect(r.wallSeconds).toBeGreaterThanOrEqual(arrive[11]);
  });

  it('holds no more requests in flight than the concurrency, however fast they arrive', async () => {
    most = 0;
    const r = await runLoad({ url, model: 'm', concurrency: 2, requests: 10, prompt: tokenPrompt(4), outputTokens: 4, requestRate: 10_000 });
    expect(r.timings.every((t) => t.ok)).toBe(true);
    expect(most).toBe(2);
  });
});
