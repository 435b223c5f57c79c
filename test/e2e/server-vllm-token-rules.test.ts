// vLLM's per-request token rules and the rest of its request fields, as its users send them:
// allowed_token_ids and bad_words change which tokens the answer has, truncate_prompt_tokens
// which prompt tokens it is generated from (and usage counts), stream_options.continuous_usage_stats
// puts the usage in every chunk; what the server cannot honour is a 400 naming the field, and
// what changes nothing for this model leaves the answer as it was. The tiny random-weight model
// repeats one token greedily, so an answer free of that token was steered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions, type ServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { badWordForms } from '../../src/server/openai/token-rules.js';
import { loadTiny, post, sseFrames, type TinyModel } from './server-harness.js';

let model: TinyModel;
let server: RunningServer;
const servers: RunningServer[] = [];

async function start(overrides: Partial<ServerOptions> = {}): Promise<RunningServer> {
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  const s = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, constraints }, { ...defaultServerOptions, host: '127.0.0.1', port: 0, ...overrides });
  servers.push(s);
  return s;
}

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  server = await start();
});

afterAll(async () => {
  for (const s of servers) await s.close();
  await model?.engine.close();
});

const messages = [{ role: 'user', content: 'Tell me about the sea.' }];
const chat = (extra: Record<string, unknown>, url = server.url) => post(`${url}/v1/chat/completions`, { model: 'qwen3', messages, max_tokens: 8, temperature: 0, ...extra });
const complete = (extra: Record<string, unknown>, url = server.url) => post(`${url}/v1/completions`, { model: 'qwen3', prompt: 'The sea is', max_tokens: 8, temperature: 0, ...extra });
/** The answer's tokens, as chat's logprobs name them. */
const chatTokens = async (extra: Record<string, unknown>, url = server.url): Promise<string[]> => {
  const r = await chat({ logprobs: true, ...extra }, url);
  expect(r.status, JSON.stringify(r.json)).toBe(200);
  return r.json.choices[0].logprobs.content.map((e: { token: string }) => e.token);
};

describe('allowed_token_ids', () => {
  const words = ['Hello', ' world'];
  const ids = () => words.map((w) => {
    const enc = model.tokenizer.encode(w);
    expect(enc).toHaveLength(1);
    return enc[0];
  });

  it('only those tokens are sampled, greedy or not, streamed or not, on both endpoints', async () => {
    // Unconstrained, the model writes other tokens: the rule below is what keeps them out.
    expect((await chatTokens({})).every((t) => words.includes(t))).toBe(false);
    for (const temperature of [0, 1.5]) {
      const tokens = await chatTokens({ allowed_token_ids: ids(), temperature, seed: 5, max_tokens: 12 });
      expect(tokens).toHaveLength(12);
      expect(tokens.filter((t) => !words.includes(t)), tokens.join('|')).toEqual([]);
    }
    const text = await complete({ allowed_token_ids: ids(), logprobs: 0, n: 2, temperature: 1.2, seed: 3 });
    expect(text.status, JSON.stringify(text.json)).toBe(200);
    for (const c of text.json.choices) expect(c.logprobs.tokens.filter((t: string) => !words.includes(t))).toEqual([]);
    const s = await chat({ allowed_token_ids: ids(), stream: true, temperature: 1 });
    const streamed = sseFrames(s.text).filter((f) => f !== '[DONE]').map((f) => f.choices[0]?.delta?.content ?? '').join('');
    expect(streamed).toMatch(/^(Hello| world)+$/);
  });

  it('with a grammar (response_format, guided_choice, a forced tool call) is refused naming both; ids past the vocabulary, none, or all banned are 400s', async () => {
    const tool = { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: {} } } };
    const cases: [Promise<Awaited<ReturnType<typeof post>>>, string][] = [
      [chat({ allowed_token_ids: ids(), response_format: { type: 'json_object' } }), 'response_format'],
      [complete({ allowed_token_ids: ids(), guided_choice: ['a', 'b'] }), 'guided_choice'],
      [chat({ allowed_token_ids: ids(), tools: [tool], tool_choice: 'required' }), 'tool_choice'],
    ];
    for (const [pending, other] of cases) {
      const r = await pending;
      expect(r.status).toBe(400);
      expect(r.json.error).toMatchObject({ param: 'allowed_token_ids', code: 'unsupported_parameter' });
      expect(r.json.error.message).toContain(`allowed_token_ids cannot be combined with ${other}`);
    }
    const past = await chat({ allowed_token_ids: [ids()[0], model.tokenizer.vocabSize] });
    expect(past.json.error).toMatchObject({ param: 'allowed_token_ids', code: 'invalid_value' });
    expect((await complete({ allowed_token_ids: [] })).json.error.param).toBe('allowed_token_ids');
    const banned = await chat({ allowed_token_ids: [ids()[0]], bad_words: [words[0]] });
    expect(banned.status).toBe(400);
    expect(banned.json.error.message).toContain('Every token in allowed_token_ids is banned by bad_words');
  });
});

