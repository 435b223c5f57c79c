// Tool calling through the server: tools, the assistant's calls and the tool results reach the
// prompt exactly as transformers' apply_chat_template renders them (recorded goldens), and the
// tool_choice variants are accepted or refused as OpenAI defines them. Turning model output into
// tool_calls is covered by the parser tests on recorded model outputs (test/unit/parse.test.ts),
// since the random-weight fixtures never write a call themselves.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturesDir, readJson } from '../helpers/fixtures.js';
import { loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

interface TemplateCase {
  name: string;
  messages: any[];
  tools?: any[];
  add_generation_prompt: boolean;
  enable_thinking?: boolean;
}

const cases = readJson<{ cases: TemplateCase[] }>(join(fixturesDir, 'template-cases.json')).cases;
const goldens = new Map(readJson<{ cases: { name: string; text: string }[] }>(join(fixturesDir, 'template-goldens.json')).cases.map((c) => [c.name, c.text]));

let model: TinyModel;
let srv: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  // The goldens leave enable_thinking unset unless the case says; thinking on is the template's default.
  srv = await serve(model, { enableThinking: true });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

describe('tools through the template', () => {
  for (const name of ['tools', 'tools-system', 'tool-call-and-response', 'two-tool-calls-two-responses']) {
    it(`${name}: the prompt is the one transformers renders`, async () => {
      const c = cases.find((x) => x.name === name)!;
      const body: Record<string, unknown> = { messages: c.messages, tools: c.tools };
      if (c.enable_thinking !== undefined) body.enable_thinking = c.enable_thinking;
      const expected = model.tokenizer.encode(goldens.get(name)!);
      const tok = await post(`${srv.url}/tokenize`, body);
      expect(tok.status).toBe(200);
      expect(tok.json.tokens).toEqual(expected);
      const r = await srv.client.chat.completions.create({ model: 'qwen3', ...body, max_tokens: 4, temperature: 0 } as any);
      expect(r.usage!.prompt_tokens).toBe(expected.length);
      expect(['stop', 'length']).toContain(r.choices[0].finish_reason);
    });
  }

  it('tool_choice none still lists the tools; a named tool and required are accepted', async () => {
    const c = cases.find((x) => x.name === 'tool-call-and-response')!;
    const base = { model: 'qwen3', messages: c.messages, tools: c.tools, max_tokens: 4, temperature: 0 };
    const auto = await srv.client.chat.completions.create(base as any);
    for (const tool_choice of ['none', 'required', { type: 'function', function: { name: 'get_current_weather' } }]) {
      const r = await srv.client.chat.completions.create({ ...base, tool_choice } as any);
      expect(r.usage!.prompt_tokens).toBe(auto.usage!.prompt_tokens);
    }
    const without = await srv.client.chat.completions.create({ ...base, tools: undefined } as any);
    expect(without.usage!.prompt_tokens).toBeLessThan(auto.usage!.prompt_tokens);
  });

  it('tools with duplicate names or an unknown named choice are refused', async () => {
    const c = cases.find((x) => x.name === 'tools')!;
    const dup = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: c.messages, tools: [...c.tools!, ...c.tools!] });
    expect(dup.status).toBe(400);
    expect(dup.json.error.param).toBe('tools');
    const named = await post(`${srv.url}/v1/chat/completions`, { model: 'qwen3', messages: c.messages, tools: c.tools, tool_choice: { type: 'function', function: { name: 'get_postcode' } } });
    expect(named.status).toBe(400);
    expect(named.json.error.message).toContain('get_postcode');
  });
});
