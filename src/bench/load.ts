// Load generator for an OpenAI-compatible server: `concurrency` clients each stream requests
// back to back until `requests` are done (or, with `requestRate`, requests arrive as a Poisson or
// gamma process, arrivals.ts, and `concurrency` caps those in flight), timing every chunk as it
// arrives (undici, no SDK). Behind `grpst bench` and the benchmark scripts under bench/.
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import { summarizeAnswer } from '../util/http-answer.js';
import { arrivalTimes } from './arrivals.js';
import { goodput, type Goodput, type Slos } from './goodput.js';
import { countersBetween, hostMsPerStep, readServerCounters, type EngineLoopTimes, type SpecDecodeCounts } from './server-counters.js';

export interface LoadSpec {
  url: string;
  model: string;
  concurrency: number;
  requests: number;
  /** Token ids of each prompt (exact lengths, no template). */
  prompt: (i: number) => number[];
  outputTokens: number;
  /** Tokens request i generates where they differ by request (--random_range_ratio, --dataset); else outputTokens. */
  outputTokensOf?: (i: number) => number;
  apiKey?: string;
  /**
   * Requests per second, arriving as a Poisson process (exponential gaps drawn from a fixed seed,
   * the first at once), each sent when it has arrived and fewer than `concurrency` are in flight:
   * vLLM bench serve's --request-rate with --max-concurrency. Absent: closed loop, `concurrency`
   * clients sending back to back.
   */
  requestRate?: number;
  /**
   * With `requestRate`: the shape of the gamma distribution the gaps between arrivals come from
   * (vLLM bench serve's --burstiness; default 1, Poisson). Below 1 burstier, above 1 more even.
   */
  burstiness?: number;
}

export interface RequestTiming {
  ok: boolean;
  error?: string;
  /** The request's index in the run (its prompt's, and with a request rate its arrival's). */
  index: number;
  /** Seconds from the run's start to sending this request. */
  sent: number;
  /** Seconds from sending to the first generated text. */
  ttft: number;
  /** Seconds between consecutive chunks that carried text. */
  itl: number[];
  e2e: number;
  outputTokens: number;
  /** The prompt's tokens and those the server read from its prefix cache, where its usage says (prompt_tokens_details). */
  promptTokens?: number;
  cachedPromptTokens?: number;
}

export interface LoadResult {
  spec: Omit<LoadSpec, 'prompt'> & { promptTokens: number };
  wallSeconds: number;
  timings: RequestTiming[];
  /** What a grpst server's engine loop did during the run (its /metrics counters); absent for other servers. */
  engineLoop?: EngineLoopTimes;
  /** Seconds from just before the first /metrics reading to just after the second: every counted step's window. */
  countersSeconds?: number;
  /** A grpst server's speculative decoding during the run (its /metrics counters), where it drafts. */
  specDecode?: SpecDecodeCounts;
}

export { engineLoopBetween, hostMsPerStep, type EngineLoopTimes, type SpecDecodeCounts } from './server-counters.js';

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const agent = new Agent({ connections: spec.concurrency * 2, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
  const timings: RequestTiming[] = [];
  const countersFrom = performance.now();
  const countersBefore = await readServerCounters(spec.url, agent, spec.apiKey);
  const start = performance.now();
  if (spec.requestRate !== undefined) {
    const slots = new Slots(spec.concurrency);
    const arrive = arrivalTimes(spec.requests, spec.requestRate, spec.burstiness);
    await Promise.all(
      arrive.map(async (at, i) => {
        await sleep(start + 1000 * at - performance.now());
        await slots.take();
        try {
          timings.push(await oneRequest(spec, agent, i, start));
        } finally {
          slots.give();
        }
      }),
    );
  } else {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < spec.requests; i = next++) timings.push(await oneRequest(spec, agent, i, start));
    };
    await Promise.all(Array.from({ length: spec.concurrency }, worker));
  }
  const wallSeconds = (performance.now() - start) / 1000;
  const moved = countersBetween(countersBefore, countersBefore.loop || countersBefore.spec ? await readServerCounters(spec.url, agent, spec.apiKey) : {});
  const countersSeconds = (performance.now() - countersFrom) / 1000;
  await agent.close();
  const { prompt, ...rest } = spec;
  return {
    spec: { ...rest, promptTokens: prompt(0).length },
    wallSeconds,
    timings,
    ...(moved.loop ? { engineLoop: moved.loop, countersSeconds } : {}),
    ...(moved.spec ? { specDecode: moved.spec } : {}),
  };
}

