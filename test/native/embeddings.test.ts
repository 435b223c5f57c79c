// Embedding requests on the native runtime: the prompt is computed, nothing is sampled, and the
// one event carries the final norm's output at the last prompt token. Checked against Hugging
// Face transformers directly (last_hidden_state, fp32, test/fixtures/embeddings-tiny.json) and
// through the model's own LM head (tied to the embedding table on tiny-a): the vector times the
// head's bf16 rows must give the logits reference's last-position logprobs. Batched with
// generation, cached by the prefix cache, or computed in chunks, it is the same vector.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import type { LoadOptions, SubmitRequest, TokenEvent } from '../../src/engine/types.js';
import { readSafetensorsHeader } from '../../src/model/safetensors.js';
import { checkpoint, fixturesDir, refs } from '../helpers/fixtures.js';
import { collect, greedy, run } from './helpers.js';

const engines: Engine[] = [];
afterAll(async () => {
  for (const e of engines) await e.close().catch(() => {});
});
// A float32 KV cache: the reference is fp32, and the tolerance that of the logits parity test.
async function open(opts: LoadOptions = {}): Promise<Engine> {
  const e = await loadEngine(checkpoint('tiny-a'), { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, kvCacheDtype: 'float32', ...opts });
  engines.push(e);
  return e;
}
const TOL = 1e-3;

const embedReq = (tokens: number[]): SubmitRequest => ({ tokens, sampling: greedy, maxTokens: 0, embed: true });
async function embed(engine: Engine, tokens: number[]): Promise<{ vector: Float32Array; events: TokenEvent[] }> {
  const r = await collect(engine.submit(embedReq(tokens)));
  expect(r.finish).toBe('length');
  expect(r.tokens).toEqual([]);
  expect(r.events).toHaveLength(1);
  return { vector: r.last.embedding!, events: r.events };
}

/** tiny-a's LM head (its embedding table, tied), bf16 rows as float: [vocab][hidden]. */
function headRows(): { rows: Float32Array; hidden: number } {
  const dir = checkpoint('tiny-a');
  const t = readSafetensorsHeader(join(dir, 'model.safetensors')).tensors.find((x) => x.name === 'model.embed_tokens.weight')!;
  const raw = readFileSync(t.file).subarray(t.offset, t.offset + t.nbytes);
  const bits = new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const rows = new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer);
  return { rows, hidden: t.shape[1] };
}

function logSoftmaxAt(vector: Float32Array, head: { rows: Float32Array; hidden: number }, ids: number[]): number[] {
  const V = head.rows.length / head.hidden;
  const logits = new Float64Array(V);
  let max = -Infinity;
  for (let j = 0; j < V; j++) {
    let dot = 0;
    for (let k = 0; k < head.hidden; k++) dot += vector[k] * head.rows[j * head.hidden + k];
    logits[j] = dot;
    max = Math.max(max, dot);
  }
  let sum = 0;
  for (const l of logits) sum += Math.exp(l - max);
  const lse = max + Math.log(sum);
  return ids.map((id) => logits[id] - lse);
}

interface EmbeddingRefs {
  checkpoints: Record<'tiny-a' | 'tiny-b', { weights_sha256: string; prompts: { name: string; prompt_ids: number[]; last_hidden: number[] }[] }>;
}
const embeddingRefs = JSON.parse(readFileSync(join(fixturesDir, 'embeddings-tiny.json'), 'utf8')) as EmbeddingRefs;

describe('embedding requests', () => {
  it("equal transformers' last_hidden_state at the last token (scripts/make_embedding_fixture.py)", async () => {
    for (const name of ['tiny-a', 'tiny-b'] as const) {
      const ref = embeddingRefs.checkpoints[name];
      expect(ref.weights_sha256).toBe(refs(name).weights_sha256);
      const engine = await loadEngine(checkpoint(name), { maxSeqLen: 1024, maxTokensInPagedKvCache: 8192, kvCacheDtype: 'float32' });
      engines.push(engine);
      for (const p of ref.prompts) {
        const { vector } = await embed(engine, p.prompt_ids);
        const scale = Math.max(...p.last_hidden.map(Math.abs));
        const worst = Math.max(...p.last_hidden.map((x, k) => Math.abs(x - vector[k])));
        expect(vector).toHaveLength(p.last_hidden.length);
        // Measured: 5e-7 of the largest value (fp32 compute on both sides; bf16 KV cache: 1e-3).
        expect(worst / scale, `${name} ${p.name}`).toBeLessThan(1e-5);
      }
    }
  });

  it("give the final norm's output at the last prompt token: through the head, transformers' logprobs", async () => {
    const engine = await open();
    const head = headRows();
    expect(engine.info.hiddenSize).toBe(head.hidden);
    for (const p of refs('tiny-a').prompts) {
      const { vector } = await embed(engine, p.prompt_ids);
      expect(vector).toHaveLength(head.hidden);
      const got = logSoftmaxAt(vector, head, p.last_top5.ids);
      for (const [i, lp] of got.entries()) expect(Math.abs(lp - p.last_top5.logprobs[i]), `${p.name} top ${i}`).toBeLessThan(TOL);
      // The same step's logits, sampled: the first greedy token is the head's argmax of this vector.
      expect((await run(engine, { tokens: p.prompt_ids, sampling: greedy, maxTokens: 1 })).tokens[0]).toBe(p.last_top5.ids[0]);
    }
    expect(engine.stats().kvBlocksUsed).toBe(0);
  });

  it('are the same vector alone, batched with generation, in prefill chunks, and from the prefix cache', async () => {
    const long = refs('tiny-a').prompts.find((p) => p.name === 'long')!.prompt_ids;
    const prompts = [long.slice(0, 40), long.slice(10, 90), long.slice(0, 200)];
    const alone = await open({ enablePrefixCaching: false });
    const expected = [];
    for (const tokens of prompts) expected.push((await embed(alone, tokens)).vector);
    // Batched with sampling requests, prefill split in chunks of 32 tokens, prefix cache on.
    const busy = await open({ maxNumTokens: 32 });
    const generating = prompts.map((tokens) => run(busy, { tokens, sampling: greedy, maxTokens: 20, ignoreEos: true }));
    const together = await Promise.all(prompts.map((tokens) => embed(busy, tokens)));
    await Promise.all(generating);
    for (const [i, t] of together.entries()) expect(Array.from(t.vector)).toEqual(Array.from(expected[i]));
    // Again: most of each prompt now comes from the prefix cache.
    const cached = await embed(busy, prompts[2]);
    expect(cached.events[0].cachedPromptTokens).toBeGreaterThan(0);
    expect(Array.from(cached.vector)).toEqual(Array.from(expected[2]));
    expect(busy.stats().kvBlocksUsed).toBe(0);
  });
});
