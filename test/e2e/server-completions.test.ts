// /v1/completions on the real runtime: raw prompts, echo, prompt logprobs as lm-evaluation-harness
// asks for them, stop strings, several prompts and choices; checked against transformers' numbers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refs } from '../helpers/fixtures.js';
import { loadTiny, post, serve, sseFrames, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
const ref = refs('tiny-a');
const chatRef = ref.prompts.find((p) => p.name === 'chat')!;
const englishRef = ref.prompts.find((p) => p.name === 'english')!;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

describe('completions', () => {
  it('greedy tokens from a token prompt match transformers', async () => {
    const n = chatRef.greedy.ids.length;
    const r = await srv.client.completions.create({ model: 'qwen3', prompt: chatRef.prompt_ids, max_tokens: n, temperature: 0, ignore_eos: true, logprobs: 0 } as any);
    expect(r.id).toMatch(/^cmpl-/);
    expect(r).toMatchObject({ object: 'text_completion', model: 'qwen3', choices: [{ index: 0, finish_reason: 'length' }] });
    expect(r.usage).toMatchObject({ prompt_tokens: chatRef.prompt_ids.length, completion_tokens: n });
    expect(r.choices[0].text).toBe(model.tokenizer.decode(chatRef.greedy.ids));
    const lp = r.choices[0].logprobs!;
    expect(lp.token_logprobs!.length).toBe(n);
    lp.token_logprobs!.forEach((x, i) => expect(Math.abs(x! - chatRef.greedy.logprobs[i])).toBeLessThan(0.1));
  });

  it('echo + logprobs + max_tokens 0 returns the prompt logprobs (lm-evaluation-harness)', async () => {
    const ids = englishRef.prompt_ids;
    const r = await srv.client.completions.create({ model: 'qwen3', prompt: ids, max_tokens: 0, echo: true, logprobs: 1, temperature: 0 });
    const c = r.choices[0];
    expect(c.text).toBe(model.tokenizer.decode(ids));
    const lp = c.logprobs!;
    expect(lp.tokens!.length).toBe(ids.length);
    expect(lp.token_logprobs![0]).toBeNull();
    expect(lp.top_logprobs![0]).toBeNull();
    // prompt_logprobs[k] is the logprob of ids[k + 1] given the ones before it.
    const diffs = englishRef.prompt_logprobs.map((want, k) => Math.abs(lp.token_logprobs![k + 1]! - want));
    expect(Math.max(...diffs)).toBeLessThan(0.5);
    expect(diffs.reduce((a, b) => a + b, 0) / diffs.length).toBeLessThan(0.1);
    for (let k = 1; k < ids.length; k++) {
      const top = lp.top_logprobs![k]!;
      // The dict holds the top alternative and the prompt token itself.
      expect(top[lp.tokens![k]]).toBeCloseTo(lp.token_logprobs![k]!, 4);
      expect(Math.max(...Object.values(top))).toBeGreaterThanOrEqual(lp.token_logprobs![k]! - 1e-6);
    }
    expect(lp.text_offset![0]).toBe(0);
    expect(lp.text_offset![1]).toBe(lp.tokens![0].length);
    expect(r.usage).toMatchObject({ prompt_tokens: ids.length, completion_tokens: 0 });
  });

  it('a generated end token has its logprob entry, the last one, which lm-evaluation-harness reads as the continuation', async () => {
    const ids = englishRef.prompt_ids;
    const eos = model.tokenizer.tokenToId('<|endoftext|>')!;
    const req = { model: 'qwen3', prompt: ids, max_tokens: 1, echo: true, logprobs: 1, temperature: 0 };
    const plain = (await srv.client.completions.create(req)).choices[0].logprobs!;
    expect(plain.tokens!.length).toBe(ids.length + 1);
    const r = await srv.client.completions.create({ ...req, logit_bias: { [eos]: 100 } });
    const c = r.choices[0];
    expect(c.finish_reason).toBe('stop');
    expect(r.usage!.completion_tokens).toBe(1);
    const lp = c.logprobs!;
    expect(lp.tokens!.length).toBe(ids.length + 1);
    expect(lp.tokens!.at(-1)).toBe('<|endoftext|>');
    // The model's own logprob of the end token (logit_bias does not change reported logprobs): finite, and the prompt's are untouched.
    expect(Number.isFinite(lp.token_logprobs!.at(-1))).toBe(true);
    expect(lp.token_logprobs!.slice(0, -1)).toEqual(plain.token_logprobs!.slice(0, -1));
    // Chat: one logprobs entry per completion token, the end token's included.
    const chat = await srv.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0, logprobs: true, logit_bias: { [eos]: 100 } });
    expect(chat.choices[0].logprobs!.content!.length).toBe(chat.usage!.completion_tokens);
  });

  it('echo with a text prompt puts the prompt first; streaming gives the same text', async () => {
    const req = { model: 'qwen3', prompt: 'The history of the ', max_tokens: 10, temperature: 0, echo: true, ignore_eos: true };
    const r = await srv.client.completions.create(req);
    expect(r.choices[0].text.startsWith('The history of the ')).toBe(true);
    expect(r.choices[0].text.length).toBeGreaterThan('The history of the '.length);
    const s = await srv.client.completions.create({ ...req, stream: true });
    let text = '';
    for await (const c of s) text += c.choices[0]?.text ?? '';
    expect(text).toBe(r.choices[0].text);
  });

  it('several prompts times n: choices indexed prompt-major; usage counts each prompt once', async () => {
    const r = await srv.client.completions.create({ model: 'qwen3', prompt: ['Hello', 'The sky is'], n: 2, max_tokens: 4, temperature: 0, ignore_eos: true } as any);
    expect(r.choices.map((c) => c.index).sort()).toEqual([0, 1, 2, 3]);
    const byIndex = [...r.choices].sort((a, b) => a.index - b.index).map((c) => c.text);
    expect(byIndex[0]).toBe(byIndex[1]);
    expect(byIndex[2]).toBe(byIndex[3]);
    expect(byIndex[0]).not.toBe(byIndex[2]);
    const single = await srv.client.completions.create({ model: 'qwen3', prompt: 'The sky is', max_tokens: 4, temperature: 0, ignore_eos: true } as any);
    expect(byIndex[2]).toBe(single.choices[0].text);
    expect(r.usage).toMatchObject({ prompt_tokens: 1 + single.usage!.prompt_tokens, completion_tokens: 16 });
  });

  it('stop strings never leak, whatever the token boundaries', async () => {
    const base = { model: 'qwen3', prompt: chatRef.prompt_ids, max_tokens: 24, temperature: 0, ignore_eos: true };
    const full = (await srv.client.completions.create(base)).choices[0].text;
    const chars = Array.from(full);
    for (const at of [2, Math.floor(chars.length / 2), chars.length - 4]) {
      const stop = chars.slice(at, at + 3).join('');
      const expected = full.slice(0, full.indexOf(stop));
      const r = await srv.client.completions.create({ ...base, stop });
      expect(r.choices[0].text).toBe(expected);
      expect(r.choices[0].finish_reason).toBe('stop');
      const raw = await post(`${srv.url}/v1/completions`, { ...base, stop, stream: true });
      const frames = sseFrames(raw.text);
      expect(frames.at(-1)).toBe('[DONE]');
      expect(frames.slice(0, -1).map((f: any) => f.choices[0].text).join('')).toBe(expected);
    }
  });

  it("the conf's stop_words and bad_words apply to every request", async () => {
    const base = { model: 'qwen3', max_tokens: 12, temperature: 0, ignore_eos: true, logprobs: 0 };
    const plain = await srv.client.completions.create({ ...base, prompt: 'Hello' });
    const first = plain.choices[0].logprobs!.tokens![0];
    // bad_words take words that are one token; this one is.
    expect(model.tokenizer.encode(first, { allowSpecial: false }).length).toBe(1);
    const banned = await serve(model, { badWords: [first.trim()] });
    const b = await banned.client.completions.create({ ...base, prompt: 'Hello' });
    expect(b.choices[0].logprobs!.tokens!).not.toContain(first);
    expect(b.choices[0].logprobs!.tokens!).not.toContain(first.trim());
    expect(b.usage!.completion_tokens).toBe(12);
    await banned.server.close();

    const varied = { ...base, prompt: chatRef.prompt_ids };
    const full = (await srv.client.completions.create(varied)).choices[0].text;
    const stopWord = Array.from(full).slice(4, 7).join('');
    const stopping = await serve(model, { stopWords: [stopWord] });
    const s = await stopping.client.completions.create(varied);
    expect(s.choices[0].text).toBe(full.slice(0, full.indexOf(stopWord)));
    expect(s.choices[0].finish_reason).toBe('stop');
    await stopping.server.close();

    // A stop word that is one special token stops at that token, though special tokens are not in the text.
    const imStart = model.tokenizer.tokenToId('<|im_start|>')!;
    const forced = { ...base, ignore_eos: false, prompt: 'Hello', logit_bias: { [imStart]: 100 } };
    expect((await srv.client.completions.create(forced)).choices[0]).toMatchObject({ finish_reason: 'length', text: '' });
    const special = await serve(model, { stopWords: ['<|im_start|>'] });
    const r = await special.client.completions.create(forced);
    expect(r.choices[0]).toMatchObject({ finish_reason: 'stop', text: '' });
    expect(r.usage!.completion_tokens).toBe(1);
    await special.server.close();
  });

  it("the conf's end_token_id ends generation at that token, as its end-of-text does", async () => {
    // This tiny model's greedy answer repeats one token: with it as the end token, nothing is said.
    const greedy = chatRef.greedy.ids;
    const req = { model: 'qwen3', prompt: chatRef.prompt_ids, max_tokens: greedy.length, temperature: 0 };
    const plain = await srv.client.completions.create(req);
    expect(plain.choices[0]).toMatchObject({ finish_reason: 'length', text: model.tokenizer.decode(greedy) });
    const ending = await serve(model, { endTokenId: greedy[0] });
    const r = await ending.client.completions.create(req);
    expect(r.choices[0]).toMatchObject({ finish_reason: 'stop', text: '' });
    await ending.server.close();
    // An end token the answer never holds changes nothing.
    const other = englishRef.greedy.ids[0];
    expect(greedy).not.toContain(other);
    const unused = await serve(model, { endTokenId: other });
    expect((await unused.client.completions.create(req)).choices[0]).toMatchObject({ finish_reason: 'length', text: plain.choices[0].text });
    await unused.server.close();
  });

  it("the conf's skip_special_tokens list leaves out exactly those ids (grps_trtllm's form); true leaves out every special token", async () => {
    const objectRef = model.tokenizer.tokenToId('<|object_ref_start|>')!;
    const req = { model: 'qwen3', prompt: 'Hello', max_tokens: 2, temperature: 0, ignore_eos: true, logit_bias: { [objectRef]: 100 } };
    expect((await srv.client.completions.create(req)).choices[0].text).toBe(''); // every special token skipped
    const listed = await serve(model, { skipTokenIds: [model.tokenizer.tokenToId('<|endoftext|>')!] });
    expect((await listed.client.completions.create(req)).choices[0].text).toBe('<|object_ref_start|><|object_ref_start|>');
    await listed.server.close();
    const listing = await serve(model, { skipTokenIds: [objectRef] });
    expect((await listing.client.completions.create(req)).choices[0].text).toBe('');
    await listing.server.close();
  });

  it('seeded sampling is reproducible and differs between seeds', async () => {
    const req = { model: 'qwen3', prompt: 'Once upon a time', max_tokens: 12, temperature: 1, top_p: 0.95, top_k: 50, ignore_eos: true };
    const a = await srv.client.completions.create({ ...req, seed: 7 });
    const b = await srv.client.completions.create({ ...req, seed: 7 });
    const c = await srv.client.completions.create({ ...req, seed: 8 });
    expect(a.choices[0].text).toBe(b.choices[0].text);
    expect(a.choices[0].text).not.toBe(c.choices[0].text);
  });

  it('logit_bias steers sampling (+100 forces a token, -100 bans one) and bad keys get a 400', async () => {
    const req = { model: 'qwen3', prompt: chatRef.prompt_ids, max_tokens: 3, temperature: 0, ignore_eos: true, logprobs: 0 };
    const plain = await srv.client.completions.create(req as any);
    const first = chatRef.greedy.ids[0];
    const hello = model.tokenizer.encode('Hello')[0];
    expect(first).not.toBe(hello);
    const forced = await srv.client.completions.create({ ...req, logit_bias: { [hello]: 100 } } as any);
    expect(forced.choices[0].text).toBe('HelloHelloHello');
    // the logprobs stay the model's own (OpenAI's behaviour): not those of a biased distribution
    expect(forced.choices[0].logprobs!.token_logprobs![0]).toBeLessThan(-1);
    const banned = await srv.client.completions.create({ ...req, logit_bias: { [first]: -100 } } as any);
    expect(model.tokenizer.encode(banned.choices[0].text)[0]).not.toBe(first);
    expect(banned.choices[0].text).not.toBe(plain.choices[0].text);
    // the same through the chat route, streamed
    const chat = await srv.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0, logit_bias: { [hello]: 100 }, stream: true });
    let streamed = '';
    for await (const chunk of chat) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toBe('HelloHello');
    for (const bias of [{ abc: 5 }, { [hello]: 101 }, { [model.tokenizer.vocabSize + 5]: 1 }]) {
      const r = await post(`${srv.url}/v1/completions`, { ...req, logit_bias: bias });
      expect(r.status, r.text).toBe(400);
      expect(r.json.error).toMatchObject({ type: 'invalid_request_error', param: expect.stringMatching(/^logit_bias/) });
    }
  });
});
