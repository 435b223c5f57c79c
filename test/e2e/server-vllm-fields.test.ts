// vLLM's own request fields, as its users send them (the openai client's extra_body): its
// structured outputs are enforced like response_format, min_tokens and include_stop_str_in_output
// change the answer as they do there, and what the server cannot honour is a 400 naming the
// field, never an answer that silently ignores it. The tiny random-weight model
// never writes JSON or one of a few words on its own, so a passing answer was enforced.
import ajvModule from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { defaultSampling } from '../../src/engine/types.js';
import { run } from '../native/helpers.js';
import { loadTiny, post, sseFrames, type TinyModel } from './server-harness.js';

const ajv = new ajvModule.default({ strict: false, allErrors: true });

let model: TinyModel;
let server: RunningServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  server = await startServer({ engine: model.engine, tokenizer: model.tokenizer, template: model.template, constraints }, { ...defaultServerOptions, host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await server?.close();
  await model?.engine.close();
});

const schema = { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, days: { type: 'integer', minimum: 1, maximum: 7 } }, required: ['city', 'days'] };
const validate = ajv.compile(schema);
const chat = (extra: Record<string, unknown>) => ({ model: 'qwen3', messages: [{ role: 'user', content: 'Plan a trip.' }], max_tokens: 80, temperature: 1.5, ...extra });
const complete = (extra: Record<string, unknown>) => ({ model: 'qwen3', prompt: 'Plan a trip:', max_tokens: 80, temperature: 1.5, ...extra });

