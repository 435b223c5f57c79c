// Embeddings end to end on the real runtime: OpenAI's /v1/embeddings through the official
// `openai` client (which asks for base64 and decodes it) and Ollama's /api/embed and
// /api/embeddings through the `ollama` client. Each vector is the engine's last-token final-norm
// output for the input's tokens, L2-normalized (not on Ollama's older route), cut to
// `dimensions`; inputs are tokenized as Hugging Face's tokenizer(text) does; errors name the field.
import { Ollama } from 'ollama';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultSampling } from '../../src/engine/types.js';
import { loadTiny, post, serve, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
let ollama: Ollama;

beforeAll(async () => {
  model = await loadTiny('tiny-a');
  srv = await serve(model);
  ollama = new Ollama({ host: srv.url });
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

/** The engine's own vector for these tokens, straight from a runtime request. */
async function engineVector(tokens: number[]): Promise<number[]> {
  let v: Float32Array | undefined;
  for await (const ev of model.engine.submit({ tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 0, embed: true })) v = ev.embedding ?? v;
  return Array.from(v!);
}
const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const normalized = (v: number[]) => v.map((x) => x / norm(v));
function expectClose(got: number[], want: number[], tol = 1e-6) {
  expect(got).toHaveLength(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `[${i}]`).toBeLessThan(tol);
}

describe('/v1/embeddings', () => {
  it('the openai client: one vector per input, in order, normalized, base64 and float alike', async () => {
    const texts = ['The sea is deep.', 'Mountains are tall.', 'The sea is deep.'];
    const r = await srv.client.embeddings.create({ model: 'qwen3', input: texts });
    expect(r.object).toBe('list');
    expect(r.model).toBe('qwen3');
    expect(r.data.map((d) => d.index)).toEqual([0, 1, 2]);
    const ids = texts.map((t) => model.tokenizer.encode(t));
    expect(r.usage).toEqual({ prompt_tokens: ids.flat().length, total_tokens: ids.flat().length });
    for (const [i, d] of r.data.entries()) {
      expect(d.object).toBe('embedding');
      expect(d.embedding).toHaveLength(model.engine.info.hiddenSize);
      expect(norm(d.embedding)).toBeCloseTo(1, 5);
      // The client asked for base64 (its default) and decoded float32: the engine's vector, normalized.
      expectClose(d.embedding, normalized(await engineVector(ids[i])));
    }
    expect(r.data[2].embedding).toEqual(r.data[0].embedding);
    expect(r.data[1].embedding).not.toEqual(r.data[0].embedding);
    const floats = await srv.client.embeddings.create({ model: 'qwen3', input: texts[1], encoding_format: 'float' });
    expectClose(floats.data[0].embedding, r.data[1].embedding);
  });

  it('token-id inputs, dimensions (cut, then normalized), normalize: false and truncate_prompt_tokens', async () => {
    const ids = model.tokenizer.encode('Tell me about the sea and the mountains.');
    const raw = await engineVector(ids);
    const byIds = await post(`${srv.url}/v1/embeddings`, { input: [ids, ids.slice(2)], encoding_format: 'float' });
    expect(byIds.status).toBe(200);
    expectClose(byIds.json.data[0].embedding, normalized(raw));
    expectClose(byIds.json.data[1].embedding, normalized(await engineVector(ids.slice(2))));
    const cut = await srv.client.embeddings.create({ model: 'qwen3', input: ids, dimensions: 16, encoding_format: 'float' });
    expectClose(cut.data[0].embedding, normalized(raw.slice(0, 16)));
    const plain = await post(`${srv.url}/v1/embeddings`, { input: ids, normalize: false, encoding_format: 'float' });
    expectClose(plain.json.data[0].embedding, raw, 1e-5);
    const kept = await post(`${srv.url}/v1/embeddings`, { input: ids, truncate_prompt_tokens: 4, encoding_format: 'float' });
    expect(kept.json.usage.prompt_tokens).toBe(4);
    expectClose(kept.json.data[0].embedding, normalized(await engineVector(ids.slice(-4))));
  });

  it('bad input: a 400 in OpenAI\'s envelope naming the field', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ input: '' }, 'input', /input is empty/],
      [{ input: ['a', ''] }, 'input[1]', /input\[1\] is empty/],
      [{ input: [] }, 'input', /expected a string/],
      [{ input: [[1, 2], [999999999]] }, 'input[1]', /vocabulary/],
      [{ input: 'hi', dimensions: 0 }, 'dimensions', /outside 1 to 64/],
      [{ input: 'hi', dimensions: 65 }, 'dimensions', /outside 1 to 64/],
      [{ input: 'hi', encoding_format: 'int8' }, 'encoding_format', /./],
      [{ input: 'word '.repeat(1100) }, 'input', /maximum context length is 1023 tokens/],
      [{ input: 'hi', priority: 2 }, 'priority', /scheduling_policy: priority/],
      [{ input: 'hi', model: 'gpt-4' }, 'model', /./],
    ];
    for (const [body, param, message] of cases) {
      const r = await post(`${srv.url}/v1/embeddings`, body);
      expect([400, 404], JSON.stringify(body)).toContain(r.status);
      expect(r.json.error.param, JSON.stringify(r.json)).toBe(param);
      expect(r.json.error.message).toMatch(message);
    }
    // The engine holds nothing afterwards.
    expect(model.engine.stats().kvBlocksUsed).toBe(0);
  });
});

describe("Ollama's /api/embed and /api/embeddings", () => {
  it('the ollama client: normalized vectors per input, the older route the raw vector', async () => {
    const texts = ['The sea is deep.', 'Mountains are tall.'];
    const r = await ollama.embed({ model: 'qwen3', input: texts });
    expect(r.model).toBe('qwen3');
    expect(r.embeddings).toHaveLength(2);
    const ids = texts.map((t) => model.tokenizer.encode(t));
    expect(r.prompt_eval_count).toBe(ids.flat().length);
    for (const [i, v] of r.embeddings.entries()) expectClose(v, normalized(await engineVector(ids[i])));
    const one = await ollama.embed({ model: 'qwen3', input: texts[0], dimensions: 8 });
    expectClose(one.embeddings[0], normalized((await engineVector(ids[0])).slice(0, 8)));
    const legacy = await ollama.embeddings({ model: 'qwen3', prompt: texts[1] });
    expectClose(legacy.embedding, await engineVector(ids[1]), 1e-5);
    // An empty input loads the model: nothing to embed.
    expect((await ollama.embed({ model: 'qwen3', input: [] })).embeddings).toEqual([]);
  });

  it('an input past the context is cut to fit unless truncate is false; a wrong model is a 404', async () => {
    const long = 'word '.repeat(1100);
    const fit = await ollama.embed({ model: 'qwen3', input: long });
    expect(fit.prompt_eval_count).toBe(1023);
    expectClose(fit.embeddings[0], normalized(await engineVector(model.tokenizer.encode(long).slice(0, 1023))));
    await expect(ollama.embed({ model: 'qwen3', input: long, truncate: false })).rejects.toMatchObject({ status_code: 400, error: expect.stringMatching(/maximum context length/) });
    await expect(ollama.embed({ model: 'llama3', input: 'hi' })).rejects.toMatchObject({ status_code: 404 });
  });
});
