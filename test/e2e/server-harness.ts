// Starts the real server in-process on a tiny fixture checkpoint, loaded by the real runtime,
// and gives the tests an official `openai` client plus raw HTTP helpers.
import OpenAI from 'openai';
import { afterAll, beforeAll } from 'vitest';
import { request } from 'undici';
import { ChatTemplate } from '../../src/chat/chat-template.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';
import { loadEngine } from '../../src/engine/index.js';
import type { GenerationEngine, LoadOptions } from '../../src/engine/types.js';
import { startServer, type RunningServer, type ServerDeps } from '../../src/server/index.js';
import { defaultServerOptions, type ServerOptions } from '../../src/server/options.js';
import { checkpoint, type CheckpointName } from '../helpers/fixtures.js';

export interface TinyModel {
  dir: string;
  engine: GenerationEngine;
  tokenizer: Tokenizer;
  template: ChatTemplate;
}

/** Small limits so tests stay quick on two cores; the KV pool still fits 32 streams at once. */
export const testLoadOptions: LoadOptions = {
  device: 'cpu',
  maxBatchSize: 32,
  maxSeqLen: 1024,
  maxNumTokens: 512,
  maxTokensInPagedKvCache: 32 * 1024,
};

export async function loadTiny(name: CheckpointName = 'tiny-a', opts: LoadOptions = {}): Promise<TinyModel> {
  const dir = checkpoint(name);
  const engine = await loadEngine(dir, { ...testLoadOptions, ...opts });
  return { dir, engine, tokenizer: Tokenizer.fromDir(dir), template: ChatTemplate.fromDir(dir) };
}

export interface TestServer {
  server: RunningServer;
  url: string;
  client: OpenAI;
  options: ServerOptions;
  logs: string[];
}

/** `deps.constraints`: a grammar compiler, for tests of structured outputs (none: response_format is refused). */
export async function serve(
  model: Pick<TinyModel, 'tokenizer' | 'template'> & { engine: ServerDeps['engine'] },
  overrides: Partial<ServerOptions> = {},
  deps: Pick<ServerDeps, 'constraints'> = {},
): Promise<TestServer> {
  const options: ServerOptions = { ...defaultServerOptions, host: '127.0.0.1', port: 0, ...overrides };
  const logs: string[] = [];
  const server = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, log: (l) => logs.push(l), ...deps }, options);
  // A loaded engine: ready once the conf's LoRA adapters have loaded too (a failed load: the test
  // reads `ready` itself). An engine still loading (a promise) is the test's to wait for.
  if (!(model.engine instanceof Promise)) await server.ready.catch(() => undefined);
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0, timeout: 120_000 });
  return { server, url: server.url, client, options, logs };
}

/**
 * A tiny model and a server on it for the test file that calls this at its top: loaded before its
 * tests, closed after them. The getters are valid inside tests.
 */
export function serveForFile(name: CheckpointName = 'tiny-a', overrides: Partial<ServerOptions> = {}): { model: () => TinyModel; srv: () => TestServer } {
  let model: TinyModel | undefined;
  let srv: TestServer | undefined;
  beforeAll(async () => {
    model = await loadTiny(name);
    srv = await serve(model, overrides);
  });
  afterAll(async () => {
    await srv?.server.close();
    await model?.engine.close();
  });
  return { model: () => model!, srv: () => srv! };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> {
  const res = await request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
  return readRaw(res);
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return readRaw(await request(url, { method: 'GET', headers }));
}

async function readRaw(res: Awaited<ReturnType<typeof request>>): Promise<RawResponse> {
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** The `data:` payloads of an SSE body, [DONE] included as the string. */
export function sseFrames(text: string): (string | any)[] {
  // A frame may open with an `event:` line (the Responses API's typed events).
  return text
    .split('\n\n')
    .map((f) => f.split('\n').find((line) => line.startsWith('data: ')))
    .filter((d): d is string => d !== undefined)
    .map((d) => d.slice(6))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

/** One number of the Prometheus text, e.g. metric(text, 'grpst_kv_blocks_used'). */
export function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!m) throw new Error(`metric ${name} not found`);
  return Number(m[1]);
}

export async function waitFor(cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A stream that is under way: when each chunk arrived, whether it ended, and how to cut it off. */
export interface LongStream {
  arrivals: number[];
  ended(): boolean;
  /** Cuts the stream off and waits for its reader to stop. */
  cut(): Promise<void>;
}

/**
 * Starts a chat stream of three choices of 900 tokens (about 5 s of chunks on the 2-core machine,
 * far longer than a request measured beside it even on a loaded machine) and resolves once 20
 * chunks have arrived: the chunks' arrival times show how long the server's event loop was held.
 */
export async function longStream(url: string): Promise<LongStream> {
  const ac = new AbortController();
  const res = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content: 'Go on.' }], max_tokens: 900, n: 3, ignore_eos: true, stream: true }),
    signal: ac.signal,
  });
  if (res.statusCode !== 200) throw new Error(`the stream was answered ${res.statusCode}: ${await res.body.text()}`);
  const arrivals: number[] = [];
  let ended = false;
  const reading = (async () => {
    try {
      for await (const _ of res.body) arrivals.push(performance.now());
      ended = true;
    } catch {
      // (cut off)
    }
  })();
  while (arrivals.length < 20 && !ended) await new Promise((r) => setTimeout(r, 5));
  return {
    arrivals,
    ended: () => ended,
    cut: async () => {
      ac.abort();
      await reading;
    },
  };
}