describe("vLLM's structured outputs", () => {
  it('guided_json (an object or its JSON text) and structured_outputs.json: answers that validate, on both endpoints, streamed too', async () => {
    const spellings = [{ guided_json: schema }, { guided_json: JSON.stringify(schema) }, { structured_outputs: { json: schema } }];
    for (const [i, fields] of spellings.entries()) {
      const c = await post(`${server.url}/v1/chat/completions`, chat({ ...fields, seed: 10 + i }));
      expect(c.status, JSON.stringify(c.json)).toBe(200);
      expect(validate(JSON.parse(c.json.choices[0].message.content)), c.json.choices[0].message.content).toBe(true);
      expect(c.json.choices[0].finish_reason).toBe('stop');
      const t = await post(`${server.url}/v1/completions`, complete({ ...fields, seed: 20 + i }));
      expect(t.status, JSON.stringify(t.json)).toBe(200);
      expect(validate(JSON.parse(t.json.choices[0].text)), t.json.choices[0].text).toBe(true);
    }
    const s = await post(`${server.url}/v1/chat/completions`, chat({ guided_json: schema, seed: 3, stream: true }));
    const text = sseFrames(s.text).filter((f) => f !== '[DONE]').map((f) => f.choices[0]?.delta?.content ?? '').join('');
    expect(validate(JSON.parse(text)), text).toBe(true);
  });

  it('guided_choice and structured_outputs.choice: the answer is one of the choices, as plain text', async () => {
    const choices = ['sunny', 'rain', 'snow and ice'];
    const seen = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const fields = seed % 2 ? { guided_choice: choices } : { structured_outputs: { choice: choices } };
      const c = await post(`${server.url}/v1/chat/completions`, chat({ ...fields, seed, temperature: 2 }));
      expect(c.status, JSON.stringify(c.json)).toBe(200);
      expect(choices).toContain(c.json.choices[0].message.content);
      seen.add(c.json.choices[0].message.content);
      const t = await post(`${server.url}/v1/completions`, complete({ ...fields, seed, temperature: 2 }));
      expect(choices).toContain(t.json.choices[0].text);
    }
    expect(seen.size).toBeGreaterThan(0);
  });

  it('guided_regex and structured_outputs.regex: the whole answer matches the pattern, on both endpoints, streamed, after a think block', async () => {
    const patterns = ['\\d{3}-[a-z]{2,4}( (ok|fine))?', '^[日本]{2}[0-9]\\.?$', '(yes|no), because [A-Z][a-z]{1,6}'];
    for (const [i, pattern] of patterns.entries()) {
      const whole = new RegExp(`^(?:${pattern.replace(/^\^|\$$/g, '')})$`, 'u');
      const fields = i % 2 ? { structured_outputs: { regex: pattern } } : { guided_regex: pattern };
      const c = await post(`${server.url}/v1/chat/completions`, chat({ ...fields, seed: 30 + i }));
      expect(c.status, JSON.stringify(c.json)).toBe(200);
      expect(c.json.choices[0].message.content).toMatch(whole);
      expect(c.json.choices[0].finish_reason).toBe('stop');
      const t = await post(`${server.url}/v1/completions`, complete({ ...fields, seed: 40 + i, n: 2 }));
      expect(t.status, JSON.stringify(t.json)).toBe(200);
      for (const choice of t.json.choices) expect(choice.text).toMatch(whole);
    }
    const s = await post(`${server.url}/v1/chat/completions`, chat({ guided_regex: patterns[0], seed: 3, stream: true }));
    const streamed = sseFrames(s.text).filter((f) => f !== '[DONE]').map((f) => f.choices[0]?.delta?.content ?? '').join('');
    expect(streamed).toMatch(/^\d{3}-[a-z]{2,4}( (ok|fine))?$/);
    // With thinking on, the think block comes first, free; the answer after it matches.
    const thought = await post(`${server.url}/v1/chat/completions`, chat({ guided_regex: patterns[0], seed: 5, max_tokens: 200, chat_template_kwargs: { enable_thinking: true } }));
    expect(thought.status, JSON.stringify(thought.json)).toBe(200);
    expect(thought.json.choices[0].message.content).toMatch(/^\d{3}-[a-z]{2,4}( (ok|fine))?$/);
  });

  it('guided_grammar and structured_outputs.grammar (GBNF): the whole answer is text of the grammar, on both endpoints', async () => {
    const grammar = 'root ::= greeting ", " name "!"\ngreeting ::= "Hello" | "Hi"\nname ::= [A-Z] [a-z]{1,8} | "(" name ")"';
    const whole = /^(Hello|Hi), (\(*)[A-Z][a-z]{1,8}\)*!$/;
    const balanced = (t: string) => (t.match(/\(/g) ?? []).length === (t.match(/\)/g) ?? []).length;
    for (const [i, fields] of [{ guided_grammar: grammar }, { structured_outputs: { grammar } }].entries()) {
      const c = await post(`${server.url}/v1/chat/completions`, chat({ ...fields, seed: 50 + i }));
      expect(c.status, JSON.stringify(c.json)).toBe(200);
      const text = c.json.choices[0].message.content;
      expect(text).toMatch(whole);
      expect(balanced(text), text).toBe(true);
      const t = await post(`${server.url}/v1/completions`, complete({ ...fields, seed: 60 + i, n: 2 }));
      for (const choice of t.json.choices) expect(choice.text).toMatch(whole);
    }
    const bad = await post(`${server.url}/v1/chat/completions`, chat({ guided_grammar: 'root ::= expr\nexpr ::= expr "+" "1" | "1"' }));
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ param: 'guided_grammar', code: 'unsupported_schema' });
    expect(bad.json.error.message).toContain('left recursion: expr -> expr');
    // A Lark grammar is read as vLLM reads it.
    const lark = await post(`${server.url}/v1/completions`, complete({ structured_outputs: { grammar: '?start: answer "."\nanswer: "yes" | "no"' }, seed: 2 }));
    expect(lark.status, JSON.stringify(lark.json)).toBe(200);
    expect(lark.json.choices[0].text).toMatch(/^(yes|no)\.$/);
    const directive = await post(`${server.url}/v1/completions`, complete({ structured_outputs: { grammar: 'start: WORD\n%import common.WORD' } }));
    expect(directive.json.error.param).toBe('structured_outputs.grammar');
    expect(directive.json.error.message).toContain('Lark directives (%import) are not supported');
  });

  it('a regex with what cannot be enforced (lookaround, backreferences) is a 400 naming the field and the construct', async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ guided_regex: 'a(?=b)' }, 'guided_regex', 'lookahead'],
      [{ structured_outputs: { regex: '(a)\\1' } }, 'structured_outputs.regex', 'backreferences'],
      [{ guided_regex: '' }, 'guided_regex', 'regular expression'],
    ];
    for (const [fields, param, words] of cases) {
      const r = await post(`${server.url}/v1/chat/completions`, chat(fields));
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error.param).toBe(param);
      expect(r.json.error.message).toContain(words);
    }
    const both = await post(`${server.url}/v1/completions`, complete({ guided_regex: 'a', guided_choice: ['a'] }));
    expect(both.json.error.param).toBe('guided_regex');
  });

  it('structural tags (response_format, structured_outputs.structural_tag, structural_tag): every trigger opens a structure whose JSON fits', async () => {
    // "a" is in a third of this random model's tokens: unconstrained, its answers break the tag at once.
    const spec = { structures: [{ begin: 'a=', schema: { type: 'integer', minimum: 0, maximum: 99 }, end: ';' }], triggers: ['a'] };
    const follows = (text: string, finished: boolean) => {
      for (let i = text.indexOf('a'); i >= 0; i = text.indexOf('a', i)) {
        const m = /^a=(\d+);/.exec(text.slice(i));
        if (!m) return !finished && /^a(=\d*)?$/.test(text.slice(i));
        if (Number(m[1]) > 99) return false;
        i += m[0].length;
      }
      return true;
    };
    const spellings = [
      { response_format: { type: 'structural_tag', ...spec } },
      { structured_outputs: { structural_tag: JSON.stringify(spec) } },
      { structural_tag: JSON.stringify({ type: 'structural_tag', ...spec }) },
    ];
    let structures = 0;
    for (const [i, fields] of spellings.entries()) {
      for (const seed of [1, 2]) {
        const c = await post(`${server.url}/v1/completions`, complete({ ...fields, seed: 40 + 10 * i + seed, max_tokens: 100, temperature: 2 }));
        expect(c.status, JSON.stringify(c.json)).toBe(200);
        const text: string = c.json.choices[0].text;
        expect(follows(text, c.json.choices[0].finish_reason === 'stop'), text).toBe(true);
        structures += text.split('a=').length - 1;
      }
    }
    expect(structures).toBeGreaterThan(0);
    const plain = await post(`${server.url}/v1/completions`, complete({ seed: 41, max_tokens: 100, temperature: 2 }));
    expect(follows(plain.json.choices[0].text, true)).toBe(false);
    const unwritable = await post(`${server.url}/v1/chat/completions`, chat({ response_format: { type: 'structural_tag', structures: [{ begin: '<x>', end: '</x>' }], triggers: ['<y'] } }));
    expect(unwritable.status).toBe(400);
    expect(unwritable.json.error.param).toBe('response_format');
    expect(unwritable.json.error.message).toContain('does not start with any of the triggers');
    const notJson = await post(`${server.url}/v1/completions`, complete({ structured_outputs: { structural_tag: '{"structures": ' } }));
    expect(notJson.json.error.param).toBe('structured_outputs.structural_tag');
  });

  it("structured_outputs' layout options: disable_any_whitespace writes no whitespace, disable_additional_properties closes free-form objects", async () => {
    const nested = {
      type: 'object',
      properties: { tags: { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 4 }, meta: { type: 'object' }, n: { type: 'integer' } },
      required: ['tags', 'meta', 'n'],
    };
    // Whitespace outside the JSON strings (a string's own spaces are its content).
    const layoutSpaces = (text: string) => text.replace(/"(?:[^"\\]|\\.)*"/g, '""').match(/\s/g)?.length ?? 0;
    let spacedSeen = 0;
    let keysSeen = 0;
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const plain = await post(`${server.url}/v1/completions`, complete({ structured_outputs: { json: nested }, seed, temperature: 2 }));
      expect(plain.status, JSON.stringify(plain.json)).toBe(200);
      spacedSeen += layoutSpaces(plain.json.choices[0].text);
      keysSeen += Object.keys(JSON.parse(plain.json.choices[0].text).meta).length;
      const fields = { structured_outputs: { json: nested, disable_any_whitespace: true, disable_additional_properties: true, disable_fallback: true } };
      for (const r of [
        await post(`${server.url}/v1/completions`, complete({ ...fields, seed, temperature: 2 })),
        await post(`${server.url}/v1/chat/completions`, chat({ ...fields, seed, temperature: 2 })),
      ]) {
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        const text: string = r.json.choices[0].text ?? r.json.choices[0].message.content;
        expect(layoutSpaces(text), text).toBe(0);
        expect(JSON.parse(text).meta, text).toEqual({});
      }
    }
    // The same seeds without the options: the separators' optional spaces and the free-form
    // object's keys do occur, so the checks above saw the options at work.
    expect(spacedSeen).toBeGreaterThan(0);
    expect(keysSeen).toBeGreaterThan(0);
  });

  it("structured_outputs' whitespace_pattern, guided_whitespace_pattern and unknown keys: 400 naming them", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ structured_outputs: { json: schema, whitespace_pattern: '[ ]*' } }, 'structured_outputs.whitespace_pattern', 'disable_any_whitespace'],
      [{ guided_json: schema, guided_whitespace_pattern: '[ ]*' }, 'guided_whitespace_pattern', 'disable_any_whitespace'],
      [{ structured_outputs: { json: schema, any_whitespace: false } }, 'structured_outputs', 'any_whitespace'],
    ];
    for (const [fields, param, named] of cases) {
      const r = await post(`${server.url}/v1/chat/completions`, chat(fields));
      expect(r.status, JSON.stringify(r.json)).toBe(400);
      expect(r.json.error.param).toBe(param);
      expect(r.json.error.message).toContain(named);
    }
  });

  it('two constraints at once, or one that is not a schema: 400 naming the field', async () => {
    const both = await post(`${server.url}/v1/chat/completions`, chat({ guided_json: schema, response_format: { type: 'json_object' } }));
    expect(both.status).toBe(400);
    expect(both.json.error.param).toBe('guided_json');
    const twice = await post(`${server.url}/v1/completions`, complete({ guided_json: schema, guided_choice: ['a'] }));
    expect(twice.status).toBe(400);
    expect(twice.json.error.param).toBe('guided_choice');
    const notJson = await post(`${server.url}/v1/chat/completions`, chat({ guided_json: '{"type": ' }));
    expect(notJson.status).toBe(400);
    expect(notJson.json.error.param).toBe('guided_json');
    const empty = await post(`${server.url}/v1/chat/completions`, chat({ guided_choice: [] }));
    expect(empty.status).toBe(400);
    expect(empty.json.error.param).toBe('guided_choice');
  });
});