describe('bad_words', () => {
  it("bans each single-token word from the answer, on top of the inference conf's bad_words", async () => {
    const plain = await chatTokens({});
    const first = plain[0];
    const banned = await chatTokens({ bad_words: [first] });
    expect(banned).not.toContain(first);
    const text = await complete({ logprobs: 0 });
    const textFirst = text.json.choices[0].logprobs.tokens[0];
    const bannedText = await complete({ logprobs: 0, bad_words: [textFirst] });
    expect(bannedText.json.choices[0].logprobs.tokens).not.toContain(textFirst);
    // A server whose conf bans the first word: the request's own word is banned as well as the conf's.
    const confBans = await start({ badWords: [first] });
    const underConf = await chatTokens({}, confBans.url);
    expect(underConf).not.toContain(first);
    const second = underConf[0];
    const both = await chatTokens({ bad_words: [second] }, confBans.url);
    expect(both).not.toContain(first);
    expect(both).not.toContain(second);
  });

  it("a word of several tokens is banned as a sequence: its last token never follows the rest, by the request's bad_words or the conf's", async () => {
    const plain = await chatTokens({ max_tokens: 12 });
    // Two answer tokens that are one of a word's forms (the word after a space, or alone).
    const idOf = (t: string) => model.tokenizer.encode(t, { allowSpecial: false });
    const at = plain.findIndex((t, k) => {
      if (k + 1 >= plain.length || idOf(t).length !== 1 || idOf(plain[k + 1]).length !== 1) return false;
      const pair = [idOf(t)[0], idOf(plain[k + 1])[0]];
      return badWordForms(model.tokenizer, t + plain[k + 1]).some((f) => f.length === 2 && f[0] === pair[0] && f[1] === pair[1]);
    });
    expect(at, `no two-token word in ${JSON.stringify(plain)}`).toBeGreaterThanOrEqual(0);
    const [first, second] = [plain[at], plain[at + 1]];
    const word = first + second;
    const noPair = (tokens: string[]) => {
      for (let k = 1; k < tokens.length; k++) expect([tokens[k - 1], tokens[k]], `${JSON.stringify(word)} at ${k}`).not.toEqual([first, second]);
    };
    const banned = await chatTokens({ max_tokens: 12, bad_words: [word] });
    noPair(banned);
    expect(banned.slice(0, at + 1)).toEqual(plain.slice(0, at + 1)); // up to the word's first token, as before
    const text = await complete({ logprobs: 0, max_tokens: 12, bad_words: [word], n: 2, temperature: 0.8, seed: 4 });
    for (const c of text.json.choices) noPair(c.logprobs.tokens);
    const confBans = await start({ badWords: [word] });
    noPair(await chatTokens({ max_tokens: 12 }, confBans.url));
  });

  it('a word of spaces only bans nothing and is a 400 naming it', async () => {
    const r = await chat({ bad_words: ['sea', '   '] });
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ param: 'bad_words[1]', type: 'invalid_request_error' });
    expect(r.json.error.message).toContain('is only spaces');
  });
});

