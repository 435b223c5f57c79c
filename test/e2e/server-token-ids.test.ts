// vLLM's return_token_ids and stop_reason on the real runtime: the prompt's ids and each
// choice's generated ids (the stop token that ended it last), whole or spread over a stream's
// chunks; stop_reason names the stop string or stop token that ended a choice (null for the
// model's end token and for a length cut), on both endpoints.
import { describe, expect, it } from 'vitest';
import { post, sseFrames, serveForFile } from './server-harness.js';

const file = serveForFile('tiny-a');

const messages = [{ role: 'user', content: 'Tell me about the sea.' }];
const chat = (extra: Record<string, unknown>) => post(`${file.srv().url}/v1/chat/completions`, { model: 'qwen3', messages, max_tokens: 6, temperature: 0, ...extra });
const complete = (extra: Record<string, unknown>) => post(`${file.srv().url}/v1/completions`, { model: 'qwen3', prompt: 'The sea is', max_tokens: 6, temperature: 0, ...extra });
const text = (id: number) => new TextDecoder().decode(file.model().tokenizer.tokenBytes(id));
const streamed = (raw: string) => sseFrames(raw).filter((f) => f !== '[DONE]');

describe('return_token_ids', () => {
  it("chat: the prompt's ids as /tokenize renders them, each choice's ids as its logprobs name them", async () => {
    const rendered: number[] = (await post(`${file.srv().url}/tokenize`, { model: 'qwen3', messages })).json.tokens;
    const r = await chat({ return_token_ids: true, logprobs: true, n: 2, temperature: 1, seed: 3 });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.prompt_token_ids).toEqual(rendered);
    for (const choice of r.json.choices) {
      expect(choice.finish_reason).toBe('length');
      expect(choice.stop_reason).toBeNull();
      expect(choice.token_ids).toHaveLength(6);
      expect(choice.token_ids.map(text)).toEqual(choice.logprobs.content.map((e: { token: string }) => e.token));
    }
    // Without it, no ids (stop_reason is always there, as in vLLM).
    const plain = await chat({});
    expect(plain.json).not.toHaveProperty('prompt_token_ids');
    expect(plain.json.choices[0]).not.toHaveProperty('token_ids');
    expect(plain.json.choices[0].stop_reason).toBeNull();
  });

  it('completions: each choice has the prompt ids and its own, streamed ids add up to the whole', async () => {
    const r = await complete({ return_token_ids: true, logprobs: 0, n: 2, temperature: 1, seed: 4 });
    const promptIds = file.model().tokenizer.encode('The sea is');
    for (const choice of r.json.choices) {
      expect(choice.prompt_token_ids).toEqual(promptIds);
      expect(choice.token_ids.map(text)).toEqual(choice.logprobs.tokens);
    }
    const s = await complete({ return_token_ids: true, stream: true });
    const whole = await complete({ return_token_ids: true });
    const chunks = streamed(s.text).map((f) => f.choices[0]);
    expect(chunks[0].prompt_token_ids).toEqual(promptIds);
    expect(chunks.slice(1).some((c) => 'prompt_token_ids' in c)).toBe(false);
    expect(chunks.flatMap((c) => c.token_ids)).toEqual(whole.json.choices[0].token_ids);
    expect(chunks[chunks.length - 1]).toMatchObject({ finish_reason: 'length', stop_reason: null });
  });

  it('chat stream: the first chunk has the prompt ids, the chunks the choice ids in order', async () => {
    const whole = await chat({ return_token_ids: true });
    const s = await chat({ return_token_ids: true, stream: true });
    const frames = streamed(s.text);
    expect(frames[0].prompt_token_ids).toEqual(whole.json.prompt_token_ids);
    expect(frames.slice(1).some((f) => 'prompt_token_ids' in f)).toBe(false);
    expect(frames.flatMap((f) => f.choices[0]?.token_ids ?? [])).toEqual(whole.json.choices[0].token_ids);
    expect(frames[frames.length - 1].choices[0]).toMatchObject({ finish_reason: 'length', stop_reason: null });
  });
});

describe('return_tokens_as_token_ids', () => {
  it('logprobs name each token "token_id:<id>", alternatives too; offsets still count the text', async () => {
    const named = (ids: number[]) => ids.map((id) => `token_id:${id}`);
    const c = await complete({ return_tokens_as_token_ids: true, return_token_ids: true, logprobs: 2, temperature: 1, seed: 5 });
    const choice = c.json.choices[0];
    expect(choice.logprobs.tokens).toEqual(named(choice.token_ids));
    for (const top of choice.logprobs.top_logprobs) for (const key of Object.keys(top)) expect(key).toMatch(/^token_id:\d+$/);
    const byText = await complete({ return_token_ids: true, logprobs: 2, temperature: 1, seed: 5 });
    expect(choice.logprobs.text_offset).toEqual(byText.json.choices[0].logprobs.text_offset);
    expect(byText.json.choices[0].logprobs.tokens).toEqual(choice.token_ids.map(text));
    const r = await chat({ return_tokens_as_token_ids: true, return_token_ids: true, logprobs: true, top_logprobs: 2 });
    const entries = r.json.choices[0].logprobs.content;
    expect(entries.map((e: { token: string }) => e.token)).toEqual(named(r.json.choices[0].token_ids));
    for (const e of entries) {
      expect(e.bytes).toEqual(Array.from(file.model().tokenizer.tokenBytes(Number(e.token.slice('token_id:'.length)))));
      for (const t of e.top_logprobs) expect(t.token).toMatch(/^token_id:\d+$/);
    }
  });
});

describe('stop_reason', () => {
  it('names the stop token (the last of token_ids) or the stop string that ended the choice', async () => {
    const plain = await chat({ return_token_ids: true });
    const first: number = plain.json.choices[0].token_ids[0];
    const byToken = await chat({ return_token_ids: true, stop_token_ids: [first] });
    expect(byToken.json.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: first, token_ids: [first] });
    const textFirst: number = (await complete({ return_token_ids: true })).json.choices[0].token_ids[0];
    const byTokenText = await complete({ return_token_ids: true, stop_token_ids: [textFirst] });
    expect(byTokenText.json.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: textFirst, token_ids: [textFirst], text: '' });
    const word = text(plain.json.choices[0].token_ids[1]);
    const byString = await chat({ stop: [word] });
    expect(byString.json.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: word });
    const s = await chat({ stop: [word], stream: true });
    const last = streamed(s.text).at(-1).choices[0];
    expect(last).toMatchObject({ finish_reason: 'stop', stop_reason: word });
    // The model's own end token gives null, as in vLLM.
    const eos = file.model().tokenizer.eosTokenId!;
    const atEnd = await complete({ prompt: 'The sea', logit_bias: { [eos]: 100 }, max_tokens: 3 });
    expect(atEnd.json.choices[0]).toMatchObject({ finish_reason: 'stop', stop_reason: null });
  });
});
