// The soak: `concurrency` clients send streaming and non-streaming chat requests of mixed prompt
// and answer lengths to a running server for `seconds`, and every answer is checked against a
// reference taken before the load (greedy decoding gives the same text alone or in a batch), so
// a truncated, cut or corrupted answer is a failure, not just a missing one. Then the server must
// be back where it started (KV blocks, sequences, resident memory) and a burst past
// max_concurrency + max_queue must get 429s, never a hang.
import { Agent, request } from 'undici';
import { percentile } from '../src/bench/load.js';
import { rssMiB } from './soak-daemon.js';
import { overloadBurst, overloadProblems, type OverloadReport } from './soak-overload.js';

export interface SoakOptions {
  url: string;
  apiKey?: string;
  /** The server's pid, for its resident memory. */
  pid: number;
  seconds: number;
  concurrency: number;
  /** The server's admission limits: the overload burst goes this far past them. */
  maxConcurrency: number;
  maxQueue: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  seconds: number;
  concurrency: number;
  requests: number;
  streamed: number;
  failures: number;
  /** Answers that came back but differ from the reference (cut short, wrong text, no [DONE]). */
  truncated: number;
  samples: string[];
  generatedTokens: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  streamTtftMs: { p50: number; p99: number };
  /** before: after the warm-up; mid: halfway through the soak, once the working set has formed; after: idle after it. */
  rssMiB: { before: number; mid: number; peak: number; after: number };
  kvBlocks: { before: number; peak: number; after: number; total: number };
  sequencesAfter: number;
  overload: OverloadReport;
  /** After the overload: idle, its KV blocks back, /health 200 and the same answer as before the load. */
  healthyAfter: boolean;
}

interface Job {
  prompt: number;
  maxTokens: number;
  stream: boolean;
}

interface Reference {
  content: string;
  finish: string;
  tokens: number;
}

