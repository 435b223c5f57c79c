// `grpst serve --model_dir DIR` as the one-command path: a real foreground server process on a
// checkpoint folder with no conf at all, --host/--port/--served_model_name from the command line,
// the checkpoint's generation_config.json sampling defaults logged, `grpst chat --url` talking to
// it, SIGTERM draining to exit 0; and the command-line mistakes, each refused before anything runs.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';
import { serveForeground, type ForegroundServer } from '../helpers/foreground-server.js';
import { cliArgv, makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let modelDir: string;
let server: ForegroundServer | undefined;
let url = '';

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-serve-dir-'));
  cli = makeCli();
  // A Hugging Face checkpoint folder as downloaded: Qwen3's recommended sampling in generation_config.json.
  modelDir = path.join(work, 'Qwen3-tiny');
  fs.cpSync(checkpoint('tiny-a'), modelDir, { recursive: true });
  fs.writeFileSync(
    path.join(modelDir, 'generation_config.json'),
    JSON.stringify({ bos_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], pad_token_id: 151643, temperature: 0.6, top_k: 20, top_p: 0.95 }),
  );
  // A draft model given by a path relative to the current folder (the checkpoint drafting for itself).
  server = await serveForeground(cli, ['--model_dir', modelDir, '--served_model_name', 'tiny', '--speculative_config', '{"model": "Qwen3-tiny", "num_speculative_tokens": 3}'], work);
  url = server.url;
}, 90_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst serve --model_dir', () => {
  it('serves the folder under the given name, with the checkpoint sampling defaults logged', async () => {
    expect(server!.output()).toContain(`grpst serve (pid ${server!.process.pid}): --model_dir ${modelDir}`);
    expect(server!.output()).toContain(`sampling defaults from ${path.join(modelDir, 'generation_config.json')}: temperature=0.6 top_k=20 top_p=0.95`);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    expect((await client.models.list()).data.map((m) => m.id)).toEqual(['tiny']);
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage?.completion_tokens).toBe(4);
    // --speculative_config reached the engine: the draft model proposed tokens for that answer.
    const drafts = /^grpst_spec_decode_draft_tokens_total (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text());
    expect(Number(drafts?.[1])).toBeGreaterThan(0);
  });

  it('grpst chat --url talks to it (with or without /v1 or http://), no lifecycle state needed', async () => {
    for (const given of [url, `${url}/v1/`, url.replace(/^http:\/\//, '')]) {
      const child = execa(process.execPath, [...cliArgv, 'chat', '--url', given, '--max_tokens', '3'], { env: { ...cli.env, NO_COLOR: '1', GRPST_API_KEY: undefined }, reject: false, stdin: 'pipe', timeout: 60_000 });
      child.stdin!.end('hello\n');
      const r = await child;
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(String(r.stderr)).toContain(`chatting with model tiny at ${url}; /help for commands`);
      expect(String(r.stderr)).toMatch(/answer 3 tokens, [\d.]+ tokens\/s, cut at max_tokens\)/);
    }
  });

  it('--lora_modules serves adapters beside the folder, their paths read from the current folder', async () => {
    const cwd = path.join(work, 'lora-cwd');
    fs.mkdirSync(path.join(cwd, 'adapters'), { recursive: true });
    fs.cpSync(loraAdapter('tiny-b-lora-all'), path.join(cwd, 'adapters', 'sql'), { recursive: true });
    fs.cpSync(loraAdapter('tiny-b-lora-qv'), path.join(cwd, 'adapters', 'style'), { recursive: true });
    const lora = await serveForeground(cli, ['--model_dir', checkpoint('tiny-b'), '--lora_modules', 'sql=adapters/sql', 'style=adapters/style'], cwd);
    try {
      const client = new OpenAI({ baseURL: `${lora.url}/v1`, apiKey: 'unused', maxRetries: 0 });
      const listed = (await client.models.list()).data as unknown as { id: string; root?: string }[];
      expect(listed.map((m) => m.id)).toEqual(['qwen3', 'sql', 'style']);
      expect(listed[1]!.root).toBe(path.join(cwd, 'adapters', 'sql'));
      const texts = await Promise.all(['qwen3', 'sql', 'style'].map(async (m) => (await client.completions.create({ model: m, prompt: 'hi', max_tokens: 6, temperature: 0 })).choices[0]!.text));
      expect(new Set(texts).size).toBe(3);
      // grpst chat --model talks to an adapter; a name the server does not list is refused with the list.
      const chat = (model: string) => {
        const child = execa(process.execPath, [...cliArgv, 'chat', '--url', lora.url, '--model', model, '--max_tokens', '3'], { env: { ...cli.env, NO_COLOR: '1', GRPST_API_KEY: undefined }, reject: false, stdin: 'pipe', timeout: 60_000 });
        child.stdin!.end('hello\n');
        return child;
      };
      const sql = await chat('sql');
      expect(sql.exitCode, String(sql.stderr)).toBe(0);
      expect(String(sql.stderr)).toContain(`chatting with model sql at ${lora.url}; /help for commands`);
      const none = await chat('gpt-4o');
      expect(none.exitCode).toBe(2);
      expect(String(none.stderr)).toContain(`--model gpt-4o: the server ${lora.url} serves qwen3, sql, style`);
    } finally {
      await lora.stop();
    }
  });

  it('SIGTERM drains and exits 0', async () => {
    server!.process.kill('SIGTERM');
    const r = await server!.process;
    expect(r.exitCode, server!.output()).toBe(0);
    expect(server!.output()).toContain('drained; exiting');
  });
});