/** A counting semaphore: at most `size` holders; the waiting are let in in arrival order. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(size: number) {
    this.free = size;
  }
  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}

interface StreamUsage {
  prompt_tokens?: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number } | null;
}

async function oneRequest(spec: LoadSpec, agent: Agent, i: number, runStart: number): Promise<RequestTiming> {
  const want = spec.outputTokensOf?.(i) ?? spec.outputTokens;
  const body = {
    model: spec.model,
    prompt: spec.prompt(i),
    max_tokens: want,
    temperature: 0,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  };
  const t0 = performance.now();
  const timing: RequestTiming = { ok: false, index: i, sent: (t0 - runStart) / 1000, ttft: 0, itl: [], e2e: 0, outputTokens: 0 };
  try {
    const res = await request(`${spec.url}/v1/completions`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', ...(spec.apiKey ? { authorization: `Bearer ${spec.apiKey}` } : {}) },
      body: JSON.stringify(body),
    });
    if (res.statusCode !== 200) {
      timing.error = `HTTP ${res.statusCode}: ${summarizeAnswer(res.headers['content-type'], await res.body.text()).text}`;
      return timing;
    }
    let last = 0;
    let buf = '';
    let done = false;
    for await (const chunk of res.body) {
      const now = performance.now();
      buf += chunk.toString();
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        if (!frame.startsWith('data: ')) continue;
        const data = frame.slice(6);
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const msg = JSON.parse(data) as { choices: { text: string }[]; usage?: StreamUsage | null; error?: { message: string } };
        if (msg.error) throw new Error(msg.error.message);
        if (msg.usage) {
          timing.outputTokens = msg.usage.completion_tokens;
          timing.promptTokens = msg.usage.prompt_tokens;
          timing.cachedPromptTokens = msg.usage.prompt_tokens_details?.cached_tokens;
        }
        if (msg.choices.some((c) => c.text.length > 0)) {
          if (last === 0) timing.ttft = (now - t0) / 1000;
          else timing.itl.push((now - last) / 1000);
          last = now;
        }
      }
    }
    timing.e2e = (performance.now() - t0) / 1000;
    timing.ok = done && timing.outputTokens === want;
    if (!timing.ok) timing.error = done ? `got ${timing.outputTokens} of ${want} tokens` : 'the stream ended without [DONE]';
  } catch (err) {
    timing.error = err instanceof Error ? err.message : String(err);
  }
  return timing;
}

/**
 * Deterministic prompts of ordinary BPE tokens (ids 1,000-90,999), a different one for every
 * request index; `salt` gives another family of them (a fresh prompt, no cached prefix).
 */
export function tokenPrompt(length: number, salt = 0): (i: number) => number[] {
  return (i: number) => {
    let x = (i + 1 + salt * 7919) * 2654435761;
    return Array.from({ length }, () => {
      x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x9e3779b9) >>> 0;
      return 1000 + (x % 90000);
    });
  };
}

/**
 * Lengths that vary by request as vllm bench serve's --random-range-ratio draws them: request i's
 * is a whole number in [base * (1 - ratio), base * (1 + ratio)] (at least 1), uniform and fixed by
 * i and `salt`, so every run of the same arguments asks the same.
 */
export function rangedLength(base: number, ratio: number, salt = 0): (i: number) => number {
  const [lo, hi] = lengthBounds(base, ratio);
  return (i: number) => {
    let x = Math.imul((i + 1) ^ Math.imul(salt + 1, 0x9e3779b9), 0x85ebca6b) >>> 0;
    x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    return lo + Math.floor((x / 4294967296) * (hi - lo + 1));
  };
}

/** The shortest and longest lengths rangedLength(base, ratio) draws. */
export function lengthBounds(base: number, ratio: number): [number, number] {
  const lo = Math.max(1, Math.floor(base * (1 - ratio)));
  return [lo, Math.max(lo, Math.floor(base * (1 + ratio)))];
}

/** tokenPrompt with request i's own length (`lengthOf(i)`). */
export function rangedTokenPrompt(lengthOf: (i: number) => number, salt = 0): (i: number) => number[] {
  return (i: number) => tokenPrompt(lengthOf(i), salt)(i);
}