describe('truncate_prompt_tokens', () => {
  it('chat keeps the last N tokens of the rendered prompt, and usage counts them', async () => {
    const rendered: number[] = (await post(`${server.url}/tokenize`, { messages })).json.tokens;
    expect(rendered.length).toBeGreaterThan(8);
    const cut = await chat({ truncate_prompt_tokens: 6 });
    expect(cut.status, JSON.stringify(cut.json)).toBe(200);
    expect(cut.json.usage.prompt_tokens).toBe(6);
    const same = await complete({ prompt: rendered.slice(-6) });
    expect(cut.json.choices[0].message.content).toBe(same.json.choices[0].text);
    // -1 keeps as many as a prompt may have: all of this one.
    expect((await chat({ truncate_prompt_tokens: -1 })).json.usage.prompt_tokens).toBe(rendered.length);
  });

  it('completions keep the last N tokens of each prompt (token ids or text), and an echo repeats what was kept', async () => {
    const ids = model.tokenizer.encode('The sea is deep and the sky is wide');
    const cut = await complete({ prompt: ids, truncate_prompt_tokens: 3, echo: true });
    expect(cut.json.usage.prompt_tokens).toBe(3);
    const same = await complete({ prompt: ids.slice(-3), echo: true });
    expect(cut.json.choices[0].text).toBe(same.json.choices[0].text);
    const text = await complete({ prompt: ['The sea is deep and the sky is wide', 'hi'], truncate_prompt_tokens: 2, echo: true, max_tokens: 1 });
    expect(text.json.usage.prompt_tokens).toBe(2 + 1);
    expect(text.json.choices[0].text.startsWith(model.tokenizer.decode(ids.slice(-2)))).toBe(true);
  });

  it('0, or more than a prompt may have, is a 400 naming it', async () => {
    for (const bad of [0, 100_000]) {
      const r = await complete({ truncate_prompt_tokens: bad });
      expect(r.status).toBe(400);
      expect(r.json.error.param).toBe('truncate_prompt_tokens');
    }
  });
});

describe('cache_salt', () => {
  it('only requests with the same salt share cached prompt blocks; unsalted ones share only with each other', async () => {
    const long = { messages: [{ role: 'user', content: 'The sea is deep and wide and blue, and the sky above it is wide and grey today. '.repeat(4) }], max_tokens: 1 };
    const cached = async (extra: Record<string, unknown>) => {
      const r = await chat({ ...long, ...extra });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      return r.json.usage.prompt_tokens_details?.cached_tokens ?? 0;
    };
    const saltA = `a-${Date.now()}-${Math.random()}`;
    const saltB = `b-${Date.now()}-${Math.random()}`;
    expect(await cached({ cache_salt: saltA })).toBe(0);
    expect(await cached({ cache_salt: saltA })).toBeGreaterThan(16);
    expect(await cached({ cache_salt: saltB })).toBe(0);
    expect(await cached({})).toBe(0);
    expect(await cached({})).toBeGreaterThan(16);
    expect(await cached({ cache_salt: saltB })).toBeGreaterThan(16);
    const empty = await chat({ ...long, cache_salt: '' });
    expect(empty.status).toBe(400);
    expect(empty.json.error.param).toBe('cache_salt');
  });
});

describe('include_reasoning', () => {
  it('false: the model thinks as before and the answer leaves the reasoning out, whole and streamed', async () => {
    const parsed = await start({ reasoningParser: true });
    // A reply continued inside its think block, closed after five tokens: reasoning, then an answer.
    const thinking = {
      messages: [{ role: 'user', content: 'Count to three.' }, { role: 'assistant', content: '<think>\nOne' }],
      continue_final_message: true,
      add_generation_prompt: false,
      thinking_token_budget: 5,
      chat_template_kwargs: { enable_thinking: true },
      ignore_eos: true,
      max_tokens: 16,
    };
    const full = await chat(thinking, parsed.url);
    expect(full.json.choices[0].message.reasoning_content).toBeTruthy();
    expect(full.json.choices[0].message.content).toBeTruthy();
    const without = await chat({ ...thinking, include_reasoning: false }, parsed.url);
    expect(without.status, JSON.stringify(without.json)).toBe(200);
    expect(without.json.choices[0].message.reasoning_content).toBeNull();
    expect(without.json.choices[0].message.content).toBe(full.json.choices[0].message.content);
    expect(without.json.usage.completion_tokens).toBe(full.json.usage.completion_tokens);
    const s = await chat({ ...thinking, include_reasoning: false, stream: true }, parsed.url);
    const deltas = sseFrames(s.text).filter((f) => f !== '[DONE]').map((f) => f.choices[0]?.delta ?? {});
    expect(deltas.some((d) => 'reasoning_content' in d)).toBe(false);
    expect(deltas.map((d) => d.content ?? '').join('')).toBe(full.json.choices[0].message.content ?? '');
  });
});

