// Constrained answers whose prompt already holds part of the think block, on the real server and
// the tiny random-weight model. A chat template that opens the block in its generation prompt
// (the Qwen3 *-Thinking-2507 checkpoints'): the grammar starts inside the block, so the model
// writes the body, `</think>` and then the answer, thinking on or off; the JSON answer and the
// forced call validate, and the think block comes back apart as reasoning_content, whole and
// streamed. A continued assistant turn (vLLM's continue_final_message) that closed its block: the
// output is the answer alone, and content; one that left it open: the model finishes the block
// first.
import ajvModule from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
import { inlineAndParsedServers, openingThinkTemplate } from './scripted-engine.js';
import { loadTiny, post, sseFrames, type TinyModel } from './server-harness.js';

const ajv = new ajvModule.default({ strict: false });

const person = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 20 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
  required: ['name', 'age'],
  additionalProperties: false,
};
const postcodeTool = {
  type: 'function',
  function: { name: 'get_postcode', description: 'Get the postcode of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
};
const messages = [{ role: 'user', content: 'Think, then answer.' }];

let model: TinyModel;
/** The reasoning parser off: only an exact answer's think block is split off. */
let inline: RunningServer;
let parsed: RunningServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  // The build deadline far away: a busy machine must not refuse these small grammars.
  const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
  const deps = { engine: model.engine, tokenizer: model.tokenizer, template: openingThinkTemplate(model.template), constraints };
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0 };
  ({ inline, parsed } = await inlineAndParsedServers(deps, options));
});

afterAll(async () => {
  await inline?.close();
  await parsed?.close();
  await model?.engine.close();
});

interface Answer {
  finish: string;
  content: string | null;
  reasoning: string;
  calls: { name: string; arguments: string }[];
  /** The output's token ids, with return_token_ids. */
  tokens: number[];
}

/** One chat answer, as the whole message or as its streamed deltas add up. */
async function chat(server: RunningServer, stream: boolean, fields: Record<string, unknown>): Promise<Answer> {
  const res = await post(`${server.url}/v1/chat/completions`, { model: 'qwen3', messages, max_tokens: 120, ...fields, stream });
  expect(res.status, res.text).toBe(200);
  if (!stream) {
    const c = res.json.choices[0];
    const calls = (c.message.tool_calls ?? []).map((t: any) => ({ name: t.function.name, arguments: t.function.arguments }));
    return { finish: c.finish_reason, content: c.message.content, reasoning: c.message.reasoning_content ?? '', calls, tokens: c.token_ids ?? [] };
  }
  const frames = sseFrames(res.text);
  expect(frames.at(-1)).toBe('[DONE]');
  const choices = frames.filter((f) => typeof f !== 'string' && f.choices.length > 0).map((f) => f.choices[0]);
  const calls: Answer['calls'] = [];
  for (const d of choices.flatMap((c) => c.delta.tool_calls ?? [])) {
    calls[d.index] ??= { name: '', arguments: '' };
    calls[d.index].name += d.function?.name ?? '';
    calls[d.index].arguments += d.function?.arguments ?? '';
  }
  const joined = (key: string) => choices.map((c) => c.delta[key] ?? '').join('');
  return { finish: choices.at(-1).finish_reason, content: joined('content'), reasoning: joined('reasoning_content'), calls, tokens: choices.flatMap((c) => c.token_ids ?? []) };
}

/** The think block came back apart: in reasoning, with neither tag, and none of it in content. */
function expectApart(a: Answer): void {
  expect(a.reasoning).not.toMatch(/<\/?think>/);
  expect(a.content ?? '').not.toMatch(/<\/?think>/);
}

describe('a constrained answer after a generation prompt that opened <think>', () => {
  for (const enable_thinking of [true, false])
    for (const stream of [false, true]) {
      const how = `enable_thinking ${enable_thinking}, ${stream ? 'streamed' : 'whole'}`;

      it(`json_schema, ${how}: the JSON validates, the think block is reasoning_content`, async () => {
        let reasoned = 0;
        for (const server of [inline, parsed])
          for (const seed of [1, 2]) {
            const response_format = { type: 'json_schema', json_schema: { name: 'person', schema: person } };
            const a = await chat(server, stream, { enable_thinking, seed, response_format });
            expect(a.finish).toBe('stop');
            expect(ajv.validate(person, JSON.parse(a.content!)), a.content!).toBe(true);
            expectApart(a);
            if (a.reasoning.length > 0) reasoned++;
          }
        // The random model thinks before the think budget closes the block, at least sometimes.
        expect(reasoned).toBeGreaterThan(0);
      });

      it(`a forced tool call, ${how}: one valid call, the think block is reasoning_content`, async () => {
        const tool_choice = { type: 'function', function: { name: 'get_postcode' } };
        for (const seed of [1, 2]) {
          const a = await chat(parsed, stream, { enable_thinking, seed, tools: [postcodeTool], tool_choice, max_tokens: 160 });
          expect(a.finish).toBe('tool_calls');
          expect(a.calls.map((c) => c.name)).toEqual(['get_postcode']);
          expect(ajv.validate(postcodeTool.function.parameters, JSON.parse(a.calls[0].arguments)), a.calls[0].arguments).toBe(true);
          expectApart(a);
          expect(a.content ?? '').not.toContain('<tool_call>');
        }
      });
    }
});

