// Long prompts through the server: a shared long document is prefilled once and reused (prefix
// cache, reported in usage and /metrics); the seed's 32k-token prompt is answered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, loadTiny, metric, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
const sentence = 'The quick brown fox jumps over the lazy dog while the river runs past the old mill. ';

beforeAll(async () => {
  model = await loadTiny('tiny-yarn', { maxSeqLen: 33_000, maxTokensInPagedKvCache: 40_000, maxNumTokens: 2048, enablePrefixCaching: true });
  srv = await serve(model);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

describe('long prompts', () => {
  it('a long shared document is prefilled once: the second request reuses it', async () => {
    const doc = sentence.repeat(150);
    const ask = (q: string) => ({ model: 'qwen3', messages: [{ role: 'system' as const, content: doc }, { role: 'user' as const, content: q }], max_tokens: 4, temperature: 0 });
    const hitsBefore = metric((await get(`${srv.url}/metrics`)).text, 'grpst_prefix_cache_hit_tokens_total');
    const first = await srv.client.chat.completions.create(ask('Summarize it.'));
    expect(first.usage!.prompt_tokens).toBeGreaterThan(2500);
    const second = await srv.client.chat.completions.create(ask('What runs past the mill?'));
    const cached = (second.usage as any).prompt_tokens_details.cached_tokens as number;
    // Everything up to the user turn is shared, in whole KV blocks.
    expect(cached).toBeGreaterThan(first.usage!.prompt_tokens - 64);
    expect(cached).toBeLessThan(second.usage!.prompt_tokens);
    const hitsAfter = metric((await get(`${srv.url}/metrics`)).text, 'grpst_prefix_cache_hit_tokens_total');
    expect(hitsAfter - hitsBefore).toBeGreaterThanOrEqual(cached);
  });

  // The seed's 32k novel test on the CPU backend: tiny-yarn (the tiny checkpoint with YaRN scaling
  // for long contexts, half of tiny-a's attention width) prefills it in ~12 s on two cores.
  it('a 32k-token prompt is answered', async () => {
    const text = sentence.repeat(1750);
    const r = await srv.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: text }], max_tokens: 8, temperature: 0, ignore_eos: true } as any);
    expect(r.usage!.prompt_tokens).toBeGreaterThan(31_000);
    expect(r.usage!.prompt_tokens).toBeLessThan(33_000 - 8);
    expect(r.usage!.completion_tokens).toBe(8);
    expect(r.choices[0].finish_reason).toBe('length');
  }, 600_000);
});
