// A chat template that opens the think block in its generation prompt, as the Qwen3
// *-Thinking-2507 checkpoints' does whatever enable_thinking says: the model writes only
// `</think>`. Replayed through the real server: with the reasoning parser the block is
// reasoning_content, thinking on or off, and a block cut at max_tokens stays reasoning; inline, the
// content holds the whole block from the prompt's tag on, as a Qwen3 model that opens it itself
// writes it; /v1/messages, /v1/responses and /api/chat hand the block back apart alike.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/server/index.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { inlineAndParsedServers, openingThinkTemplate, ScriptedEngine } from './scripted-engine.js';
import { loadTiny, post, sseFrames, type TinyModel } from './server-harness.js';

const reply = 'The user asks for a thought.\n</think>\n\nThe answer.';
const question = [{ role: 'user', content: 'Think it over' }];

let model: TinyModel;
let scripted: ScriptedEngine;
let inline: RunningServer;
let parsed: RunningServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  scripted = new ScriptedEngine(model.engine, model.tokenizer, [{ whenPromptHas: 'Think it over', reply }]);
  const deps = { engine: scripted, tokenizer: model.tokenizer, template: openingThinkTemplate(model.template) };
  const options = { ...defaultServerOptions, host: '127.0.0.1', port: 0, enableThinking: true };
  ({ inline, parsed } = await inlineAndParsedServers(deps, options));
});

afterAll(async () => {
  await inline?.close();
  await parsed?.close();
  await model?.engine.close();
});

/** The chat answer's message, whole and as its streamed deltas add up. */
async function chat(server: RunningServer, fields: Record<string, unknown>) {
  const body = { model: 'qwen3', messages: question, ...fields };
  const whole = await post(`${server.url}/v1/chat/completions`, body);
  expect(whole.status, whole.text).toBe(200);
  const streamed = await post(`${server.url}/v1/chat/completions`, { ...body, stream: true });
  const deltas = sseFrames(streamed.text).filter((f) => typeof f !== 'string' && f.choices.length > 0);
  const joined = (key: string) => deltas.map((f) => f.choices[0].delta[key] ?? '').join('');
  return {
    message: whole.json.choices[0].message,
    finish: whole.json.choices[0].finish_reason,
    streamed: { reasoning_content: joined('reasoning_content'), content: joined('content') },
  };
}

describe('a template that opens the think block itself', () => {
  it('the prompt ends inside the block, with thinking on or off', () => {
    expect(openingThinkTemplate(model.template).render(question, { addGenerationPrompt: true, enableThinking: false })).toBe(
      '<|im_start|>user\nThink it over<|im_end|>\n<|im_start|>assistant\n<think>\n',
    );
  });

  for (const thinking of [true, false]) {
    it(`reasoning parser on, enable_thinking ${thinking}: the block is reasoning_content, whole or cut before </think>`, async () => {
      const whole = await chat(parsed, { enable_thinking: thinking });
      expect(whole.message).toMatchObject({ reasoning_content: 'The user asks for a thought.\n', content: 'The answer.' });
      expect(whole.streamed).toEqual({ reasoning_content: 'The user asks for a thought.\n', content: 'The answer.' });
      const cut = await chat(parsed, { enable_thinking: thinking, max_tokens: 3 });
      expect(cut.finish).toBe('length');
      expect(cut.message.content).toBeNull();
      expect(cut.message.reasoning_content).toMatch(/^The user/);
      expect(cut.streamed).toEqual({ reasoning_content: cut.message.reasoning_content, content: '' });
    });

    it(`inline, enable_thinking ${thinking}: the content holds the block from the prompt's tag on, whole or cut`, async () => {
      const whole = await chat(inline, { enable_thinking: thinking });
      expect(whole.message.content).toBe(`<think>\n${reply}`);
      expect(whole.streamed).toEqual({ reasoning_content: '', content: `<think>\n${reply}` });
      const cut = await chat(inline, { enable_thinking: thinking, max_tokens: 3 });
      expect(cut.message.content).toMatch(/^<think>\nThe user/);
      expect(cut.message.content).not.toContain('</think>');
      expect(cut.streamed.content).toBe(cut.message.content);
    });
  }

  it('/v1/messages, /v1/responses and /api/chat with thinking off: the block is handed back apart', async () => {
    const messages = await post(`${inline.url}/v1/messages`, { model: 'qwen3', max_tokens: 64, messages: question, thinking: { type: 'disabled' } });
    expect(messages.json.content.map((b: any) => [b.type, b.thinking ?? b.text])).toEqual([
      ['thinking', 'The user asks for a thought.\n'],
      ['text', 'The answer.'],
    ]);
    const responses = await post(`${inline.url}/v1/responses`, { model: 'qwen3', input: 'Think it over', reasoning: { effort: 'none' } });
    expect(responses.json.output.map((o: any) => o.type)).toEqual(['reasoning', 'message']);
    expect(responses.json.output[1].content[0].text).toBe('The answer.');
    const ollama = await post(`${inline.url}/api/chat`, { model: 'qwen3', messages: question, think: false, stream: false });
    expect(ollama.json.message).toMatchObject({ thinking: 'The user asks for a thought.\n', content: 'The answer.' });
  });
});
