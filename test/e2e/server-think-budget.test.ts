// The thinking token budget through the HTTP API, on the real runtime: vLLM's
// thinking_token_budget (chat, completions) and Anthropic's thinking.budget_tokens close the think
// block after that many tokens, and the model then answers. The tiny random model never closes a
// block by itself, so without a budget the whole answer stays reasoning; the prompts end inside an
// open block (a continued assistant turn, a raw prompt), as templates that open it themselves do.
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerConstraintCompiler } from '../../src/structured/server-compiler.js';
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

  it('closes the think block a grammar opened, and the JSON answer still parses', async () => {
    const constraints = new ServerConstraintCompiler(model.tokenizer, { buildDeadlineMs: 60_000 });
    const { server, client } = await serve(model, { reasoningParser: true }, { constraints });
    const ask = async (budget?: number) => {
      const r = await client.chat.completions.create({
        model: 'qwen3',
        messages: [{ role: 'user', content: 'A JSON object, please.' }],
        max_tokens: 64,
        temperature: 0,
        response_format: { type: 'json_object' },
        logprobs: true,
        ...({ enable_thinking: true, thinking_token_budget: budget } as object),
      });
      const m = r.choices[0].message as { content: string; reasoning_content?: string };
      expect(() => JSON.parse(m.content)).not.toThrow();
      // Tokens up to the closing one: the grammar's own <think>, then the block's text.
      const tokens = r.choices[0].logprobs!.content!.map((e) => e.token);
      return tokens.indexOf('</think>');
    };
    try {
      const free = await ask();
      expect(free).toBeGreaterThan(4);
      expect(await ask(3)).toBe(4);
    } finally {
      await server.close();
    }
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
    // A budget past what the runtime counts bounds nothing more: served, the block left open.
    expect(await ask(1e12)).toEqual(free);
  });

  it('bounds every choice of n, seeded and sampled', async () => {
    const r = await post(`${t.url}/v1/completions`, { model: 'qwen3', prompt: 'Think first.<think>', max_tokens: 8, temperature: 1, seed: 11, n: 3, logprobs: 0, ignore_eos: true, thinking_token_budget: 2 });
    expect(r.status).toBe(200);
    expect(r.json.choices.map((c: { logprobs: { tokens: string[] } }) => c.logprobs.tokens.indexOf('</think>'))).toEqual([2, 2, 2]);
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