describe("vLLM's fields this server cannot honour", () => {
  it('are refused with a 400 naming them, on both endpoints, instead of an answer that ignores them; their neutral values are accepted', async () => {
    const refused: [string, Record<string, unknown>][] = [
      ['kv_transfer_params', { kv_transfer_params: { remote: 1 } }],
      ['logits_processors', { logits_processors: ['my.Processor'] }],
    ];
    for (const [param, fields] of refused) {
      for (const r of [await post(`${server.url}/v1/chat/completions`, chat(fields)), await post(`${server.url}/v1/completions`, complete(fields))]) {
        expect(r.status, `${param}: ${JSON.stringify(r.json)}`).toBe(400);
        expect(r.json.error).toMatchObject({ param, code: 'unsupported_parameter', type: 'invalid_request_error' });
      }
    }
    // Their neutral values ask for nothing and are accepted.
    const neutral = { min_tokens: 0, use_beam_search: false, include_stop_str_in_output: false, prompt_logprobs: null, guided_json: null, structured_outputs: {} };
    const plain = await post(`${server.url}/v1/completions`, complete({ temperature: 0, max_tokens: 6 }));
    const withFields = await post(`${server.url}/v1/completions`, complete({ temperature: 0, max_tokens: 6, ...neutral }));
    expect(withFields.status, JSON.stringify(withFields.json)).toBe(200);
    expect(withFields.json.choices[0].text).toBe(plain.json.choices[0].text);
  });
});

