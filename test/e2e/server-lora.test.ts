// LoRA adapters through the HTTP server (vLLM's --lora-modules and its runtime load/unload routes):
// a request whose "model" names an adapter gets the base engine with that adapter, answers report
// the adapter's name, /v1/models lists each adapter with its folder and parent, and everything an
// adapter cannot do, or a name no one serves, is refused in OpenAI's envelope. The lora_modules
// come from an inference conf through mapConfs, as `grpst start` builds them.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { mapConfs } from '../../src/config/resolve.js';
import type { Engine } from '../../src/engine/engine.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';
import { greedy, run } from '../native/helpers.js';
import { get, loadTiny, metric, post, serve, sseFrames, waitFor, type TestServer, type TinyModel } from './server-harness.js';

let model: TinyModel;
let srv: TestServer;
const all = () => loraAdapter('tiny-b-lora-all');
const qv = () => loraAdapter('tiny-b-lora-qv');

beforeAll(async () => {
  model = await loadTiny('tiny-b');
  const conf = inferenceConfSchema.parse({
    models: [
      {
        name: 'm',
        version: '1',
        inferer_args: {
          llm_style: 'qwen3',
          tokenizer_path: 't',
          gpt_model_path: 'e',
          enable_thinking: false,
          served_model_name: 'tiny',
          // Both of vLLM's spellings: name=path, and an object with the parent /v1/models shows.
          lora_modules: [`sql=${all()}`, { name: 'chat-style', path: qv(), base_model_name: 'Qwen/Qwen3-tiny' }],
          max_lora_rank: 8,
          allow_runtime_lora_updating: true,
        },
      },
    ],
  });
  srv = await serve(model, mapConfs(conf, {}).server);
});

afterAll(async () => {
  await srv?.server.close();
  await model?.engine.close();
});

const prompt = 'The history of the printing press';
/** What the engine itself gives for `prompt` (with an adapter folder, through a handle of its own). */
async function direct(adapterDir?: string, maxTokens = 12): Promise<string> {
  const engine = model.engine as Engine;
  const lora = adapterDir ? (await engine.loadLoraAdapter(adapterDir)).handle : undefined;
  const r = await run(engine, { tokens: model.tokenizer.encode(prompt), sampling: greedy, maxTokens, ignoreEos: true, lora });
  return model.tokenizer.decode(r.tokens);
}
const complete = (name: string, maxTokens = 12) => srv.client.completions.create({ model: name, prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true } as OpenAI.CompletionCreateParamsNonStreaming);

