// served_model_name as a list (vLLM's --served-model-name takes several): every name is
// accepted by every API, /v1/models lists each, and answers report the first. The options come
// from the inference conf through mapConfs, as `grpst start` builds them.
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { mapConfs } from '../../src/config/resolve.js';
import { get, loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

const names = ['qwen3-tiny', 'claude-3-5-sonnet-latest', 'team/chat'];
let model: TinyModel;
let srv: TestServer;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  const conf = inferenceConfSchema.parse({
    models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', enable_thinking: false, served_model_name: names } }],
  });
  const { modelId, modelAliases } = mapConfs(conf, {}).server;
  srv = await serve(model, { modelId, modelAliases });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

const hi = [{ role: 'user' as const, content: 'hi' }];

describe('several served names', () => {
  it('/v1/models lists each, the first first; /v1/models/{model} finds each under its own name', async () => {
    const listed = await srv.client.models.list();
    expect(listed.data.map((m) => m.id)).toEqual(names);
    for (const name of names) expect((await srv.client.models.retrieve(name)).id).toBe(name);
    const page = (await get(`${srv.url}/v1/models`)).json;
    expect(page).toMatchObject({ first_id: names[0], last_id: names[2], has_more: false });
  });

  it('every name is accepted on chat, completions, responses, messages and Ollama\'s chat; answers report the first', async () => {
    for (const name of names) {
      const c = await srv.client.chat.completions.create({ model: name, messages: hi, max_tokens: 2 });
      expect(c.model).toBe(names[0]);
      const t = await srv.client.completions.create({ model: name, prompt: 'hi', max_tokens: 2 });
      expect(t.model).toBe(names[0]);
      const r = await srv.client.responses.create({ model: name, input: 'hi', max_output_tokens: 2 });
      expect(r.model).toBe(names[0]);
    }
    // Tools that take an Anthropic base URL send claude-* names.
    const anthropic = new Anthropic({ baseURL: srv.url, apiKey: 'unused', maxRetries: 0 });
    const m = await anthropic.messages.create({ model: 'claude-3-5-sonnet-latest', max_tokens: 2, messages: hi });
    expect(m.model).toBe(names[0]);
    const ollama = new Ollama({ host: srv.url });
    const o = await ollama.chat({ model: 'claude-3-5-sonnet-latest', messages: hi, options: { num_predict: 2 } });
    expect(o.done).toBe(true);
  });

  it("Ollama's /api/tags lists the model once, under the first name", async () => {
    const tags = (await get(`${srv.url}/api/tags`)).json;
    expect(tags.models.map((t: { name: string }) => t.name)).toEqual([`${names[0]}:latest`]);
  });

  it('a name not among them is a 404 that lists them', async () => {
    const r = await post(`${srv.url}/v1/chat/completions`, { model: 'gpt-4o', messages: hi, max_tokens: 2 });
    expect(r.status).toBe(404);
    expect(r.json.error).toMatchObject({ param: 'model', code: 'model_not_found' });
    expect(r.json.error.message).toBe(`The model 'gpt-4o' does not exist on this server; it serves 'qwen3-tiny' (also named 'claude-3-5-sonnet-latest', 'team/chat'). Send "model": "qwen3-tiny".`);
    await expect(srv.client.models.retrieve('gpt-4o')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});