/** One request of `promptTokens` / `outputTokens` alone; throws if it failed. */
export async function singleRequest(url: string, promptTokens: number, outputTokens: number, salt: number): Promise<LoadResult> {
  const r = await runLoad({ url, model: 'qwen3', concurrency: 1, requests: 1, prompt: tokenPrompt(promptTokens, salt), outputTokens });
  const bad = r.timings.find((t) => !t.ok);
  if (bad) throw new Error(`request failed: ${bad.error}`);
  return r;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export interface LoadSummary {
  concurrency: number;
  requests: number;
  failed: number;
  requestsPerSecond: number;
  outputTokensPerSecond: number;
  /** Milliseconds: p50 / p90 / p99. */
  ttftMs: [number, number, number];
  tpotMs: [number, number, number];
  itlMs: [number, number, number];
  /**
   * The output rate between the first request's end and the last request's start (seconds from the
   * run's start), where every client has a request in flight: the sustained rate, without the
   * first wave's prompts arriving together or the last wave's drain. Absent when no request ended
   * before the last one was sent (a single wave).
   */
  steady?: { fromS: number; toS: number; outputTokensPerSecond: number };
  /** A grpst server's engine loop over the run: steps, mean step and the host work in it (ms), the share of the time between its two /metrics readings it was stepping. */
  engineLoop?: { steps: number; stepMs: number; hostMsPerStep: number; busyShare: number };
  /** With objectives given (goodput.ts): the requests a second that met them all. */
  goodput?: Goodput;
  /** The prompt tokens of the completed requests and those read from the server's prefix cache, where it reports them. */
  promptCache?: { promptTokens: number; cachedTokens: number };
  /** Speculative decoding during the run, where the server drafted any tokens. */
  specDecode?: SpecDecodeCounts;
}

export function summarize(r: LoadResult, slos?: Slos): LoadSummary {
  const ok = r.timings.filter((t) => t.ok);
  const pct = (xs: number[]): [number, number, number] => [50, 90, 99].map((p) => percentile(xs, p) * 1000) as [number, number, number];
  const tokens = ok.reduce((s, t) => s + t.outputTokens, 0);
  return {
    concurrency: r.spec.concurrency,
    requests: r.timings.length,
    failed: r.timings.length - ok.length,
    requestsPerSecond: ok.length / r.wallSeconds,
    outputTokensPerSecond: tokens / r.wallSeconds,
    ttftMs: pct(ok.map((t) => t.ttft)),
    // Time per output token after the first, per request.
    tpotMs: pct(ok.filter((t) => t.outputTokens > 1).map((t) => (t.e2e - t.ttft) / (t.outputTokens - 1))),
    itlMs: pct(ok.flatMap((t) => t.itl)),
    ...steadyPart(r.timings),
    ...(r.engineLoop && r.engineLoop.steps > 0 ? { engineLoop: loopSummary(r.engineLoop, r.countersSeconds ?? r.wallSeconds) } : {}),
    ...(slos ? { goodput: goodput(r.timings, r.wallSeconds, slos) } : {}),
    ...promptCachePart(ok),
    ...(r.specDecode && r.specDecode.draftTokens > 0 ? { specDecode: r.specDecode } : {}),
  };
}

/** One line on speculative decoding during the run: the share of draft tokens the model took. */
export function specDecodeLine(s: LoadSummary): string | undefined {
  const d = s.specDecode;
  if (!d) return undefined;
  const n = (x: number) => x.toLocaleString('en-US');
  return `speculative decoding: ${n(d.acceptedTokens)} of ${n(d.draftTokens)} draft tokens taken (${((100 * d.acceptedTokens) / d.draftTokens).toFixed(1)}%) in ${n(d.drafts)} drafted steps, ${(d.acceptedTokens / Math.max(1, d.drafts) + 1).toFixed(2)} tokens a drafted step`;
}

function promptCachePart(ok: RequestTiming[]): Pick<LoadSummary, 'promptCache'> {
  const reported = ok.filter((t) => t.promptTokens !== undefined && t.cachedPromptTokens !== undefined);
  if (reported.length === 0) return {};
  const promptTokens = reported.reduce((n, t) => n + t.promptTokens!, 0);
  const cachedTokens = reported.reduce((n, t) => n + t.cachedPromptTokens!, 0);
  return { promptCache: { promptTokens, cachedTokens } };
}

/** One line on the prompt tokens the server's prefix cache served, where it served any. */
export function promptCacheLine(s: LoadSummary): string | undefined {
  const c = s.promptCache;
  if (!c || c.cachedTokens === 0) return undefined;
  return `prefix cache: ${c.cachedTokens.toLocaleString('en-US')} of ${c.promptTokens.toLocaleString('en-US')} prompt tokens (${((100 * c.cachedTokens) / c.promptTokens).toFixed(1)}%) read from the cache`;
}

/**
 * The sustained output rate (LoadSummary.steady). A request's text chunks arrive at sent + ttft,
 * then after each inter-chunk gap; each chunk counts as that request's output tokens over its
 * chunks (a server may send two tokens in one chunk), and those that arrive inside the window are
 * summed. Only complete requests count; a run with failures has no steady rate, nor one whose
 * window no chunk arrived in.
 */
export function steadyRate(timings: RequestTiming[]): LoadSummary['steady'] {
  if (timings.length === 0 || timings.some((t) => !t.ok)) return undefined;
  // loops, not Math.min(...): a spread of a long run's timings would overflow the stack
  let fromS = Infinity;
  let toS = -Infinity;
  for (const t of timings) {
    fromS = Math.min(fromS, t.sent + t.e2e);
    toS = Math.max(toS, t.sent);
  }
  if (!(toS > fromS)) return undefined;
  let tokens = 0;
  for (const t of timings) {
    const perChunk = t.outputTokens / (t.itl.length + 1);
    let at = t.sent + t.ttft;
    for (let j = 0; j <= t.itl.length; j++) {
      if (j > 0) at += t.itl[j - 1];
      if (at >= fromS && at < toS) tokens += perChunk;
    }
  }
  // A window no chunk arrived in (a rate-driven run whose last request came just after the first
  // ended) says nothing about a sustained rate.
  if (tokens === 0) return undefined;
  return { fromS, toS, outputTokensPerSecond: tokens / (toS - fromS) };
}

function steadyPart(timings: RequestTiming[]): Pick<LoadSummary, 'steady'> {
  const steady = steadyRate(timings);
  return steady ? { steady } : {};
}

// The share is of the window the counters were read across, not the run's wall, which ends with
// its last answer, before that step's bookkeeping ends and the second reading (against the wall it
// once read 1.003). Only a step under way at the first reading can still count past the window.
function loopSummary(loop: EngineLoopTimes, windowSeconds: number): NonNullable<LoadSummary['engineLoop']> {
  return {
    steps: loop.steps,
    stepMs: (1000 * loop.stepSeconds) / loop.steps,
    hostMsPerStep: hostMsPerStep(loop),
    busyShare: loop.stepSeconds / windowSeconds,
  };
}

/** One line on a grpst server's engine loop during a run: where a GPU's idle time between forward passes shows. */
export function engineLoopLine(s: LoadSummary): string | undefined {
  const l = s.engineLoop;
  if (!l) return undefined;
  return `engine loop: ${l.steps} steps, ${l.stepMs.toFixed(2)} ms a step of which ${l.hostMsPerStep.toFixed(3)} ms host work (${((100 * l.hostMsPerStep) / l.stepMs).toFixed(1)}%), stepping ${(100 * l.busyShare).toFixed(0)}% of the run`;
}

/** One line on the sustained rate (LoadSummary.steady), where the run had one. */
export function steadyLine(s: LoadSummary): string | undefined {
  const w = s.steady;
  if (!w) return undefined;
  return `sustained: ${w.outputTokensPerSecond.toFixed(1)} output tok/s from ${w.fromS.toFixed(2)} s (the first request's end) to ${w.toS.toFixed(2)} s (the last one's start)`;
}

/** The table `grpst bench` and bench:serve print, one row per concurrency (markdown, to paste into docs). */
export const summaryHeader = [
  '| concurrency | requests | req/s | output tok/s | TTFT ms p50 / p90 / p99 | TPOT ms p50 / p90 / p99 | ITL ms p50 / p90 / p99 |',
  '|---|---|---|---|---|---|---|',
].join('\n');

export function summaryRow(s: LoadSummary): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : '-');
  const p = (xs: [number, number, number]) => xs.map(f).join(' / ');
  return `| ${s.concurrency} | ${s.requests}${s.failed ? ` (${s.failed} failed)` : ''} | ${s.requestsPerSecond.toFixed(3)} | ${f(s.outputTokensPerSecond)} | ${p(s.ttftMs)} | ${p(s.tpotMs)} | ${p(s.itlMs)} |`;
}
