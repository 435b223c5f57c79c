// Speculative decoding (speculative_config, method ngram) behind the real server, with the
// official openai client: a drafted step hands the server several tokens in one event, and what a
// client sees (content, streamed deltas joined, logprobs, usage, a stop string cut inside such a
// step) must be what the same server gives without drafts. /metrics counts the drafts under
// vLLM's names.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { get, loadTiny, metric, serve, type TestServer } from './server-harness.js';
import type { TinyModel } from './server-harness.js';

let plain: { model: TinyModel; srv: TestServer };
let drafted: { model: TinyModel; srv: TestServer };
beforeAll(async () => {
  const open = async (speculative?: { method: 'ngram'; numSpeculativeTokens: number }) => {
    const model = await loadTiny('tiny-a', { speculative });
    return { model, srv: await serve(model, { modelId: 'qwen3-test' }) };
  };
  plain = await open();
  drafted = await open({ method: 'ngram', numSpeculativeTokens: 4 });
});
afterAll(async () => {
  for (const s of [plain, drafted]) {
    await s?.srv.server.close();
    await s?.model.engine.close();
  }
});

const messages = [{ role: 'user' as const, content: 'Tell me about the sea.' }];

describe('speculative decoding through the server', () => {
  it('answers, streams and stops as without drafts', async () => {
    const ask = (s: TestServer, extra: object = {}) =>
      s.client.chat.completions.create({ model: 'qwen3-test', messages, max_tokens: 48, temperature: 0, logprobs: true, top_logprobs: 2, ...extra });
    const a = await ask(plain.srv);
    const b = await ask(drafted.srv);
    expect(b.choices[0].message.content).toBe(a.choices[0].message.content);
    expect(b.choices[0].logprobs).toEqual(a.choices[0].logprobs);
    expect(b.usage).toEqual(a.usage);
    expect(b.usage!.completion_tokens).toBe(48);

    const streamed = async (s: TestServer, extra: object = {}) => {
      const stream = await s.client.chat.completions.create({ model: 'qwen3-test', messages, max_tokens: 48, temperature: 0, stream: true, ...extra });
      let text = '';
      let finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      return { text, finish };
    };
    const content = a.choices[0].message.content!;
    expect(await streamed(drafted.srv)).toEqual({ text: content, finish: 'length' });

    // Seeded sampling: this output repeats one token, then moves on to another. That other
    // token's text, as a stop string, is first seen at the end of a run the drafts cover.
    const seeded = { temperature: 0.8, seed: 3 };
    const sampled = await ask(plain.srv, seeded);
    expect((await ask(drafted.srv, seeded)).choices[0]).toEqual(sampled.choices[0]);
    const pieces = sampled.choices[0].logprobs!.content!.map((c) => c.token);
    let text = '';
    const at = pieces.findIndex((p, i) => {
      const fresh = i >= 8 && p !== pieces[i - 1] && p.trim() !== '' && !text.includes(p);
      text += p;
      return fresh;
    });
    expect(at).toBeGreaterThan(0);
    const stop = { ...seeded, stop: [pieces[at]] };
    const cut = (await ask(plain.srv, stop)).choices[0];
    expect(cut.finish_reason).toBe('stop');
    expect(cut.message.content).toBe(pieces.slice(0, at).join(''));
    const cutDrafted = (await ask(drafted.srv, stop)).choices[0];
    expect(cutDrafted.message.content).toBe(cut.message.content);
    expect(cutDrafted.finish_reason).toBe('stop');
    expect(await streamed(drafted.srv, stop)).toEqual({ text: cut.message.content, finish: 'stop' });
  });

  it('counts drafts and accepted tokens under vLLM\'s and its own names, only where it is on', async () => {
    await drafted.srv.client.chat.completions.create({ model: 'qwen3-test', messages, max_tokens: 32, temperature: 0 });
    const text = (await get(`${drafted.srv.url}/metrics`)).text;
    const labels = '{model_name="qwen3-test",engine="0"}';
    const accepted = metric(text, `vllm:spec_decode_num_accepted_tokens_total${labels}`);
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBe(metric(text, 'grpst_spec_decode_accepted_tokens_total'));
    expect(metric(text, `vllm:spec_decode_num_draft_tokens_total${labels}`)).toBeGreaterThanOrEqual(accepted);
    expect(metric(text, `vllm:spec_decode_num_drafts_total${labels}`)).toBe(metric(text, 'grpst_spec_decode_drafts_total'));
    expect((await get(`${plain.srv.url}/metrics`)).text).not.toContain('spec_decode');
  });
});
