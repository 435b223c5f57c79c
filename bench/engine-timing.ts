// Timing the native engine from its token stream, shared by the in-process benchmarks: a prompt's
// prefill (submit to first token) and decode (tokens after the first, over the span in which all
// sequences generate).
import type { Engine } from '../src/engine/index.js';
import { defaultSampling, type TokenEvent } from '../src/engine/types.js';
import { promptIds } from './prompt-ids.js';

const greedy = { ...defaultSampling, temperature: 0 };

interface Timed {
  firstAt: number;
  lastAt: number;
  tokens: number;
}

async function timed(stream: AsyncIterable<TokenEvent>, t0: number): Promise<Timed> {
  let firstAt = 0;
  let lastAt = 0;
  let tokens = 0;
  for await (const ev of stream) {
    const now = performance.now() - t0;
    if (ev.error) throw new Error(ev.error);
    if (ev.tokens.length && !firstAt) firstAt = now;
    if (ev.tokens.length) lastAt = now;
    tokens += ev.tokens.length;
  }
  return { firstAt, lastAt, tokens };
}

/** Prompt tok/s: `batch` prompts of `n` tokens submitted together, until every first token. */
export async function prefillTokS(engine: Engine, batch: number, n: number, salt: number): Promise<number> {
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from({ length: batch }, (_, i) => timed(engine.submit({ tokens: promptIds(n, salt + i), sampling: greedy, maxTokens: 1 }), t0)),
  );
  const end = Math.max(...runs.map((r) => r.firstAt));
  return (batch * n) / (end / 1000);
}

/**
 * Decode tok/s: `batch` sequences of `tokens` new tokens after `promptLen`-token prompts (32 unless
 * given: a long one times the attention over it), generating together.
 */
export async function decodeTokS(engine: Engine, batch: number, tokens: number, salt: number, promptLen = 32): Promise<number> {
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from({ length: batch }, (_, i) =>
      timed(engine.submit({ tokens: promptIds(promptLen, salt + i), sampling: greedy, maxTokens: tokens, ignoreEos: true }), t0),
    ),
  );
  // Tokens after the first of each sequence, over the span in which all sequences decode.
  const start = Math.max(...runs.map((r) => r.firstAt));
  const end = Math.max(...runs.map((r) => r.lastAt));
  const generated = runs.reduce((a, r) => a + r.tokens - 1, 0);
  return generated / ((end - start) / 1000);
}