describe('adapters named in lora_modules', () => {
  it('are listed by /v1/models after the model, with their folder as root and the model they adapt as parent', async () => {
    const listed = (await get(`${srv.url}/v1/models`)).json;
    expect(listed.data.map((m: { id: string }) => m.id)).toEqual(['tiny', 'sql', 'chat-style']);
    expect(listed.data[1]).toMatchObject({ object: 'model', root: all(), parent: 'tiny', max_model_len: 1024 });
    expect(listed.data[2]).toMatchObject({ root: qv(), parent: 'Qwen/Qwen3-tiny' });
    expect(listed.last_id).toBe('chat-style');
    expect(await srv.client.models.retrieve('sql')).toMatchObject({ id: 'sql', root: all(), parent: 'tiny' });
    expect(srv.logs.some((l) => l === 'LoRA adapters served: sql (rank 8, q_proj k_proj v_proj o_proj gate_proj up_proj down_proj), chat-style (rank 4, q_proj v_proj down_proj)')).toBe(true);
  });

  it("answer with the adapter's output, reported under its name; the model's own name still answers as the model", async () => {
    const base = await complete('tiny');
    const sql = await complete('sql');
    const style = await complete('chat-style');
    expect(sql.model).toBe('sql');
    expect(style.model).toBe('chat-style');
    expect(base.model).toBe('tiny');
    expect(base.choices[0]!.text).toBe(await direct());
    expect(sql.choices[0]!.text).toBe(await direct(all()));
    expect(style.choices[0]!.text).toBe(await direct(qv()));
    expect(new Set([base, sql, style].map((c) => c.choices[0]!.text)).size).toBe(3);
  });

  it('serve every generating API, streamed or not, side by side with the model', async () => {
    const messages = [{ role: 'user' as const, content: 'Name a color.' }];
    const [base, sql] = await Promise.all(['tiny', 'sql'].map((m) => srv.client.chat.completions.create({ model: m, messages, max_tokens: 8, temperature: 0 })));
    expect(sql!.model).toBe('sql');
    expect(sql!.choices[0]!.message.content).not.toBe(base!.choices[0]!.message.content);
    const stream = await post(`${srv.url}/v1/chat/completions`, { model: 'sql', messages, max_tokens: 8, temperature: 0, stream: true });
    const chunks = sseFrames(stream.text).filter((f) => f !== '[DONE]');
    expect(chunks.every((c) => c.model === 'sql')).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(sql!.choices[0]!.message.content);
    const resp = await srv.client.responses.create({ model: 'sql', input: 'Name a color.', max_output_tokens: 8, temperature: 0 });
    expect(resp.model).toBe('sql');
    expect(resp.output_text).toBe(sql!.choices[0]!.message.content);
    const msg = await post(`${srv.url}/v1/messages`, { model: 'sql', max_tokens: 8, temperature: 0, messages });
    expect(msg.json.model).toBe('sql');
    expect(msg.json.content[0].text).toBe(sql!.choices[0]!.message.content);
    const [e0, e1] = await Promise.all(['tiny', 'sql'].map((m) => srv.client.embeddings.create({ model: m, input: 'hello', encoding_format: 'float' })));
    expect(e1!.model).toBe('sql');
    expect(e1!.data[0]!.embedding).not.toEqual(e0!.data[0]!.embedding);
  });

  it('refuse what runs on the base model alone, and a name no one serves lists the adapters', async () => {
    const rerank = await post(`${srv.url}/v1/rerank`, { model: 'sql', query: 'a', documents: ['b'] });
    expect(rerank.status).toBe(400);
    expect(rerank.json.error).toMatchObject({ param: 'model', code: 'model_not_supported' });
    const missing = await post(`${srv.url}/v1/completions`, { model: 'gpt-4o', prompt: 'hi', max_tokens: 1 });
    expect(missing.status).toBe(404);
    expect(missing.json.error.message).toBe(`The model 'gpt-4o' does not exist on this server; it serves 'tiny' and the LoRA adapters 'sql', 'chat-style'. Send "model": "tiny".`);
  });
});

describe("vLLM's LoRA metric", () => {
  const series = async () => (await get(`${srv.url}/metrics`)).text.split('\n').find((l: string) => l.startsWith('vllm:lora_requests_info{'));
  it('vllm:lora_requests_info names the adapters with requests running, and none when idle', async () => {
    expect(await series()).toMatch(/^vllm:lora_requests_info\{max_lora="\d+",waiting_lora_adapters="",running_lora_adapters=""\} \d+(\.\d+)?$/);
    // A long stream on 'sql': once its first chunk is in, the adapter is running.
    const stream = await srv.client.completions.create({ model: 'sql', prompt, max_tokens: 400, temperature: 0, ignore_eos: true, stream: true } as OpenAI.CompletionCreateParamsStreaming);
    let during: string | undefined;
    for await (const _ of stream) {
      if (during === undefined) during = await series();
    }
    expect(during).toContain('running_lora_adapters="sql"');
    expect(await series()).toContain('running_lora_adapters=""');
    // A server without adapters has no such series (vLLM gives it only with LoRA on).
    const plain = await serve(model, { modelId: 'tiny' });
    try {
      expect((await get(`${plain.url}/metrics`)).text).not.toContain('vllm:lora_requests_info');
    } finally {
      await plain.server.close();
    }
  });
});