/** Prompts from a few words to a few hundred tokens, each its own conversation. */
const prompts = Array.from({ length: 12 }, (_, i) => {
  const words = ['the', 'quick', 'server', 'keeps', 'every', 'answer', 'whole', 'under', 'load', 'and', 'drains', 'cleanly'];
  const length = [3, 12, 40, 120, 250, 400][i % 6];
  return `Request family ${i}: ${Array.from({ length }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' ')}. Continue.`;
});
const answerLengths = [1, 8, 32, 96];

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => undefined);
  const agent = new Agent({ connections: o.concurrency + 64, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) };
  const body = (j: Job) =>
    JSON.stringify({
      model: 'qwen3',
      messages: [{ role: 'user', content: prompts[j.prompt] }],
      max_tokens: j.maxTokens,
      temperature: 0,
      ignore_eos: true,
      stream: j.stream,
      ...(j.stream ? { stream_options: { include_usage: true } } : {}),
    });
  const metrics = async () => {
    const text = await (await request(`${o.url}/metrics`, { dispatcher: agent, headers })).body.text();
    const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return { kv: get('grpst_kv_blocks_used'), kvTotal: get('grpst_kv_blocks_total'), seqs: get('grpst_engine_sequences_running'), running: get('grpst_requests_running'), waiting: get('grpst_requests_waiting') };
  };

  /** One request: its answer as the reference compares it, or why it failed. */
  const send = async (j: Job): Promise<{ ok: true; answer: Reference; ms: number; ttftMs?: number } | { ok: false; why: string }> => {
    const t0 = performance.now();
    try {
      const res = await request(`${o.url}/v1/chat/completions`, { method: 'POST', dispatcher: agent, headers, body: body(j) });
      if (res.statusCode !== 200) return { ok: false, why: `HTTP ${res.statusCode}: ${(await res.body.text()).slice(0, 200)}` };
      if (!j.stream) {
        const r = (await res.body.json()) as any;
        return { ok: true, ms: performance.now() - t0, answer: { content: r.choices[0].message.content, finish: r.choices[0].finish_reason, tokens: r.usage.completion_tokens } };
      }
      let buf = '';
      let content = '';
      let finish = '';
      let tokens = -1;
      let done = false;
      let ttftMs: number | undefined;
      for await (const chunk of res.body) {
        buf += chunk.toString();
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          if (!frame.startsWith('data: ')) return { ok: false, why: `not an SSE frame: ${frame.slice(0, 80)}` };
          const data = frame.slice(6);
          if (done) return { ok: false, why: 'data after [DONE]' };
          if (data === '[DONE]') {
            done = true;
            continue;
          }
          const msg = JSON.parse(data);
          if (msg.error) return { ok: false, why: `error frame: ${msg.error.message}` };
          const c = msg.choices?.[0];
          if (c?.delta?.content) {
            ttftMs ??= performance.now() - t0;
            content += c.delta.content;
          }
          if (c?.finish_reason) finish = c.finish_reason;
          if (msg.usage) tokens = msg.usage.completion_tokens;
        }
      }
      if (!done) return { ok: false, why: 'the stream ended without [DONE]' };
      return { ok: true, ms: performance.now() - t0, ttftMs, answer: { content, finish, tokens } };
    } catch (err) {
      return { ok: false, why: `no answer: ${(err as Error).message}` };
    }
  };

  // References, one request at a time per job kind, before any load.
  const refs = new Map<string, Reference>();
  const key = (j: Job) => `${j.prompt}/${j.maxTokens}`;
  const jobs = prompts.flatMap((_, prompt) => answerLengths.map((maxTokens) => ({ prompt, maxTokens, stream: false })));
  for (let i = 0; i < jobs.length; i += 8) {
    await Promise.all(
      jobs.slice(i, i + 8).map(async (j) => {
        const r = await send(j);
        if (!r.ok) throw new Error(`reference request failed: ${r.why}`);
        refs.set(key(j), r.answer);
      }),
    );
  }
  // One round at full concurrency so buffers and pools reach their working size before the baseline.
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => send({ ...jobs[i % jobs.length], stream: i % 2 === 0 })));
  const idle = async () => {
    for (let i = 0; i < 300; i++) {
      const m = await metrics();
      if (m.running === 0 && m.waiting === 0 && m.seqs === 0) return m;
      await new Promise((r) => setTimeout(r, 100));
    }
    return metrics();
  };
  const before = await idle();
  await new Promise((r) => setTimeout(r, 1000));
  const rssBefore = rssMiB(o.pid);
  log(`baseline: rss ${rssBefore.toFixed(1)} MiB, kv blocks ${before.kv}/${before.kvTotal}`);

  // The soak.
  let requests = 0;
  let streamed = 0;
  let failures = 0;
  let truncated = 0;
  let tokens = 0;
  const samples: string[] = [];
  const latencies: number[] = [];
  const ttfts: number[] = [];
  let kvPeak = before.kv;
  let rssPeak = rssBefore;
  let rssMid = rssBefore;
  let seed = 12345;
  const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  const start = performance.now();
  const deadline = start + o.seconds * 1000;
  const sampler = setInterval(() => {
    void metrics().then((m) => (kvPeak = Math.max(kvPeak, m.kv)), () => undefined);
    const rss = rssMiB(o.pid);
    rssPeak = Math.max(rssPeak, rss);
    if (performance.now() - start <= (o.seconds * 1000) / 2) rssMid = rss;
  }, 1000);
  let lastReport = start;
  const worker = async () => {
    while (performance.now() < deadline) {
      const j: Job = { prompt: Math.floor(random() * prompts.length), maxTokens: answerLengths[Math.floor(random() * answerLengths.length)], stream: random() < 0.5 };
      const r = await send(j);
      requests++;
      if (j.stream) streamed++;
      if (!r.ok) {
        failures++;
        if (samples.length < 10) samples.push(r.why);
        continue;
      }
      const ref = refs.get(key(j))!;
      if (r.answer.content !== ref.content || r.answer.finish !== ref.finish || r.answer.tokens !== ref.tokens) {
        truncated++;
        if (samples.length < 10) samples.push(`${j.stream ? 'stream' : 'response'} ${key(j)} differs from its reference: ${JSON.stringify(r.answer).slice(0, 160)} vs ${JSON.stringify(ref).slice(0, 160)}`);
      }
      tokens += r.answer.tokens;
      latencies.push(r.ms);
      if (r.ttftMs !== undefined) ttfts.push(r.ttftMs);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        log(`${Math.round((lastReport - start) / 1000)} s: ${requests} requests, ${failures} failed, ${truncated} differ, kv peak ${kvPeak}, rss ${rssMiB(o.pid).toFixed(1)} MiB`);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  clearInterval(sampler);
  const seconds = (performance.now() - start) / 1000;

  const after = await idle();
  await new Promise((r) => setTimeout(r, 3000));
  const rssAfter = rssMiB(o.pid);
  log(`after: rss ${rssAfter.toFixed(1)} MiB, kv blocks ${after.kv}, sequences ${after.seqs}`);

  // Past max_concurrency + max_queue: the excess is turned away with 429, nothing hangs.
  const overload = await overloadBurst({
    url: o.url,
    headers,
    body: (i, maxTokens, stream) => body({ prompt: i % prompts.length, maxTokens, stream }),
    maxConcurrency: o.maxConcurrency,
    maxQueue: o.maxQueue,
    gauges: metrics,
  });
  log(`overload: ${JSON.stringify(overload)}`);
  // The held streams were dropped mid-answer: their slots, sequences and KV blocks come back too.
  const settled = await idle();
  const health = await request(`${o.url}/health`, { dispatcher: agent, headers });
  await health.body.text();
  const check = await send({ prompt: 0, maxTokens: 8, stream: true });
  const healthyAfter =
    settled.running === 0 && settled.waiting === 0 && settled.seqs === 0 && settled.kv <= before.kv &&
    health.statusCode === 200 && check.ok && check.answer.content === refs.get('0/8')!.content;
  await agent.close();

  const ms = (x: number) => Math.round(x);
  return {
    seconds: Number(seconds.toFixed(1)),
    concurrency: o.concurrency,
    requests,
    streamed,
    failures,
    truncated,
    samples,
    generatedTokens: tokens,
    latencyMs: { p50: ms(percentile(latencies, 50)), p90: ms(percentile(latencies, 90)), p99: ms(percentile(latencies, 99)), max: ms(Math.max(...latencies)) },
    streamTtftMs: { p50: ms(percentile(ttfts, 50)), p99: ms(percentile(ttfts, 99)) },
    rssMiB: { before: Number(rssBefore.toFixed(1)), mid: Number(rssMid.toFixed(1)), peak: Number(rssPeak.toFixed(1)), after: Number(rssAfter.toFixed(1)) },
    kvBlocks: { before: before.kv, peak: kvPeak, after: after.kv, total: before.kvTotal },
    sequencesAfter: after.seqs,
    overload,
    healthyAfter,
  };
}

/** The report as the lines docs/reliability.md quotes. */
export function formatReport(r: SoakReport): string {
  return [
    `soak: ${r.seconds} s, ${r.concurrency} concurrent clients (half streaming), mixed prompt and answer lengths`,
    `  requests        ${r.requests} (${r.streamed} streamed), ${r.generatedTokens} tokens generated`,
    `  failed          ${r.failures}`,
    `  truncated/wrong ${r.truncated}`,
    `  latency ms      p50 ${r.latencyMs.p50}  p90 ${r.latencyMs.p90}  p99 ${r.latencyMs.p99}  max ${r.latencyMs.max}`,
    `  stream TTFT ms  p50 ${r.streamTtftMs.p50}  p99 ${r.streamTtftMs.p99}`,
    `  RSS MiB         before ${r.rssMiB.before}  peak ${r.rssMiB.peak}  after ${r.rssMiB.after}`,
    `  KV blocks       before ${r.kvBlocks.before}  peak ${r.kvBlocks.peak}  after ${r.kvBlocks.after} (of ${r.kvBlocks.total}); sequences after ${r.sequencesAfter}`,
    `  overload        ${overloadLine(r.overload)}`,
    `  healthy after   ${r.healthyAfter}`,
    ...r.samples.map((s) => `  sample failure: ${s}`),
  ].join('\n');
}

function overloadLine(v: OverloadReport): string {
  const held = v.held ? `${v.held.running} generating + ${v.held.waiting} queued held` : 'the queue never filled';
  return `${held}, then ${v.sent} more at once: ${v.rejected429} got 429, ${v.ok} answered, ${v.other} other, in ${v.seconds} s`;
}

/** Why the soak failed, or an empty list. `rssSlackMiB`: growth allowed between baseline and after. */
/**
 * Resident growth past the baseline that is not a leak: the JS heap a load grows stays resident
 * until V8's next major collection, which idling does not bring. On the 2-core machine (THP
 * always) a 30 s soak held 71-81 MiB above its baseline afterwards, peaking there; a 70 s soak
 * peaked at +108 MiB, was collected mid-run, and ended 2 MiB above it. The long `npm run soak`
 * shows a leak as growth that never comes back; this bound catches the gross ones in CI.
 */
const rssSlackDefaultMiB = 128;

export function soakProblems(r: SoakReport, rssSlackMiB = rssSlackDefaultMiB): string[] {
  const problems: string[] = [];
  if (r.requests === 0) problems.push('no requests were made');
  if (r.failures > 0) problems.push(`${r.failures} requests failed`);
  if (r.truncated > 0) problems.push(`${r.truncated} answers were truncated or differ from their reference`);
  if (r.kvBlocks.after > r.kvBlocks.before) problems.push(`KV blocks in use did not return to baseline (${r.kvBlocks.before} -> ${r.kvBlocks.after})`);
  if (r.sequencesAfter !== 0) problems.push(`${r.sequencesAfter} sequences still running`);
  if (r.rssMiB.after > r.rssMiB.before + rssSlackMiB) problems.push(`resident memory grew from ${r.rssMiB.before} to ${r.rssMiB.after} MiB`);
  problems.push(...overloadProblems(r.overload));
  if (!r.healthyAfter) problems.push('the server was not healthy after the soak (idle with its KV blocks back, /health 200, the same answer as before)');
  return problems;
}
