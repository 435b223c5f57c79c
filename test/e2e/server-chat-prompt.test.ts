// The prompt a chat request renders: /tokenize counts exactly the prompt /v1/chat/completions
// generates from, whatever the flags (continue_final_message, add_generation_prompt, thinking,
// reasoning_effort), and refuses what chat refuses. reasoning_effort (OpenAI's chat field) turns
// Qwen3's thinking on or off as /v1/responses' reasoning.effort does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  // Thinking on by default (the seed's default), so turning it off shows in the prompt.
  srv = await serve(model, { enableThinking: true });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

const prefill = [
  { role: 'user', content: 'hi' },
  { role: 'assistant', content: 'Sure, here' },
];
const question = [{ role: 'user', content: 'Tell me about the sea.' }];

async function promptTokens(body: Record<string, unknown>): Promise<number> {
  const r = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', max_tokens: 1, ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json.usage.prompt_tokens;
}

async function tokenized(body: Record<string, unknown>): Promise<number[]> {
  const r = await post(`${srv.url}/tokenize`, { model: 'qwen3', ...body });
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  expect(r.json.count).toBe(r.json.tokens.length);
  return r.json.tokens;
}

describe('/tokenize renders as chat does', () => {
  it('counts what chat counts for continue_final_message, add_generation_prompt and thinking, in every combination', async () => {
    const flagSets: Record<string, unknown>[] = [
      { continue_final_message: true, add_generation_prompt: false },
      { continue_final_message: true },
      { continue_final_message: false, add_generation_prompt: false },
      { add_generation_prompt: true },
      {},
    ];
    for (const flags of flagSets)
      for (const thinking of [{}, { enable_thinking: false }, { reasoning_effort: 'none' }, { chat_template_kwargs: { enable_thinking: false, extra: 1 } }]) {
        const body = { messages: prefill, ...flags, ...thinking };
        expect(await tokenized(body), JSON.stringify(body)).toHaveLength(await promptTokens(body));
      }
    // Continuing the final message: the prompt ends with its text, with no end of turn after it.
    const cont = await tokenized({ messages: prefill, continue_final_message: true });
    expect(model.tokenizer.decode(cont).endsWith('Sure, here')).toBe(true);
  });

  it('refuses what chat refuses, with the same error', async () => {
    for (const body of [
      { messages: prefill, continue_final_message: true, add_generation_prompt: true },
      { messages: question, continue_final_message: true },
      { messages: question, reasoning_effort: 'none', enable_thinking: true },
    ]) {
      const c = await post(`${srv.url}/v1/chat/completions`, { ...body, max_tokens: 1 });
      const t = await post(`${srv.url}/tokenize`, body);
      expect(c.status, JSON.stringify(body)).toBe(400);
      expect(t.status).toBe(400);
      expect(t.json.error).toEqual(c.json.error);
    }
  });
});

describe('content parts', () => {
  const refused = [{ role: 'user', content: 'hi' }];

  it('an assistant refusal part is the turn\'s text, as a replayed OpenAI conversation sends it', async () => {
    const asText = [...refused, { role: 'assistant', content: 'I cannot help with that.' }, { role: 'user', content: 'Why?' }];
    const asRefusal = [...refused, { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot help with that.' }] }, { role: 'user', content: 'Why?' }];
    expect(await tokenized({ messages: asRefusal })).toEqual(await tokenized({ messages: asText }));
    // The official client's typed shape, through chat itself.
    const r = await srv.client.chat.completions.create({
      model: 'qwen3',
      max_tokens: 1,
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot help with that.' }] },
        { role: 'user', content: 'Why?' },
      ],
    });
    expect(r.usage?.prompt_tokens).toBe((await tokenized({ messages: asText })).length);
  });

  it('a text or refusal part without its string is a 400 naming the missing field, not an unsupported type', async () => {
    for (const [part, param] of [
      [{ type: 'text' }, 'messages[0].content[0].text'],
      [{ type: 'refusal' }, 'messages[0].content[0].refusal'],
    ] as const) {
      const r = await post(`${srv.url}/v1/chat/completions`, { messages: [{ role: 'user', content: [part] }], max_tokens: 1 });
      expect(r.status).toBe(400);
      expect(r.json.error).toMatchObject({ param, code: 'missing_required_parameter' });
      expect(r.json.error.message).not.toContain('not supported');
    }
  });
});

describe('reasoning_effort', () => {
  it('"none" and "minimal" turn thinking off, "low" / "medium" / "high" on, as reasoning.effort does on /v1/responses', async () => {
    const off = await promptTokens({ messages: question, enable_thinking: false });
    const on = await promptTokens({ messages: question, enable_thinking: true });
    // Qwen3's template closes an empty think block when thinking is off: the two prompts differ.
    expect(off).not.toBe(on);
    for (const effort of ['none', 'minimal']) expect(await promptTokens({ messages: question, reasoning_effort: effort }), effort).toBe(off);
    for (const effort of ['low', 'medium', 'high']) expect(await promptTokens({ messages: question, reasoning_effort: effort }), effort).toBe(on);
    // The openai client's own field.
    const r = await srv.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'Tell me about the sea.' }], max_tokens: 1, reasoning_effort: 'minimal' });
    expect(r.usage?.prompt_tokens).toBe(off);
  });

  it('an unknown effort is a 400 listing the allowed values; one that contradicts enable_thinking is a 400, one that agrees is served', async () => {
    const bogus = await post(`${srv.url}/v1/chat/completions`, { messages: question, max_tokens: 1, reasoning_effort: 'bogus' });
    expect(bogus.status).toBe(400);
    expect(bogus.json.error.param).toBe('reasoning_effort');
    for (const value of ['"none"', '"minimal"', '"low"', '"medium"', '"high"']) expect(bogus.json.error.message).toContain(value);
    for (const contradiction of [{ reasoning_effort: 'none', enable_thinking: true }, { reasoning_effort: 'high', chat_template_kwargs: { enable_thinking: false } }]) {
      const r = await post(`${srv.url}/v1/chat/completions`, { messages: question, max_tokens: 1, ...contradiction });
      expect(r.status).toBe(400);
      expect(r.json.error.param).toBe('reasoning_effort');
      expect(r.json.error.message).toMatch(/reasoning_effort "(none|high)" turns thinking (off|on), and (enable_thinking|chat_template_kwargs\.enable_thinking) (true|false) turns it (on|off); send one of them\./);
    }
    expect(await promptTokens({ messages: question, reasoning_effort: 'none', enable_thinking: false })).toBe(await promptTokens({ messages: question, enable_thinking: false }));
  });
});
