// The accuracy report of a build: the engine against its unquantized reference on held-out text.
// Both models score the same windows of tokens; per position we compare the full next-token
// distributions: top-1 agreement, KL(reference || engine), and each model's perplexity on the text.
import type { AccuracyReport } from '../manifest.js';
import type { Scorer } from './runtime-bridge.js';

/** Tokens per scored window: long enough for real context, small enough to hold two [window, vocab] blocks. */
export const WINDOW = 128;

interface Rows {
  data: Float32Array;
  vocab: number;
}

async function windowRows(scorer: Scorer, tokens: Int32Array): Promise<Rows> {
  const vocab = scorer.vocabSize;
  const data = new Float32Array(tokens.length * vocab);
  await scorer.logprobs(tokens, (first, rows, count) => data.set(rows.subarray(0, count * vocab), first * vocab));
  return { data, vocab };
}

function argmax(a: Float32Array, from: number, n: number): number {
  let best = from;
  for (let i = from + 1; i < from + n; i++) if (a[i] > a[best]) best = i;
  return best - from;
}

export interface AccuracyTotals {
  positions: number;
  agree: number;
  kl: number;
  nllRef: number;
  nll: number;
}

/** Adds one window's comparison to the totals (positions 0..n-2 predict tokens 1..n-1). */
export function compareWindow(tokens: Int32Array, ref: Rows, test: Rows, totals: AccuracyTotals): void {
  const V = ref.vocab;
  for (let p = 0; p + 1 < tokens.length; p++) {
    const base = p * V;
    if (argmax(ref.data, base, V) === argmax(test.data, base, V)) totals.agree++;
    let kl = 0;
    for (let v = 0; v < V; v++) {
      const lp = ref.data[base + v];
      // Terms with p < 1e-13 change the sum by less than 1e-8 nats over the whole vocabulary.
      if (lp > -30) kl += Math.exp(lp) * (lp - test.data[base + v]);
    }
    totals.kl += Math.max(0, kl);
    totals.nllRef -= ref.data[base + tokens[p + 1]];
    totals.nll -= test.data[base + tokens[p + 1]];
    totals.positions++;
  }
}

/** NaN or Inf in one side's logits: the report cannot be computed (non-finite.ts says why). */
export class NonFiniteLogits extends Error {
  constructor(readonly side: 'reference' | 'engine') {
    super(`the ${side}'s logits are not finite`);
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

export async function accuracyReport(reference: Scorer, engine: Scorer, tokens: Int32Array, referenceName: string, onProgress?: (f: number) => void, signal?: AbortSignal): Promise<AccuracyReport> {
  if (reference.vocabSize !== engine.vocabSize) throw new Error(`vocabulary sizes differ: ${reference.vocabSize} vs ${engine.vocabSize}`);
  const totals: AccuracyTotals = { positions: 0, agree: 0, kl: 0, nllRef: 0, nll: 0 };
  for (let start = 0; start + 1 < tokens.length; start += WINDOW) {
    const window = tokens.subarray(start, Math.min(tokens.length, start + WINDOW));
    if (window.length < 2) break;
    signal?.throwIfAborted(); // an interrupted build stops within one window
    const ref = await windowRows(reference, window);
    if (!allFinite(ref.data)) throw new NonFiniteLogits('reference');
    const test = await windowRows(engine, window);
    if (!allFinite(test.data)) throw new NonFiniteLogits('engine');
    compareWindow(window, ref, test, totals);
    onProgress?.(Math.min(1, (start + WINDOW) / tokens.length));
  }
  const n = Math.max(1, totals.positions);
  return {
    reference: referenceName,
    tokens: totals.positions,
    top1_agreement: totals.agree / n,
    mean_kl: totals.kl / n,
    perplexity_reference: Math.exp(totals.nllRef / n),
    perplexity: Math.exp(totals.nll / n),
  };
}

export function formatAccuracy(r: AccuracyReport): string {
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  return [
    `accuracy on ${r.tokens} next-token predictions (held-out windows of ${WINDOW} tokens; a window's first token has none) against ${r.reference}:`,
    `  top-1 agreement   ${pct(r.top1_agreement)}`,
    `  mean KL           ${r.mean_kl.toExponential(3)} nats`,
    `  perplexity        ${r.perplexity.toFixed(3)} (reference ${r.perplexity_reference.toFixed(3)}, ${r.perplexity >= r.perplexity_reference ? '+' : ''}${(((r.perplexity - r.perplexity_reference) / r.perplexity_reference) * 100).toFixed(2)}%)`,
  ].join('\n');
}
