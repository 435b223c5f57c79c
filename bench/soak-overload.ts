// The soak's overload check: past max_concurrency + max_queue the excess is turned away with 429
// at once, nothing hangs, and the server comes back. Long streams first fill the generating slots
// and the queue, and the server's own gauges must show both full before the excess is sent. (A
// burst of short answers sent "at once" proves nothing on a loaded machine: on 2 busy cores the
// server answered all 388 of one such burst, draining it faster than the client opened its
// connections.) The held streams are dropped afterwards, which the soak's return to baseline then
// covers too.
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';

export interface OverloadOptions {
  url: string;
  headers: Record<string, string>;
  /** A chat request's body: prompt `i`, `maxTokens` tokens whatever the model says (ignore_eos). */
  body: (i: number, maxTokens: number, stream: boolean) => string;
  maxConcurrency: number;
  maxQueue: number;
  /** The server's admission gauges (grpst_requests_running / grpst_requests_waiting). */
  gauges: () => Promise<{ running: number; waiting: number }>;
  /** Requests sent past the full queue. */
  excess?: number;
}

export interface OverloadReport {
  limits: { maxConcurrency: number; maxQueue: number };
  /** The gauges once the held streams filled both, or null when they never did. */
  held: { running: number; waiting: number } | null;
  /** The excess requests and their outcomes. */
  sent: number;
  ok: number;
  rejected429: number;
  other: number;
  /** From sending the excess until the last of it was answered. */
  seconds: number;
}

// Long enough that no held stream ends while the excess is sent (~5 s of steps for the tiny
// model at 16 rows on 2 cores, more under load), short enough for the KV pool of the soak's
// engine to take a full batch of them under guaranteed_no_evict.
const heldTokens = 2048;
const fillDeadlineMs = 60_000;
// An excess request that was let in (a held stream ended first) waits behind the held streams
// until they are dropped; this long is waited for the rest before dropping them.
const excessWaitMs = 15_000;

export async function overloadBurst(o: OverloadOptions): Promise<OverloadReport> {
  const holdCount = o.maxConcurrency + o.maxQueue;
  const sent = o.excess ?? 100;
  // One connection per request, so the client queues none of them itself.
  const dispatcher = new Agent({ connections: holdCount + sent, headersTimeout: 300_000, bodyTimeout: 300_000 });
  const holding = new AbortController();
  setMaxListeners(holdCount + 1, holding.signal); // one listener per held request
  try {
    const holders = Array.from({ length: holdCount }, async (_, i) => {
      try {
        const res = await request(`${o.url}/v1/chat/completions`, { method: 'POST', dispatcher, headers: o.headers, signal: holding.signal, body: o.body(i, heldTokens, true) });
        for await (const _ of res.body);
      } catch {
        // Dropped on purpose below.
      }
    });
    let held: OverloadReport['held'] = null;
    const until = performance.now() + fillDeadlineMs;
    while (!held && performance.now() < until) {
      const g = await o.gauges();
      if (g.running >= o.maxConcurrency && g.waiting >= o.maxQueue) held = { running: g.running, waiting: g.waiting };
      else await sleep(50);
    }
    const t0 = performance.now();
    let seconds = 0;
    const excess = Promise.all(
      Array.from({ length: sent }, async (_, i) => {
        try {
          const res = await request(`${o.url}/v1/chat/completions`, { method: 'POST', dispatcher, headers: o.headers, body: o.body(i, 8, false) });
          await res.body.text();
          return res.statusCode;
        } catch {
          return -1;
        } finally {
          seconds = (performance.now() - t0) / 1000;
        }
      }),
    );
    // (unreferenced: a timer left pending once the excess is answered must not hold the process)
    await Promise.race([excess, sleep(excessWaitMs, undefined, { ref: false })]);
    holding.abort();
    const statuses = await excess;
    await Promise.all(holders);
    return {
      limits: { maxConcurrency: o.maxConcurrency, maxQueue: o.maxQueue },
      held,
      sent,
      ok: statuses.filter((s) => s === 200).length,
      rejected429: statuses.filter((s) => s === 429).length,
      other: statuses.filter((s) => s !== 200 && s !== 429).length,
      seconds: Number(seconds.toFixed(2)),
    };
  } finally {
    holding.abort();
    await dispatcher.close();
  }
}

/** What went wrong with the overload check, or an empty list. */
export function overloadProblems(r: OverloadReport): string[] {
  const { maxConcurrency, maxQueue } = r.limits;
  const problems: string[] = [];
  if (!r.held) problems.push(`${maxConcurrency + maxQueue} long streams never filled max_concurrency ${maxConcurrency} + max_queue ${maxQueue} (the server's gauges)`);
  else if (r.rejected429 === 0) problems.push('no request past the full queue got 429');
  if (r.other > 0) problems.push(`${r.other} requests past the full queue got neither an answer nor a 429`);
  return problems;
}