describe('grpst serve / chat command-line mistakes', () => {
  const refusals: [string[], RegExp][] = [
    [['serve'], /grpst serve needs --inference_conf FILE or --model_dir DIR/],
    [['serve', '--model_dir', 'DIR', '--inference_conf', 'conf.yml'], /--inference_conf and --model_dir are both given/],
    [['serve', '--inference_conf', 'conf.yml', '--served_model_name', 'x'], /--served_model_name goes with --model_dir[\s\S]*set served_model_name under models\[0\]\.inferer_args in conf\.yml/],
    [['serve', '--model_dir', 'no-such-folder'], /--model_dir no-such-folder is not a folder/],
    [['serve', '--model_dir', 'empty'], /--model_dir empty holds neither engine\.json nor config\.json/],
    [['serve', '--model_dir', 'DIR', '--port', '70000'], /--port takes a port from 0 to 65535, got "70000"/],
    [['serve', '--model_dir', 'DIR', '--served_model_name', ''], /--served_model_name takes the model id clients send, got an empty one/],
    [['chat', '--url', 'ftp://host'], /--url ftp:\/\/host is not an http\(s\) address/],
    [['serve', '--model_dir', 'DIR', '--speculative_config', 'ngram'], /--speculative_config takes a JSON object, e\.g\./],
    [['serve', '--model_dir', 'DIR', '--speculative_config', '{"method": "eagle", "num_speculative_tokens": 2}'], /--speculative_config .*method: expected ngram/],
    [['serve', '--inference_conf', 'conf.yml', '--speculative_config', '{"method": "ngram", "num_speculative_tokens": 2}'], /--speculative_config goes with --model_dir[\s\S]*set speculative_config under models\[0\]\.inferer_args/],
    [['serve', '--model_dir', 'DIR', '--lora_modules', 'adapters/sql'], /--lora_modules takes name=path entries/],
    [['serve', '--inference_conf', 'conf.yml', '--lora_modules', 'sql=adapters/sql'], /--lora_modules goes with --model_dir[\s\S]*set lora_modules under models\[0\]\.inferer_args/],
  ];
  it('each is refused with the problem named and exit 2, before anything starts', async () => {
    fs.mkdirSync(path.join(work, 'empty'), { recursive: true });
    for (const [args, message] of refusals) {
      const r = await cli.run(args.map((a) => (a === 'DIR' ? modelDir : a)), { cwd: work });
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('a folder without tokenizer.json is refused with how to supply one', async () => {
    const bare = path.join(work, 'bare');
    fs.mkdirSync(bare, { recursive: true });
    fs.copyFileSync(path.join(modelDir, 'config.json'), path.join(bare, 'config.json'));
    fs.symlinkSync(path.join(modelDir, 'model.safetensors'), path.join(bare, 'model.safetensors'));
    const r = await cli.run(['serve', '--model_dir', bare], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--model_dir ${bare} has no tokenizer.json`);
    expect(r.stderr).toContain('write an inference conf with tokenizer_path');
  });

  it('a folder with config.json but no safetensors weights is named as such, not as a conf key no one wrote', async () => {
    const bin = path.join(work, 'bin-only');
    fs.mkdirSync(bin, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json']) fs.copyFileSync(path.join(modelDir, f), path.join(bin, f));
    fs.writeFileSync(path.join(bin, 'pytorch_model.bin'), '');
    const r = await cli.run(['serve', '--model_dir', bin], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--model_dir ${bin} has a config.json but no *.safetensors weights`);
    expect(r.stderr).toContain('fix: pass a checkpoint in safetensors format');
    expect(r.stderr).not.toContain('gpt_model_path');
  });

  it('SIGTERM while the engine loads cancels the load and exits 0 at once, not when the load would end', async () => {
    // Each layer's load made to take 60 s (a cold 8B upload takes tens of seconds in all).
    const child = execa(process.execPath, [...cliArgv, 'serve', '--model_dir', modelDir, '--host', '127.0.0.1', '--port', '0'], {
      env: { ...cli.env, GRPST_API_KEY: undefined, GRPST_TEST_LOAD_LAYER_DELAY_MS: '60000' },
      cwd: work,
      reject: false,
      all: true,
      timeout: 60_000,
    });
    let log = '';
    child.all!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    while (!/listening on (http:\/\/\S+)/.test(log)) {
      if (child.exitCode !== null) throw new Error(log);
      await new Promise((r) => setTimeout(r, 50));
    }
    const at = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log)![1];
    const health = await fetch(`${at}/health`);
    expect([health.status, await health.json()]).toEqual([503, { status: 'loading' }]);
    const sent = Date.now();
    child.kill('SIGTERM');
    const r = await child;
    expect(r.exitCode, log).toBe(0);
    expect(Date.now() - sent).toBeLessThan(15_000);
    expect(log).toContain('SIGTERM while the engine loads: cancelling the load, then exiting');
    expect(log).toContain(`loading ${modelDir} was cancelled`);
    expect(log).not.toMatch(/ERROR|could not be loaded/);
  }, 90_000);

  it('a checkpoint of another model is refused before listening, its config.json named', async () => {
    const llama = path.join(work, 'Llama');
    fs.mkdirSync(llama, { recursive: true });
    for (const f of ['tokenizer.json', 'model.safetensors']) fs.symlinkSync(path.join(modelDir, f), path.join(llama, f));
    const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
    fs.writeFileSync(path.join(llama, 'config.json'), JSON.stringify({ ...config, model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
    const r = await cli.run(['serve', '--model_dir', llama, '--port', '0'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--model_dir: ${path.join(llama, 'config.json')}: model_type is "llama" (LlamaForCausalLM), not qwen3 or qwen3_moe`);
    expect(r.stdout + r.stderr).not.toContain('listening on');
    // A Qwen3-MoE config over a dense model's tensors: its experts' fields are missing, and said so.
    const moe = path.join(work, 'Qwen3-MoE');
    fs.mkdirSync(moe, { recursive: true });
    for (const f of ['tokenizer.json', 'model.safetensors']) fs.symlinkSync(path.join(modelDir, f), path.join(moe, f));
    fs.writeFileSync(path.join(moe, 'config.json'), JSON.stringify({ ...config, model_type: 'qwen3_moe', architectures: ['Qwen3MoeForCausalLM'] }));
    const m = await cli.run(['serve', '--model_dir', moe, '--port', '0'], { cwd: work });
    expect(m.code).toBe(2);
    expect(m.stderr).toContain(`${path.join(moe, 'config.json')}: num_experts is missing from a qwen3_moe config`);
    expect(m.stdout + m.stderr).not.toContain('listening on');
  });

  it('a cut-off config.json and a port in use are named with fixes that fit --model_dir', async () => {
    const cut = path.join(work, 'cut-config');
    fs.mkdirSync(cut, { recursive: true });
    for (const f of ['tokenizer.json', 'model.safetensors']) fs.symlinkSync(path.join(modelDir, f), path.join(cut, f));
    const config = fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8');
    fs.writeFileSync(path.join(cut, 'config.json'), config.slice(0, config.length >> 1));
    const broken = await cli.run(['serve', '--model_dir', cut, '--port', '0'], { cwd: work });
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain(`--model_dir ${cut}: its config.json is not valid JSON`);
    expect(broken.stderr).toContain('fix: copy config.json again from the checkpoint');
    const build = await cli.run(['build', '--model_dir', cut, '--output_dir', path.join(work, 'cut-engine')], { cwd: work });
    expect(build.code).toBe(2);
    expect(build.stderr).toContain(`${path.join(cut, 'config.json')} is not valid JSON`);
    expect(build.stderr).toContain('fix: copy config.json again from the checkpoint');
    expect(fs.existsSync(path.join(work, 'cut-engine'))).toBe(false);

    const holder = http.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as AddressInfo).port;
    try {
      const taken = await cli.run(['serve', '--model_dir', modelDir, '--host', '127.0.0.1', '--port', String(port)], { cwd: work });
      expect(taken.code).toBe(2);
      expect(taken.stderr).toContain(`port ${port} is taken by another program`);
      expect(taken.stderr).toContain('fix: change --port to a free port');
      expect(taken.stdout).not.toContain('loading');
    } finally {
      holder.close();
    }
  });

  it('grpst chat --url: a server still loading, or one that is not an OpenAI API, is named with a fix that fits an address', async () => {
    const answers: Record<string, [number, string]> = { '/loading/v1/models': [503, '{}'], '/web/v1/models': [200, '<!doctype html><p>a web page</p>'] };
    const stub = http.createServer((req, res) => {
      const [status, body] = answers[req.url ?? ''] ?? [404, ''];
      res.writeHead(status).end(body);
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    const at = `http://127.0.0.1:${(stub.address() as AddressInfo).port}`;
    try {
      const loading = await cli.run(['chat', '--url', `${at}/loading`], { cwd: work });
      expect(loading.code).toBe(2);
      expect(loading.stderr).toContain(`the server ${at}/loading is still loading its model`);
      expect(loading.stderr).toContain('its /health answers 200 when it is ready');
      expect(loading.stderr).not.toContain('grpst ps');
      const web = await cli.run(['chat', '--url', `${at}/web`], { cwd: work });
      expect(web.code).toBe(2);
      expect(web.stderr).toContain(`no OpenAI-compatible API at ${at}/web: GET /v1/models answered 200 with no content type, 32 bytes, not JSON`);
      expect(web.stderr).not.toContain('<!doctype');
      expect(web.stderr).toContain('fix: check that --url names an OpenAI-compatible server');
    } finally {
      await new Promise((resolve) => stub.close(resolve));
    }
  });
});
