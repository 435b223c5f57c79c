// /v1/chat/completions on the real runtime with a tiny checkpoint, through the official client.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTiny, post, serve, sseFrames, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
let parsed: TestServer;
const messages = [{ role: 'user' as const, content: 'Tell me a short story about a robot.' }];
const greedy = { model: 'qwen3', messages, temperature: 0, max_tokens: 24 };

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model);
  // The same engine behind a second server with the conf's reasoning parser and thinking on.
  parsed = await serve(model, { reasoningParser: true, enableThinking: true });
});

afterAll(async () => {
  await srv?.server.close();
  await parsed?.server.close();
  await model?.engine.close();
});

describe('chat completions', () => {
  it('answers in OpenAI shape with usage, and streaming gives the same text', async () => {
    const a = await srv.client.chat.completions.create(greedy);
    expect(a.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(a).toMatchObject({ object: 'chat.completion', model: 'qwen3', choices: [{ index: 0, message: { role: 'assistant' } }] });
    expect(a.system_fingerprint).toMatch(/^fp_grpst_/);
    expect(Math.abs(a.created - Date.now() / 1000)).toBeLessThan(60);
    const text = a.choices[0].message.content ?? '';
    expect(text.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(a.choices[0].finish_reason);
    const u = a.usage!;
    expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
    expect(u.completion_tokens).toBeLessThanOrEqual(24);
    const tok = await post(`${srv.url}/tokenize`, { messages });
    expect(u.prompt_tokens).toBe(tok.json.count);

    const b = await srv.client.chat.completions.create(greedy);
    expect(b.id).not.toBe(a.id);
    expect(b.choices[0].message.content).toBe(text);

    const stream = await srv.client.chat.completions.create({ ...greedy, stream: true });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(text);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe(a.choices[0].finish_reason);
  });

  it('stream_options.include_usage: usage null on every chunk, then a usage chunk, then [DONE]', async () => {
    const raw = await post(`${srv.url}/v1/chat/completions`, { ...greedy, stream: true, stream_options: { include_usage: true } });
    expect(raw.headers['content-type']).toMatch(/^text\/event-stream/);
    const frames = sseFrames(raw.text);
    expect(frames.at(-1)).toBe('[DONE]');
    const last = frames.at(-2);
    expect(last.choices).toEqual([]);
    const plain = await srv.client.chat.completions.create(greedy);
    expect(last.usage).toEqual(plain.usage);
    expect(frames.slice(0, -2).every((f: any) => f.usage === null)).toBe(true);
  });

  it('max_tokens and max_completion_tokens both cap the answer; ignore_eos runs to the cap', async () => {
    for (const cap of [{ max_tokens: 5 }, { max_completion_tokens: 5 }]) {
      const r = await srv.client.chat.completions.create({ model: 'qwen3', messages, temperature: 0, ignore_eos: true, ...cap } as any);
      expect(r.usage?.completion_tokens).toBe(5);
      expect(r.choices[0].finish_reason).toBe('length');
    }
  });

  it('the end token the model samples counts in completion_tokens (as vLLM counts it), streamed the same', async () => {
    const imEnd = model.tokenizer.tokenToId('<|im_end|>')!;
    // +100 on <|im_end|>: the first token sampled is the end; nothing is said, one token was made.
    for (const max_tokens of [1, 5]) {
      const req = { model: 'qwen3', messages, max_tokens, temperature: 0, enable_thinking: false, logit_bias: { [imEnd]: 100 } };
      const r = await srv.client.chat.completions.create(req);
      expect(r.choices[0]).toMatchObject({ finish_reason: 'stop', message: { content: '' } });
      expect(r.usage!.completion_tokens).toBe(1);
      const s = await srv.client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
      let usage: { completion_tokens: number } | undefined;
      for await (const c of s) usage = c.usage ?? usage;
      expect(usage!.completion_tokens).toBe(1);
    }
  });

  it('n=2: two choices; greedy choices agree, seeded ones are reproducible', async () => {
    const g = await srv.client.chat.completions.create({ ...greedy, n: 2 });
    expect(g.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(g.choices[0].message.content).toBe(g.choices[1].message.content);
    expect(g.usage?.completion_tokens).toBe(2 * (await srv.client.chat.completions.create(greedy)).usage!.completion_tokens);

    const seeded = { model: 'qwen3', messages, temperature: 1, max_tokens: 12, n: 2, seed: 1234, ignore_eos: true };
    const s1 = await srv.client.chat.completions.create(seeded as any);
    const s2 = await srv.client.chat.completions.create(seeded as any);
    expect(s1.choices.map((c) => c.message.content)).toEqual(s2.choices.map((c) => c.message.content));
    expect(s1.choices[0].message.content).not.toBe(s1.choices[1].message.content);
    const other = await srv.client.chat.completions.create({ ...seeded, n: 1, seed: 99 } as any);
    expect(other.choices[0].message.content).not.toBe(s1.choices[0].message.content);

    const streamed = await srv.client.chat.completions.create({ ...seeded, stream: true } as any);
    const texts = ['', ''];
    for await (const c of streamed as any) for (const ch of c.choices) texts[ch.index] += ch.delta.content ?? '';
    expect(texts).toEqual(s1.choices.map((c) => c.message.content));
  });

  it('stop strings end the answer before them, also when streamed', async () => {
    const long = { ...greedy, max_tokens: 32, ignore_eos: true };
    const full = (await srv.client.chat.completions.create(long)).choices[0].message.content!;
    const chars = Array.from(full);
    const stop = chars.slice(Math.floor(chars.length / 2), Math.floor(chars.length / 2) + 3).join('');
    const expected = full.slice(0, full.indexOf(stop));
    const r = await srv.client.chat.completions.create({ ...long, stop: [stop, 'never-in-output'] });
    expect(r.choices[0].message.content).toBe(expected);
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.usage!.completion_tokens).toBeLessThan(32);
    const s = await srv.client.chat.completions.create({ ...long, stop, stream: true });
    let streamed = '';
    for await (const c of s) streamed += c.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(expected);
  });

  it('logprobs and top_logprobs in OpenAI shape, streamed the same', async () => {
    const r = await srv.client.chat.completions.create({ ...greedy, logprobs: true, top_logprobs: 3 });
    const content = r.choices[0].logprobs!.content!;
    expect(content.length).toBe(r.usage!.completion_tokens);
    for (const e of content) {
      expect(e.top_logprobs.length).toBe(3);
      expect(e.logprob).toBeLessThanOrEqual(0);
      expect(Buffer.from(e.bytes!).toString('utf8').length).toBeGreaterThan(0);
      // Greedy: the chosen token is the most likely one.
      expect(e.top_logprobs[0].logprob).toBeCloseTo(e.logprob, 4);
      expect(e.top_logprobs[1].logprob).toBeLessThanOrEqual(e.top_logprobs[0].logprob);
    }
    expect(Buffer.concat(content.map((e) => Buffer.from(e.bytes!))).toString('utf8')).toBe(r.choices[0].message.content);
    const s = await srv.client.chat.completions.create({ ...greedy, logprobs: true, top_logprobs: 3, stream: true });
    const streamed = [];
    for await (const c of s) streamed.push(...(c.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
    const none = await srv.client.chat.completions.create(greedy);
    expect(none.choices[0].logprobs).toBeNull();
  });

  it('thinking: both spellings and the conf default give the same prompt; off adds the empty think block', async () => {
    const on = await srv.client.chat.completions.create({ ...greedy, enable_thinking: true } as any);
    const offSeed = await srv.client.chat.completions.create({ ...greedy, enable_thinking: false } as any);
    const offVllm = await srv.client.chat.completions.create({ ...greedy, chat_template_kwargs: { enable_thinking: false } } as any);
    const byDefault = await srv.client.chat.completions.create(greedy);
    // <think>, \n\n, </think>, \n\n
    expect(offSeed.usage!.prompt_tokens).toBe(on.usage!.prompt_tokens + 4);
    expect(offVllm.usage).toEqual(offSeed.usage);
    expect(offVllm.choices[0].message.content).toBe(offSeed.choices[0].message.content);
    expect(byDefault.usage).toEqual(offSeed.usage);
    const onByDefault = await parsed.client.chat.completions.create(greedy);
    expect(onByDefault.usage!.prompt_tokens).toBe(on.usage!.prompt_tokens);
  });

  it('reasoning parser: reasoning_content appears as a field, and an answer without a think block stays content', async () => {
    const plain = await srv.client.chat.completions.create({ ...greedy, enable_thinking: true } as any);
    expect(plain.choices[0].message).not.toHaveProperty('reasoning_content');
    const r = await parsed.client.chat.completions.create(greedy);
    expect(r.choices[0].message.content).toBe(plain.choices[0].message.content);
    expect((r.choices[0].message as any).reasoning_content).toBeNull();
    expect((r.choices[0].message as any).reasoning).toBeNull();
    const off = await parsed.client.chat.completions.create({ ...greedy, enable_thinking: false } as any);
    expect((off.choices[0].message as any).reasoning_content).toBeNull();
    expect(off.choices[0].message.content!.length).toBeGreaterThan(0);
    const s = await parsed.client.chat.completions.create({ ...greedy, stream: true });
    let text = '';
    for await (const c of s) {
      expect((c.choices[0]?.delta as any)?.reasoning_content).toBeUndefined();
      text += c.choices[0]?.delta.content ?? '';
    }
    expect(text).toBe(plain.choices[0].message.content);
  });

  it('a think block the model leaves open is returned: reasoning_content with the parser, inline without', async () => {
    // The prompt continues an assistant turn that opened <think>; the random model never closes it.
    const prefill = {
      ...greedy,
      messages: [...messages, { role: 'assistant' as const, content: '<think>\nLet me think' }],
      continue_final_message: true,
      enable_thinking: true,
      max_tokens: 10,
      ignore_eos: true,
    };
    const inline = await srv.client.chat.completions.create(prefill as any);
    const text = inline.choices[0].message.content!;
    expect(text.length).toBeGreaterThan(0);
    expect(inline.choices[0].finish_reason).toBe('length');
    const sep = await parsed.client.chat.completions.create(prefill as any);
    expect((sep.choices[0].message as any).reasoning_content).toBe(text);
    // vLLM's newer name for the same field, for the clients that read only it.
    expect((sep.choices[0].message as any).reasoning).toBe(text);
    expect(sep.choices[0].message.content).toBeNull();
    const s = await parsed.client.chat.completions.create({ ...prefill, stream: true } as any);
    let reasoning = '';
    let renamed = '';
    let content = '';
    for await (const c of s as any) {
      reasoning += c.choices[0]?.delta.reasoning_content ?? '';
      renamed += c.choices[0]?.delta.reasoning ?? '';
      content += c.choices[0]?.delta.content ?? '';
    }
    expect(reasoning).toBe(text);
    expect(renamed).toBe(text);
    expect(content).toBe('');
    const tok = await post(`${srv.url}/tokenize`, { messages: prefill.messages, add_generation_prompt: false, enable_thinking: true });
    // The continued prompt is the full render cut after the assistant's text (no <|im_end|> after it).
    expect(inline.usage!.prompt_tokens).toBeLessThan(tok.json.count);
  });

  it('user-typed special tokens stay text', async () => {
    const typed = await post(`${srv.url}/tokenize`, { messages: [{ role: 'user', content: 'a <|im_end|> b <think>' }] });
    const imEnd = model.tokenizer.tokenToId('<|im_end|>');
    const think = model.tokenizer.tokenToId('<think>');
    // Only the template's own <|im_end|> after the user turn and its empty think block (thinking
    // is off by default) are control tokens.
    expect(typed.json.tokens.filter((t: number) => t === imEnd).length).toBe(1);
    expect(typed.json.tokens.filter((t: number) => t === think).length).toBe(1);
    const r = await srv.client.chat.completions.create({ ...greedy, messages: [{ role: 'user', content: 'a <|im_end|> b <think>' }] });
    expect(r.usage!.prompt_tokens).toBe(typed.json.count);
  });
});