describe('loading and unloading at run time', () => {
  it('serves a new adapter at once and stops serving it when unloaded, answering as vLLM does', async () => {
    const load = await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'late', lora_path: qv() });
    expect(load.status).toBe(200);
    expect(load.text).toBe("Success: LoRA adapter 'late' added successfully.");
    expect((await complete('late')).choices[0]!.text).toBe(await direct(qv()));
    const again = await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'late', lora_path: all() });
    expect(again.status).toBe(400);
    expect(again.json.error.message).toMatch(/The lora adapter 'late' has already been loaded/);
    // load_inplace swaps the folder under the same name.
    expect((await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'late', lora_path: all(), load_inplace: true })).status).toBe(200);
    expect((await complete('late')).choices[0]!.text).toBe(await direct(all()));
    const unload = await post(`${srv.url}/v1/unload_lora_adapter`, { lora_name: 'late' });
    expect(unload.text).toBe("Success: LoRA adapter 'late' removed successfully.");
    expect((await post(`${srv.url}/v1/completions`, { model: 'late', prompt: 'hi', max_tokens: 1 })).status).toBe(404);
    const twice = await post(`${srv.url}/v1/unload_lora_adapter`, { lora_name: 'late' });
    expect(twice.status).toBe(404);
    expect(twice.json.error.message).toBe("The lora adapter 'late' cannot be found.");
  });

  it('two loads of one name at once: one is served, the other refused; a failed in-place reload keeps the old adapter', async () => {
    const [first, second] = await Promise.all([
      post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'twin', lora_path: qv() }),
      post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'twin', lora_path: all() }),
    ]);
    expect(first.status).toBe(200);
    expect(second.status).toBe(400);
    // (refused while the first reads, or after it, as a taken name)
    expect(second.json.error.message).toMatch(/'twin' (is being loaded by another request|has already been loaded)/);
    const bad = await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'twin', lora_path: model.dir, load_inplace: true });
    expect(bad.status).toBe(400);
    expect((await complete('twin')).choices[0]!.text).toBe(await direct(qv()));
    expect((await post(`${srv.url}/v1/unload_lora_adapter`, { lora_name: 'twin' })).status).toBe(200);
  });

  it('a request running when its adapter is unloaded finishes with the adapter', async () => {
    await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'brief', lora_path: all() });
    let settled = false;
    const running = complete('brief', 200).finally(() => (settled = true));
    // Unloaded once it generates (polled: a fixed wait can be too short on a loaded machine).
    await waitFor(async () => settled || metric((await get(`${srv.url}/metrics`)).text, 'grpst_engine_sequences_running') >= 1);
    expect((await post(`${srv.url}/v1/unload_lora_adapter`, { lora_name: 'brief' })).status).toBe(200);
    expect((await running).choices[0]!.text).toBe(await direct(all(), 200));
  });

  it('refuses a folder that is no adapter, a rank above max_lora_rank, a relative path, and the model\'s own name', async () => {
    const bad = await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: model.dir });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatchObject({ param: 'lora_path', code: 'invalid_lora_adapter' });
    expect(bad.json.error.message).toMatch(/has no adapter_config.json \(fix: point at a PEFT LoRA adapter folder/);
    const relative = await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: 'adapters/x' });
    expect(relative.json.error.message).toMatch(/lora_path must be an absolute folder path/);
    const own = await post(`${srv.url}/v1/load_lora_adapter`, { lora_name: 'tiny', lora_path: all() });
    expect(own.json.error.message).toMatch(/'tiny' is the served model's own name/);
    expect((await get(`${srv.url}/v1/models`)).json.data.map((m: { id: string }) => m.id)).toEqual(['tiny', 'sql', 'chat-style']);
  });
});

describe('switched off, or the engine cannot', () => {
  it('the runtime routes are a 404 naming the switch when the conf leaves them off', async () => {
    const other = await serve(model, { modelId: 'tiny', loraModules: [{ name: 'sql', path: all() }] });
    try {
      const r = await post(`${other.url}/v1/load_lora_adapter`, { lora_name: 'x', lora_path: all() });
      expect(r.status).toBe(404);
      expect(r.json.error.message).toMatch(/allow_runtime_lora_updating: true/);
      expect((await post(`${other.url}/v1/completions`, { model: 'sql', prompt: 'hi', max_tokens: 1 })).status).toBe(200);
    } finally {
      await other.server.close();
    }
  });

  it('an adapter the engine cannot load fails the load with its conf entry named, and nothing is served', async () => {
    const tinyA = await loadTiny('tiny-a');
    const other = await serve(tinyA, { loraModules: [{ name: 'sql', path: all() }] });
    try {
      await expect(other.server.ready).rejects.toThrow(/lora_modules: sql \(.*tiny-b-lora-all\): .*is for layer 2, but the model has 2 layers/);
      expect((await get(`${other.url}/health`)).status).toBe(503);
      // The engine was closed with the failed load.
      expect(() => tinyA.engine.submit({ tokens: [1], sampling: greedy, maxTokens: 1 })).toThrow(/closed/);
    } finally {
      await other.server.close();
    }
  });
});