describe('echo on chat', () => {
  it("each answer starts with the final assistant message it continues, whole or streamed; after a user message it changes nothing", async () => {
    const continued = { messages: [...messages, { role: 'assistant', content: 'The sea is' }], add_generation_prompt: false, continue_final_message: true };
    const plain = await chat(continued);
    const echoed = await chat({ ...continued, echo: true, n: 2 });
    expect(echoed.status, JSON.stringify(echoed.json)).toBe(200);
    for (const c of echoed.json.choices) expect(c.message.content).toBe(`The sea is${plain.json.choices[0].message.content}`);
    const s = await chat({ ...continued, echo: true, stream: true });
    const deltas = sseFrames(s.text).filter((f) => f !== '[DONE]').map((f) => f.choices[0]?.delta?.content ?? '');
    expect(deltas[1]).toBe('The sea is'); // right after the role chunk
    expect(deltas.join('')).toBe(echoed.json.choices[0].message.content);
    const parts = await chat({ ...continued, messages: [...messages, { role: 'assistant', content: [{ type: 'text', text: 'The sea' }, { type: 'text', text: 'is' }] }], echo: true });
    expect(parts.json.choices[0].message.content.startsWith('The sea\nis')).toBe(true);
    const afterUser = await chat({ echo: true });
    expect(afterUser.json.choices[0].message.content).toBe((await chat({})).json.choices[0].message.content);
  });
});