describe('the other APIs, thinking off', () => {
  it('/v1/responses, /v1/messages and /api/chat: the answer validates after the think block, which comes back apart', async () => {
    const format = { type: 'json_schema', name: 'person', schema: person, strict: true };
    const r = await post(`${inline.url}/v1/responses`, { model: 'qwen3', input: 'Think, then answer.', reasoning: { effort: 'none' }, text: { format }, max_output_tokens: 120, seed: 1 });
    expect(r.status, r.text).toBe(200);
    const text = r.json.output.find((o: any) => o.type === 'message').content[0].text;
    expect(ajv.validate(person, JSON.parse(text)), text).toBe(true);

    const tool = { name: 'get_postcode', description: 'Get the postcode of a city', input_schema: postcodeTool.function.parameters };
    const m = await post(`${inline.url}/v1/messages`, { model: 'qwen3', messages, max_tokens: 160, thinking: { type: 'disabled' }, tools: [tool], tool_choice: { type: 'tool', name: 'get_postcode' } });
    expect(m.status, m.text).toBe(200);
    const use = m.json.content.find((b: any) => b.type === 'tool_use');
    expect(use.name).toBe('get_postcode');
    expect(ajv.validate(tool.input_schema, use.input), JSON.stringify(use.input)).toBe(true);
    for (const b of m.json.content) expect(b.thinking ?? b.text ?? '').not.toMatch(/<\/?think>/);

    const o = await post(`${inline.url}/api/chat`, { model: 'qwen3', messages, think: false, stream: false, format: person, options: { num_predict: 120, seed: 1 } });
    expect(o.status, o.text).toBe(200);
    expect(ajv.validate(person, JSON.parse(o.json.message.content)), o.json.message.content).toBe(true);
    expect(o.json.message.thinking ?? '').not.toMatch(/<\/?think>/);
  });
});

describe('a constrained answer continuing an assistant turn, thinking on', () => {
  // Without a generation prompt this template renders the turn as Qwen3's own does:
  // `<think>\n` + its reasoning + `\n</think>\n\n` + its text, cut where the text ends.
  const continuing = (assistant: string, fields: Record<string, unknown>) => ({
    messages: [...messages, { role: 'assistant', content: assistant }],
    continue_final_message: true,
    add_generation_prompt: false,
    enable_thinking: true,
    return_token_ids: true,
    ...fields,
  });
  const response_format = { type: 'json_schema', json_schema: { name: 'person', schema: person } };
  const closed = '<think>\nA person, then.\n</think>\n\n';
  const ids = () => ({ open: model.tokenizer.tokenToId('<think>'), close: model.tokenizer.tokenToId('</think>') });

  for (const stream of [false, true]) {
    const how = stream ? 'streamed' : 'whole';

    it(`past its closed think block, json_schema, ${how}: the output is the JSON alone, in content, with no new think block`, async () => {
      for (const server of [inline, parsed])
        for (const seed of [1, 2]) {
          const a = await chat(server, stream, continuing(closed, { seed, response_format }));
          expect(a.finish).toBe('stop');
          expect(ajv.validate(person, JSON.parse(a.content!)), a.content!).toBe(true);
          expect(a.reasoning).toBe('');
          expect(a.tokens.length).toBeGreaterThan(0);
          expect(a.tokens).not.toContain(ids().open);
          expect(a.tokens).not.toContain(ids().close);
        }
    });

    it(`past its closed think block, a forced tool call, ${how}: one valid call and no think block`, async () => {
      const tool_choice = { type: 'function', function: { name: 'get_postcode' } };
      const a = await chat(parsed, stream, continuing(closed, { seed: 1, tools: [postcodeTool], tool_choice, max_tokens: 160 }));
      expect(a.finish).toBe('tool_calls');
      expect(a.calls.map((c) => c.name)).toEqual(['get_postcode']);
      expect(ajv.validate(postcodeTool.function.parameters, JSON.parse(a.calls[0].arguments)), a.calls[0].arguments).toBe(true);
      expect(a.reasoning).toBe('');
      expect(a.tokens).not.toContain(ids().open);
    });

    it(`inside the think block it left open, ${how}: the model closes the block, then the JSON validates`, async () => {
      for (const server of [inline, parsed]) {
        const a = await chat(server, stream, continuing('<think>\nA person, then', { seed: 1, response_format }));
        expect(a.finish).toBe('stop');
        expect(ajv.validate(person, JSON.parse(a.content!)), a.content!).toBe(true);
        expectApart(a);
        expect(a.tokens).not.toContain(ids().open);
        expect(a.tokens.filter((t) => t === ids().close)).toHaveLength(1);
      }
    });
  }

  it('past its closed think block, unconstrained: the reasoning parser reads the output as content', async () => {
    for (const stream of [false, true]) {
      const a = await chat(parsed, stream, continuing(closed, { seed: 1, max_tokens: 8 }));
      expect(a.reasoning).toBe('');
      expect(a.content!.length).toBeGreaterThan(0);
    }
  });

  it('/v1/messages, a prefilled thinking block: the format holds the answer alone', async () => {
    const prefill = { role: 'assistant', content: [{ type: 'thinking', thinking: 'A person, then.', signature: '' }] };
    const format = { type: 'json_schema', schema: person };
    const m = await post(`${parsed.url}/v1/messages`, { model: 'qwen3', messages: [...messages, prefill], max_tokens: 120, thinking: { type: 'enabled', budget_tokens: 1024 }, output_config: { format } });
    expect(m.status, m.text).toBe(200);
    expect(m.json.content.map((b: any) => b.type)).toEqual(['text']);
    expect(ajv.validate(person, JSON.parse(m.json.content[0].text)), m.json.content[0].text).toBe(true);
  });
});