describe('min_tokens and include_stop_str_in_output', () => {
  // Greedy from a token-id prompt: the engine's own first tokens say which stop token and which
  // stop string would end the answer at once.
  const prompt = () => model.tokenizer.encode('Plan a trip:');
  const greedy = (extra: Record<string, unknown>) => post(`${server.url}/v1/completions`, { model: 'qwen3', prompt: prompt(), temperature: 0, max_tokens: 12, ...extra });

  /** The first token a greedy answer to this chat body starts with (its prompt rendered by /tokenize). */
  async function chatFirstToken(path: string, body: Record<string, unknown>): Promise<number[]> {
    const messages = path === '/v1/responses' ? [{ role: 'user', content: body.input }] : body.messages;
    const tokens = (await post(`${server.url}/tokenize`, { messages, add_generation_prompt: true })).json.tokens as number[];
    return [(await run(model.engine, { tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 1, ignoreEos: true })).tokens[0]];
  }

  it('min_tokens keeps the stop tokens out of reach until that many tokens are out; more than max_tokens is a 400; ignore_eos still stops at stop_token_ids', async () => {
    const first = (await run(model.engine, { tokens: prompt(), sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 1, ignoreEos: true })).tokens[0];
    const stopped = await greedy({ stop_token_ids: [first] });
    expect(stopped.json.choices[0]).toMatchObject({ text: '', finish_reason: 'stop' });
    expect(stopped.json.usage.completion_tokens).toBe(1); // the stop token itself
    // ignore_eos passes the model's end tokens only: the client's own stop ids still stop it (vLLM).
    for (const path of ['/v1/completions', '/v1/chat/completions', '/v1/responses']) {
      const body = path === '/v1/completions' ? { prompt: prompt(), max_tokens: 12 } : path === '/v1/responses' ? { input: 'Plan a trip.', max_output_tokens: 12 } : { messages: [{ role: 'user', content: 'Plan a trip.' }], max_tokens: 12 };
      const free = await post(`${server.url}${path}`, { model: 'qwen3', temperature: 0, ignore_eos: true, ...body });
      const ids = path === '/v1/completions' ? [first] : await chatFirstToken(path, body);
      const both = await post(`${server.url}${path}`, { model: 'qwen3', temperature: 0, ignore_eos: true, stop_token_ids: ids, ...body });
      expect(free.json.usage[path === '/v1/responses' ? 'output_tokens' : 'completion_tokens'], path).toBe(12);
      expect(both.json.usage[path === '/v1/responses' ? 'output_tokens' : 'completion_tokens'], path).toBe(1);
    }
    for (const path of ['/v1/completions', '/v1/chat/completions']) {
      const body = path === '/v1/completions' ? { prompt: prompt() } : { messages: [{ role: 'user', content: 'Plan a trip.' }] };
      const held = await post(`${server.url}${path}`, { model: 'qwen3', temperature: 0, max_tokens: 12, stop_token_ids: [first], min_tokens: 5, ...body });
      expect(held.status, JSON.stringify(held.json)).toBe(200);
      expect(held.json.usage.completion_tokens, path).toBeGreaterThanOrEqual(5);
    }
    // A choice that can only end with the end token, which min_tokens holds back: the conflict is named.
    const conflict = await greedy({ guided_choice: ['yes'], min_tokens: 10 });
    expect(conflict.status).toBe(500);
    expect(conflict.json.error).toMatchObject({ code: 'engine_error' });
    expect(conflict.json.error.message).toMatch(/the constraint allows only a stop token, which min_tokens holds back for \d+ more tokens/);
    const tooMany = await greedy({ min_tokens: 13 });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.error).toMatchObject({ param: 'min_tokens', code: 'invalid_value' });
    expect(tooMany.json.error.message).toContain('min_tokens 13 is more than the 12 tokens');
  });

  it('stop strings count once min_tokens are out, and include_stop_str_in_output keeps the matched one', async () => {
    const full = (await greedy({ ignore_eos: true })).json.choices[0].text as string;
    const chars = [...full];
    expect(chars.length).toBeGreaterThan(8);
    // A stop string from the middle of the answer, at its first occurrence.
    const stop = chars.slice(4, 7).join('');
    const at = full.indexOf(stop);
    const cut = await greedy({ ignore_eos: true, stop: [stop] });
    expect(cut.json.choices[0]).toMatchObject({ text: full.slice(0, at), finish_reason: 'stop' });
    const kept = await greedy({ ignore_eos: true, stop: [stop], include_stop_str_in_output: true });
    expect(kept.json.choices[0]).toMatchObject({ text: full.slice(0, at + stop.length), finish_reason: 'stop' });
    // The first character as a stop string ends the answer at once; with min_tokens 6 it counts
    // from the sixth token on (as in vLLM, whose stop check starts with the min_tokens-th token).
    const opening = chars[0];
    expect((await greedy({ ignore_eos: true, stop: [opening] })).json.choices[0].text).toBe('');
    const pieces = (await greedy({ ignore_eos: true, logprobs: 0 })).json.choices[0].logprobs.tokens as string[];
    const firstFive = pieces.slice(0, 5).join('');
    expect(full.startsWith(firstFive)).toBe(true);
    const from = full.indexOf(opening, firstFive.length);
    const late = await greedy({ ignore_eos: true, stop: [opening], min_tokens: 6 });
    expect(late.json.choices[0]).toMatchObject(from < 0 ? { text: full, finish_reason: 'length' } : { text: full.slice(0, from), finish_reason: 'stop' });
    expect(late.json.choices[0].text.length).toBeGreaterThanOrEqual(firstFive.length);
  });
});
