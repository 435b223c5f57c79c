// The thinking token budget through the HTTP API, on the real runtime: vLLM's
// thinking_token_budget (chat, completions) and Anthropic's thinking.budget_tokens close the think
// block after that many tokens, and the model then answers. The tiny random model never closes a
// block by itself, so without a budget the whole answer stays reasoning; the prompts end inside an
// open block (a continued assistant turn, a raw prompt), as templates that open it themselves do.
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { post, loadTiny, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let t: TestServer;
let anthropic: Anthropic;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  t = await serve(model, { reasoningParser: true, enableThinking: true });
  anthropic = new Anthropic({ baseURL: t.url, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await t?.server.close();
  await model?.engine.close();
});

const opened = [
  { role: 'user' as const, content: 'Count to three.' },
  { role: 'assistant' as const, content: '<think>\nOne' },
];

describe('chat completions: thinking_token_budget', () => {
  const ask = (budget?: number) =>
    t.client.chat.completions.create({
      model: 'qwen3',
      messages: opened,
      max_tokens: 24,
      temperature: 0,
      // vLLM's request fields, as its clients send them
      ...({ continue_final_message: true, add_generation_prompt: false, ignore_eos: true, thinking_token_budget: budget } as object),
    });

  it('ends the reasoning after the budget and the model answers after it', async () => {
    const free = (await ask()).choices[0].message as { content: string | null; reasoning_content?: string };
    expect(free.content ?? '').toBe('');
    const bounded = (await ask(5)).choices[0].message as { content: string | null; reasoning_content?: string };
    expect(bounded.content?.length).toBeGreaterThan(0);
    // Greedy: the bounded reasoning is where the free one started.
    expect(bounded.reasoning_content!.length).toBeGreaterThan(0);
    expect(bounded.reasoning_content!.length).toBeLessThan(free.reasoning_content!.length);
    expect(free.reasoning_content!.startsWith(bounded.reasoning_content!.trimEnd())).toBe(true);
  });

  it('refuses a negative budget, naming the field', async () => {
    const r = await post(`${t.url}/v1/chat/completions`, { model: 'qwen3', messages: opened, thinking_token_budget: -1 });
    expect(r.status).toBe(400);
    expect(r.json.error.param).toBe('thinking_token_budget');
  });
});

describe('completions: thinking_token_budget', () => {
  it('puts the closing token exactly after the budget', async () => {
    const ask = async (budget?: number) => {
      const r = await post(`${t.url}/v1/completions`, { model: 'qwen3', prompt: 'Think first.<think>', max_tokens: 8, temperature: 0, logprobs: 0, ignore_eos: true, thinking_token_budget: budget });
      expect(r.status).toBe(200);
      return r.json.choices[0].logprobs.tokens as string[];
    };
    const free = await ask();
    expect(free).not.toContain('</think>');
    const bounded = await ask(3);
    expect(bounded.slice(0, 3)).toEqual(free.slice(0, 3));
    expect(bounded[3]).toBe('</think>');
    expect(await ask(0)).toContain('</think>');
    expect((await ask(0))[0]).toBe('</think>');
  });
});

describe("the inference conf's thinking_token_budget", () => {
  it("bounds requests that set no budget of their own; a request's own wins", async () => {
    const own = await serve(model, { reasoningParser: true, enableThinking: true, thinkingTokenBudget: 2 });
    try {
      const ask = async (budget?: number) => {
        const r = await post(`${own.url}/v1/completions`, { model: 'qwen3', prompt: 'Think first.<think>', max_tokens: 8, temperature: 0, logprobs: 0, ignore_eos: true, thinking_token_budget: budget });
        return (r.json.choices[0].logprobs.tokens as string[]).indexOf('</think>');
      };
      expect(await ask()).toBe(2);
      expect(await ask(4)).toBe(4);
    } finally {
      await own.server.close();
    }
  });
});

describe('Anthropic messages: thinking.budget_tokens', () => {
  it('closes the thinking block at the budget, and a text block follows', async () => {
    const ask = (budget?: number) =>
      anthropic.messages.create({
        model: 'qwen3',
        max_tokens: 24,
        ...({ temperature: 0 } as object),
        thinking: { type: 'enabled', budget_tokens: budget as number },
        messages: opened,
      });
    const free = await ask(undefined);
    expect(free.content.map((b) => b.type)).toEqual(['thinking']);
    expect(free.stop_reason).toBe('max_tokens');
    const bounded = await ask(4);
    expect(bounded.content.map((b) => b.type)).toEqual(['thinking', 'text']);
    const thought = bounded.content[0] as Anthropic.ThinkingBlock;
    expect((free.content[0] as Anthropic.ThinkingBlock).thinking.startsWith(thought.thinking.trimEnd())).toBe(true);
    expect((bounded.content[1] as Anthropic.TextBlock).text.length).toBeGreaterThan(0);
  });
});