describe("vLLM's other request fields", () => {
  it('best_of other than n, a request chat_template, and the fields this server cannot honour are refused by name', async () => {
    const refused: [string, () => ReturnType<typeof post>, string?][] = [
      ['best_of', () => chat({ best_of: 2 }), 'invalid_value'],
      ['chat_template', () => chat({ chat_template: '{{ messages }}' })],
      ['documents', () => chat({ documents: [{ title: 'sea', text: 'The sea is deep.' }] })],
      ['priority', () => chat({ priority: 1 })],
      ['logits_processors', () => complete({ logits_processors: ['my.Processor'] })],
      ['kv_transfer_params', () => complete({ kv_transfer_params: { do_remote_prefill: true } })],
      ['guided_whitespace_pattern', () => chat({ guided_whitespace_pattern: ' ' })],
      // A structural tag without structures names what is missing.
      ['structural_tag.structures', () => complete({ structural_tag: '{}' }), 'invalid_value'],
      ['prompt_embeds', () => complete({ prompt_embeds: 'AAAA' })],
    ];
    for (const [param, send, code = 'unsupported_parameter'] of refused) {
      const r = await send();
      expect(r.status, `${param}: ${JSON.stringify(r.json)}`).toBe(400);
      expect(r.json.error, param).toMatchObject({ param, code, type: 'invalid_request_error' });
    }
  });

  it("a request's chat_template renders its prompt only where the conf trusts them (vLLM's --trust-request-chat-template)", async () => {
    const own = '{% for m in messages %}<<{{ m.role }}>>{{ m.content }}|{% endfor %}{% if add_generation_prompt %}{{ eos_token }}A:{% endif %}';
    const refused = await chat({ chat_template: own });
    expect(refused.json.error.message).toMatch(/trust_request_chat_template: true/);

    const trusted = await start({ trustRequestChatTemplate: true });
    const tokenize = (extra: Record<string, unknown>) => post(`${trusted.url}/tokenize`, { model: 'qwen3', messages, ...extra });
    // The model's own template sent back renders what no template renders; another renders its own text, with the tokenizer's special-token variables.
    const plain = await tokenize({});
    expect((await tokenize({ chat_template: model.template.source })).json.tokens).toEqual(plain.json.tokens);
    const mine = await tokenize({ chat_template: own });
    expect(mine.status, JSON.stringify(mine.json)).toBe(200);
    const text = `<<user>>Tell me about the sea.|${model.tokenizer.idToToken(model.tokenizer.eosTokenId!)}A:`;
    expect(mine.json.tokens).toEqual(model.tokenizer.encode(text));
    expect(mine.json.tokens).not.toEqual(plain.json.tokens);
    // Chat renders the same prompt: its usage counts those tokens.
    const answered = await chat({ chat_template: own }, trusted.url);
    expect(answered.status, JSON.stringify(answered.json)).toBe(200);
    expect(answered.json.usage.prompt_tokens).toBe(mine.json.count);

    // A template that does not parse, or that fails on these messages, is the request's to fix.
    for (const [template, said] of [['{% for m in messages %}', /chat_template does not parse/], ["{{ raise_exception('no sea today') }}", /chat_template failed to render these messages: .*no sea today/]] as const) {
      const r = await chat({ chat_template: template }, trusted.url);
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error).toMatchObject({ param: 'chat_template', type: 'invalid_request_error' });
      expect(r.json.error.message).toMatch(said);
    }
    expect((await chat({ chat_template: 7 }, trusted.url)).json.error.message).toMatch(/must be a Jinja template string/);
    // The server answers on after them.
    expect((await chat({}, trusted.url)).status).toBe(200);
  });

  it('their neutral values, and the fields that change nothing for this model, leave the answer as it was', async () => {
    const neutral = {
      best_of: 1,
      chat_template: null,
      echo: true, // the last message is the user's: vLLM repeats nothing either
      include_reasoning: true,
      priority: 0,
      logits_processors: [],
      add_special_tokens: true,
      guided_decoding_backend: 'xgrammar',
      mm_processor_kwargs: {},
      length_penalty: 1,
      spaces_between_special_tokens: true,
      return_tokens_as_token_ids: false,
      request_id: 'mine',
      vllm_xargs: {},
    };
    const plain = await chat({});
    const same = await chat(neutral);
    expect(same.status, JSON.stringify(same.json)).toBe(200);
    expect(same.json.choices[0].message.content).toBe(plain.json.choices[0].message.content);
    expect(same.json.usage).toEqual(plain.json.usage);
  });
});

describe('stream_options.continuous_usage_stats', () => {
  it('every chunk carries the usage so far and the last one the total, on chat and completions', async () => {
    for (const [send, final] of [
      [(extra: Record<string, unknown>) => chat(extra), await chat({})],
      [(extra: Record<string, unknown>) => complete(extra), await complete({})],
    ] as const) {
      const r = await send({ stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } });
      const chunks = sseFrames(r.text).filter((f) => f !== '[DONE]');
      const usages = chunks.map((c) => c.usage);
      expect(usages.every((u) => u && u.prompt_tokens === final.json.usage.prompt_tokens), JSON.stringify(usages)).toBe(true);
      const counts = usages.map((u) => u.completion_tokens);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(new Set(counts).size).toBeGreaterThan(2);
      expect(usages.at(-1)).toMatchObject({ completion_tokens: final.json.usage.completion_tokens, total_tokens: final.json.usage.total_tokens });
      // include_usage alone keeps OpenAI's shape: null until the last chunk.
      const once = sseFrames((await send({ stream: true, stream_options: { include_usage: true } })).text).filter((f) => f !== '[DONE]');
      expect(once.slice(0, -1).every((c) => c.usage === null)).toBe(true);
      // continuous_usage_stats alone does nothing, as in vLLM: no usage in any chunk.
      const alone = sseFrames((await send({ stream: true, stream_options: { continuous_usage_stats: true } })).text).filter((f) => f !== '[DONE]');
      expect(alone.every((c) => c.usage === undefined || c.usage === null)).toBe(true);
      expect(alone.every((c) => c.choices.length > 0)).toBe(true);
    }
  });
});
