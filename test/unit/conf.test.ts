import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inferenceConfSchema } from '../../src/config/inference-schema.js';
import { loadDeployment, mapConfs } from '../../src/config/resolve.js';
import { serverConfSchema } from '../../src/config/server-schema.js';
import { validateConf } from '../../src/config/validate.js';
import { parseYamlText, readYamlFile } from '../../src/config/yaml-file.js';
import { defaultServerOptions } from '../../src/server/options.js';
import { GrpstError } from '../../src/util/errors.js';
import { configJson } from '../../src/model/tiny-checkpoint.js';
import { repoRoot, specFile, tokenizerDir } from '../helpers/fixtures.js';

let tmp: string;
let engineDir: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-conf-'));
  engineDir = path.join(tmp, 'engine');
  fs.mkdirSync(engineDir);
  fs.writeFileSync(path.join(engineDir, 'engine.json'), '{}');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function shipped(name: string): string {
  return fs.readFileSync(path.join(repoRoot, 'conf', name), 'utf8');
}

function write(name: string, text: string): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

/** The shipped Qwen3 conf with its /tmp/Qwen3-8B paths pointed at test folders. */
function qwen3Conf(edit: (text: string) => string = (t) => t): string {
  const text = shipped('inference_qwen3.yml')
    .replace('tokenizer_path: /tmp/Qwen3-8B/', `tokenizer_path: ${tokenizerDir}`)
    .replace('gpt_model_path: /tmp/Qwen3-8B/engine/', `gpt_model_path: ${engineDir}`);
  return write(`inference-${Math.random().toString(36).slice(2)}.yml`, edit(text));
}

function errorOf(fn: () => unknown): GrpstError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GrpstError);
    return err as GrpstError;
  }
  throw new Error('expected an error');
}

describe('shipped confs', () => {
  it('conf/inference_qwen3.yml and conf/server.yml validate and map onto the runtime and server options', () => {
    const d = loadDeployment({ inferenceConf: qwen3Conf(), serverConf: path.join(repoRoot, 'conf', 'server.yml'), deployPath: tmp, env: {} });
    expect(d.backend).toBe('native');
    expect(d.enginePath).toBe(engineDir);
    expect(d.tokenizerPath).toBe(tokenizerDir);
    expect(d.warnings).toEqual([]);
    expect(d.runtime.load).toEqual({ device: 'auto', kvCacheFreeMemFraction: 0.9, enablePrefixCaching: true });
    const s = d.runtime.server;
    expect(s.port).toBe(9997);
    expect(s.host).toBe('0.0.0.0');
    expect(s.maxConnections).toBe(1024);
    expect(s.maxConcurrency).toBe(32);
    expect(s.maxQueue).toBe(256);
    expect(s.enableThinking).toBe(true);
    expect(s.reasoningParser).toBe(false);
    expect(s.sampling).toEqual({ temperature: 0.6, topK: 20, topP: 0.95 });
    expect(s.stopWords).toEqual(['<|im_start|>', '<|im_end|>', '<|endoftext|>']);
    expect(s.skipSpecialTokens).toBe(true);
    expect(s.apiKey).toBeUndefined();
    expect(d.log).toEqual({ dir: path.join(tmp, 'logs'), backupCount: 7 });
    expect(d.endTokenId).toBe(151645);
  });

  it('conf/inference_tiny.yml validates', () => {
    const file = parseYamlText(shipped('inference_tiny.yml'), 'conf/inference_tiny.yml');
    const conf = validateConf(inferenceConfSchema, file, 'inference conf');
    expect(conf.models[0].inferer_args.device).toBe('cpu');
    expect(mapConfs(conf, {}).load.device).toBe('cpu');
  });

  it("grps_trtllm's own conf (gpt_model_type set, TensorRT-LLM keys) is accepted with one warning line per ignored key", () => {
    const file = qwen3Conf((t) =>
      t
        .replace('gpt_model_type: # `V1` or `inflight_fused_batching`.', 'gpt_model_type: inflight_fused_batching')
        .replace('tokenizer_parallelism: # TensorRT-LLM only; tokenization runs in the server process.', 'tokenizer_parallelism: 16')
        .replace('batch_scheduler_policy: guaranteed_no_evict', 'batch_scheduler_policy: max_utilization'),
    );
    const d = loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} });
    expect(d.warnings).toHaveLength(3);
    const gpt = d.warnings.find((w) => w.includes('gpt_model_type'));
    expect(gpt).toMatch(new RegExp(`^${file}:\\d+:\\d+: inferer_args.gpt_model_type: ignored`));
    const line = Number(gpt!.split(':')[1]);
    expect(fs.readFileSync(file, 'utf8').split('\n')[line - 1]).toContain('gpt_model_type: inflight_fused_batching');
    expect(d.warnings.join('\n')).toContain('max_utilization ignored');
  });
});

describe('mapConfs', () => {
  it('maps every runtime and server key', () => {
    const inference = inferenceConfSchema.parse({
      models: [
        {
          name: 'm',
          version: 1,
          device: 'cuda:0',
          inferer_args: {
            llm_style: 'qwen3',
            enable_thinking: false,
            reasoning_parser: 'qwen3',
            thinking_token_budget: 512,
            trust_request_chat_template: true,
            served_model_name: 'tiny',
            tokenizer_path: '/t',
            gpt_model_path: '/e',
            skip_special_tokens: [],
            threads: 2,
            sampling_threads: 3,
            max_batch_size: 8,
            max_num_tokens: 512,
            max_seq_len: 1024,
            kv_block_size: 32,
            max_tokens_in_paged_kv_cache: 4096,
            kv_cache_bytes: 1 << 20,
            kv_cache_free_gpu_mem_fraction: 0.5,
            kv_cache_dtype: 'int8',
            enable_kv_cache_reuse: false,
            scheduling_policy: 'priority',
            speculative_config: { method: 'ngram', num_speculative_tokens: 3, prompt_lookup_max: 5 },
            use_mmap: false,
            use_mlock: true,
            sampling: { temperature: 0.7, top_k: 20, top_p: 0.8, min_p: 0.05, repetition_penalty: 1.1, presence_penalty: 0.5, frequency_penalty: -0.5, seed: 7 },
            stop_words: ['END'],
            bad_words: ['bad'],
            end_token_id: 151645,
          },
        },
      ],
    });
    const server = serverConfSchema.parse({
      interface: { framework: 'http+grpc', host: '127.0.0.1', port: '9000,9001' },
      max_connections: 10,
      max_concurrency: 4,
      max_queue: 2,
      max_body_bytes: 4096,
      auth: { health: true, metrics: false },
      web_ui: false,
      log: { access_log: false },
    });
    const out = mapConfs(inference, server, { apiKey: 'k'.repeat(16) });
    expect(out.load).toEqual({
      device: 'cuda',
      threads: 2,
      samplingThreads: 3,
      maxBatchSize: 8,
      maxNumTokens: 512,
      maxSeqLen: 1024,
      kvBlockSize: 32,
      maxTokensInPagedKvCache: 4096,
      kvCacheBytes: 1 << 20,
      kvCacheFreeMemFraction: 0.5,
      kvCacheDtype: 'int8',
      enablePrefixCaching: false,
      schedulingPolicy: 'priority',
      speculative: { method: 'ngram', numSpeculativeTokens: 3, promptLookupMax: 5 },
      useMmap: false,
      useMlock: true,
    });
    expect(out.server).toEqual({
      host: '127.0.0.1',
      port: 9000,
      modelId: 'tiny',
      apiKey: 'k'.repeat(16),
      authHealth: true,
      authMetrics: false,
      maxConcurrency: 4,
      maxQueue: 2,
      maxConnections: 10,
      maxBodyBytes: 4096,
      enableThinking: false,
      reasoningParser: true,
      thinkingTokenBudget: 512,
      trustRequestChatTemplate: true,
      sampling: { temperature: 0.7, topK: 20, topP: 0.8, minP: 0.05, repetitionPenalty: 1.1, presencePenalty: 0.5, frequencyPenalty: -0.5, seed: 7 },
      endTokenId: 151645,
      stopWords: ['END'],
      badWords: ['bad'],
      skipSpecialTokens: false,
      webUi: false,
      accessLog: false,
    });
    expect(out.rpcPort).toBe(9001);
    expect(out.notes.map((n) => n.text)).toEqual([expect.stringContaining('only HTTP is served')]);
  });

  it('skip_special_tokens: a list of ids is which ids to skip, [] skips none, true every special token', () => {
    const map = (skip: unknown) => mapConfs(inferenceConfSchema.parse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', skip_special_tokens: skip } }] }), {}).server;
    expect(map([151643, 151645])).toMatchObject({ skipSpecialTokens: true, skipTokenIds: [151643, 151645] });
    expect(map([])).toMatchObject({ skipSpecialTokens: false, skipTokenIds: undefined });
    expect(map(true)).toMatchObject({ skipSpecialTokens: true, skipTokenIds: undefined });
  });

  it('leaves what the confs do not say at the defaults', () => {
    const inference = inferenceConfSchema.parse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e' } }] });
    const out = mapConfs(inference, {});
    expect(out.load).toEqual({ device: 'auto' });
    expect(out.server).toEqual({ ...defaultServerOptions, enableThinking: true });
  });

  it('speculative_config takes vLLM\'s ngram and draft_model methods, with bounds named', () => {
    const parse = (spec: unknown) => inferenceConfSchema.safeParse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', speculative_config: spec } }] });
    const message = (spec: unknown) => {
      const r = parse(spec);
      return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    expect(parse({ method: 'ngram', num_speculative_tokens: 16, prompt_lookup_min: 1, prompt_lookup_max: 1 }).success).toBe(true);
    expect(message({ method: 'eagle', num_speculative_tokens: 2 })).toContain('expected ngram');
    expect(message({ method: 'ngram', num_speculative_tokens: 17 })).toContain('num_speculative_tokens');
    expect(message({ method: 'ngram', num_speculative_tokens: 2, prompt_lookup_min: 4, prompt_lookup_max: 2 })).toContain('prompt_lookup_min must be at most prompt_lookup_max');
    expect(message({ method: 'ngram', num_speculative_tokens: 2, model: 'draft' })).toContain('model');
    // vLLM's form: a draft model by `model` alone (the method inferred), or named.
    expect(parse({ model: 'draft', num_speculative_tokens: 4 }).success).toBe(true);
    expect(parse({ method: 'draft_model', model: 'draft', num_speculative_tokens: 4 }).success).toBe(true);
    expect(message({ method: 'draft_model', num_speculative_tokens: 4 })).toContain('model');
    expect(message({ model: 'draft', num_speculative_tokens: 4, prompt_lookup_max: 2 })).toContain('prompt_lookup_max');
    expect(message({ num_speculative_tokens: 4 })).toContain('expected ngram (prompt lookup) or draft_model');
  });

  it('a draft model\'s path is read from the deploy folder, and one that is not there is refused naming the key', () => {
    const draftDir = path.join(tmp, 'models', 'draft');
    fs.mkdirSync(draftDir, { recursive: true });
    const withDraft = (model: string) =>
      qwen3Conf((t) => t.replace(/^(\s+)speculative_config:.*$/m, `$1speculative_config: {model: ${model}, num_speculative_tokens: 3}`));
    const d = loadDeployment({ inferenceConf: withDraft('models/draft'), deployPath: tmp, env: {} });
    expect(d.runtime.load.speculative).toEqual({ method: 'draft_model', numSpeculativeTokens: 3, model: draftDir });
    const file = withDraft('models/missing');
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }));
    expect(err.message).toMatch(new RegExp(`^${file}:\\d+:\\d+: speculative_config\\.model: the draft model ${path.join(tmp, 'models', 'missing')} does not exist`));
    expect(err.hint).toContain('Qwen3 checkpoint folder or a grpst engine folder');
  });

  it("lora_modules takes vLLM's name=path and {name, path, base_model_name} forms, paths from the deploy folder; a missing folder names its entry", () => {
    const adapter = path.join(tmp, 'adapters', 'sql');
    fs.mkdirSync(adapter, { recursive: true });
    const withLora = (entries: string) =>
      qwen3Conf((t) =>
        t
          .replace(/^(\s+)lora_modules:.*$/m, `$1lora_modules: ${entries}`)
          .replace(/^(\s+)max_lora_rank:.*$/m, '$1max_lora_rank: 16')
          .replace(/^(\s+)allow_runtime_lora_updating:.*$/m, '$1allow_runtime_lora_updating: true'),
      );
    const d = loadDeployment({ inferenceConf: withLora(`[sql=adapters/sql, {name: style, path: ${adapter}, base_model_name: Qwen/Qwen3-8B}]`), deployPath: tmp, env: {} });
    expect(d.runtime.server).toMatchObject({
      loraModules: [{ name: 'sql', path: adapter }, { name: 'style', path: adapter, baseModelName: 'Qwen/Qwen3-8B' }],
      maxLoraRank: 16,
      allowRuntimeLoraUpdating: true,
    });
    const file = withLora('[sql=adapters/sql, other=adapters/missing]');
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }));
    expect(err.message).toMatch(new RegExp(`^${file}:\\d+:\\d+: lora_modules\\[1\\] \\(other\\): the LoRA adapter folder ${path.join(tmp, 'adapters', 'missing')} does not exist`));
    const parse = (entries: unknown) => inferenceConfSchema.safeParse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', lora_modules: entries } }] });
    expect(parse(['no-equals-sign']).success).toBe(false);
    expect(parse(['a=x', { name: 'a', path: 'y' }]).error?.issues[0]?.message).toBe('give each adapter its own name');
  });

  it('served_model_name may list several names, as vLLM\'s --served-model-name: the first is the model id, the rest its aliases', () => {
    const map = (names: unknown) =>
      mapConfs(inferenceConfSchema.parse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', served_model_name: names } }] }), {}).server;
    expect(map(['qwen3', 'claude-3-5-sonnet-latest', 'gpt-4o'])).toMatchObject({ modelId: 'qwen3', modelAliases: ['claude-3-5-sonnet-latest', 'gpt-4o'] });
    for (const [names, id] of [[['only'], 'only'], ['one', 'one']] as const) {
      expect(map(names).modelId).toBe(id);
      expect(map(names).modelAliases).toBeUndefined();
    }
    // An empty list, an empty name or one listed twice is a conf error, not a server without a name.
    for (const bad of [[], ['a', ''], ['a', 'a'], 3])
      expect(inferenceConfSchema.safeParse({ models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', served_model_name: bad } }] }).success, JSON.stringify(bad)).toBe(false);
  });

  it('a served_model_name list in the YAML conf reaches the server options; a name listed twice is refused naming the key', () => {
    const listed = (names: string) => qwen3Conf((t) => t.replace(/served_model_name: qwen3\b/, `served_model_name: ${names}`));
    const d = loadDeployment({ inferenceConf: listed('[qwen3, claude-3-5-sonnet-latest]'), deployPath: tmp, env: {} });
    expect(d.runtime.server).toMatchObject({ modelId: 'qwen3', modelAliases: ['claude-3-5-sonnet-latest'] });
    const err = errorOf(() => loadDeployment({ inferenceConf: listed('[qwen3, qwen3]'), deployPath: tmp, env: {} }));
    expect(err.message).toContain('models[0].inferer_args.served_model_name');
    expect(err.message).toContain('list each name once');
  });

  it('under trtllm-serve, native-only keys are the ignored ones and TensorRT-LLM keys pass', () => {
    const inference = inferenceConfSchema.parse({
      models: [{ name: 'm', version: '1', inferer_args: { llm_style: 'qwen3', tokenizer_path: 't', gpt_model_path: 'e', threads: 4, sampling_threads: 2, kv_cache_host_memory_bytes: 1024, gpt_model_type: 'V1', generation_config: 'none', served_model_name: 'qwen3', scheduling_policy: 'priority', speculative_config: { method: 'ngram', num_speculative_tokens: 2 }, use_mmap: false, use_mlock: true } }],
    });
    const notes = mapConfs(inference, {}, { backend: 'trtllm' }).notes;
    expect(notes.map((n) => n.keyPath.at(-1)).sort()).toEqual(['generation_config', 'gpt_model_type', 'sampling_threads', 'scheduling_policy', 'served_model_name', 'speculative_config', 'threads', 'use_mlock', 'use_mmap']);
    const text = (key: string) => notes.find((n) => n.keyPath.at(-1) === key)!.text;
    expect(text('generation_config')).toContain('trtllm-serve chooses its sampling defaults itself');
    expect(text('served_model_name')).toContain('trtllm-serve lists the model under its engine path');
    expect(text('scheduling_policy')).toContain('trtllm-serve schedules requests itself');
    expect(text('speculative_config')).toContain('--speculative_decoding_mode');
    expect(text('use_mmap')).toContain('trtllm-serve reads a TensorRT-LLM engine itself');
    // The native server applies both: no note.
    expect(mapConfs(inference, {}).notes.map((n) => n.keyPath.at(-1))).not.toContain('served_model_name');
  });
});

describe('conf errors', () => {
  it('a missing conf names the path', () => {
    const err = errorOf(() => loadDeployment({ inferenceConf: path.join(tmp, 'nope.yml'), deployPath: tmp }));
    expect(err.message).toContain(`inference conf ${path.join(tmp, 'nope.yml')} does not exist`);
    expect(err.exitCode).toBe(2);
  });

  it('a YAML syntax error gives line and column', () => {
    const file = write('syntax.yml', 'models:\n  - name: m\n    inferer_args: {llm_style: qwen3\n    version: 1\n');
    const err = errorOf(() => readYamlFile(file, 'conf/syntax.yml'));
    expect(err.message).toMatch(/^conf\/syntax\.yml:\d+:\d+: YAML syntax error/);
    expect(err.hint).toMatch(/line \d+, column \d+/);
  });

  it('a duplicate key is a syntax error on its line', () => {
    const err = errorOf(() => parseYamlText('max_concurrency: 1\nmax_concurrency: 2\n', 'server.yml'));
    expect(err.message).toMatch(/^server\.yml:2:1: YAML syntax error: Map keys must be unique/);
  });

  it('a wrong type names file, line, key path, the expected type and what was found', () => {
    const file = qwen3Conf((t) => t.replace('top_k: 20', 'top_k: twenty'));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    const line = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes('top_k: twenty')) + 1;
    expect(err.message).toBe(`${file}:${line}:9: models[0].inferer_args.sampling.top_k: expected number, got "twenty" (a string)`);
  });

  it('a wrong enum value lists the allowed values', () => {
    const file = qwen3Conf((t) => t.replace('device: # `cpu`', 'device: tpu # `cpu`'));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    expect(err.message).toMatch(/models\[0\]\.inferer_args\.device: "tpu" is not allowed; allowed values: "cpu", "cuda", "auto"/);
  });

  it('an unknown key is an error that suggests the nearest valid key', () => {
    const file = qwen3Conf((t) => t.replace('temperature: 0.6', 'temprature: 0.6').replace('enable_thinking: true', 'enable_thinkng: true'));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    expect(err.message).toContain('models[0].inferer_args.enable_thinkng: unknown key; did you mean "enable_thinking"?');
    expect(err.message).toContain('models[0].inferer_args.sampling.temprature: unknown key; did you mean "temperature"?');
    const server = write('server-typo.yml', 'interface:\n  prot: 9000\n');
    const err2 = errorOf(() => loadDeployment({ inferenceConf: qwen3Conf(), serverConf: server, deployPath: tmp }));
    expect(err2.message).toBe(`${server}:2:3: interface.prot: unknown key; did you mean "port"?`);
  });

  it('a key far from every valid key lists the valid ones', () => {
    const err = errorOf(() => loadDeployment({ inferenceConf: qwen3Conf(), serverConf: write('s.yml', 'log:\n  zzzzzzzzzz: 1\n'), deployPath: tmp }));
    expect(err.message).toContain('valid keys here: log_dir, log_backup_count');
  });

  it('out-of-range numbers and missing required keys are named', () => {
    const file = qwen3Conf((t) => t.replace('kv_cache_free_gpu_mem_fraction: 0.9', 'kv_cache_free_gpu_mem_fraction: 1.5').replace(/ {6}gpt_model_path: .*\n/, ''));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    expect(err.message).toContain('models[0].inferer_args.gpt_model_path: missing; expected string');
    expect(err.message).toMatch(/kv_cache_free_gpu_mem_fraction: 1\.5 is out of range/);
  });

  it('a missing key whose schema takes several types is named missing, not "undefined is not valid"', () => {
    const file = qwen3Conf((t) => t.replace(/ {4}version: 1\.0\.0\n/, ''));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    expect(err.message).toContain('models[0].version: missing; expected a version, such as 1.0.0');
    expect(err.message).not.toContain('undefined');
  });

  it('a dag node naming an undeclared model suggests the declared one', () => {
    const file = qwen3Conf((t) => t.replace('model: trtllm_model-1.0.0', 'model: trtllm_model-1.0'));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    expect(err.message).toMatch(/dag\.nodes\[0\]\.model: "trtllm_model-1\.0" is not a declared model; did you mean "trtllm_model-1\.0\.0"\?/);
  });

  it('an alias bomb is refused instead of expanded', () => {
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    const err = errorOf(() => parseYamlText(bomb.join('\n'), 'bomb.yml'));
    expect(err.message).toMatch(/^bomb\.yml: Excessive alias count/);
  });

  it('relative conf paths may not climb out of the deploy folder; absolute ones may point anywhere', () => {
    const err = errorOf(() => loadDeployment({ inferenceConf: qwen3Conf(), serverConf: write('s2.yml', 'log:\n  log_dir: ../../../etc\n'), deployPath: path.join(tmp, 'deploy') }));
    expect(err.message).toMatch(/log\.log_dir: "\.\.\/\.\.\/\.\.\/etc" leaves the deploy folder/);
    const abs = loadDeployment({ inferenceConf: qwen3Conf(), serverConf: write('s3.yml', `log:\n  log_dir: ${path.join(tmp, 'elsewhere')}\n`), deployPath: path.join(tmp, 'deploy') });
    expect(abs.log.dir).toBe(path.join(tmp, 'elsewhere'));
  });

  it('gpt_model_path must be an engine folder or a Hugging Face checkpoint', () => {
    const ckpt = path.join(tmp, 'ckpt');
    fs.mkdirSync(ckpt, { recursive: true });
    fs.writeFileSync(path.join(ckpt, 'config.json'), '{"model_type":"qwen3"}');
    const file = qwen3Conf((t) => t.replace(`gpt_model_path: ${engineDir}`, `gpt_model_path: ${ckpt}`));
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp }));
    expect(err.message).toContain(`${ckpt} is not an engine folder`);
    expect(err.hint).toContain('grpst build --output_dir');
    fs.writeFileSync(path.join(ckpt, 'model.safetensors'), '');
    // A checkpoint is served as it lies: its config.json is checked now, not when the server loads it.
    const incomplete = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }));
    expect(incomplete.message).toMatch(/gpt_model_path: .*ckpt\/config\.json: hidden_size: /);
    const f = specFile();
    fs.writeFileSync(path.join(ckpt, 'config.json'), JSON.stringify(configJson(f.checkpoints['tiny-a'], f.vocab_size)));
    expect(loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }).backend).toBe('native');
  });

  it('a TensorRT-LLM engine folder is recognised by its config.json', () => {
    const trt = path.join(tmp, 'trt');
    fs.mkdirSync(trt, { recursive: true });
    fs.writeFileSync(path.join(trt, 'config.json'), JSON.stringify({ pretrained_config: {}, build_config: {} }));
    const file = qwen3Conf((t) => t.replace(`gpt_model_path: ${engineDir}`, `gpt_model_path: ${trt}`));
    expect(loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }).backend).toBe('trtllm');
    // grpst build --backend trtllm adds an engine.json that says so.
    fs.writeFileSync(path.join(trt, 'engine.json'), JSON.stringify({ format: 'grpst-engine', backend: 'trtllm' }));
    expect(loadDeployment({ inferenceConf: file, deployPath: tmp, env: {} }).backend).toBe('trtllm');
    const err = errorOf(() => loadDeployment({ inferenceConf: file, deployPath: tmp, env: { GRPST_API_KEY: 'secret-key-123' } }));
    expect(err.message).toContain('cannot be enforced for a TensorRT-LLM engine');
  });

  it('api_key_file is read relative to the deploy folder and GRPST_API_KEY wins over it', () => {
    write('deploy2/keys/key', 'file-key-123456\n');
    const server = write('deploy2/server.yml', 'api_key_file: keys/key\n');
    const base = path.join(tmp, 'deploy2');
    expect(loadDeployment({ inferenceConf: qwen3Conf(), serverConf: server, deployPath: base, env: {} }).runtime.server.apiKey).toBe('file-key-123456');
    expect(loadDeployment({ inferenceConf: qwen3Conf(), serverConf: server, deployPath: base, env: { GRPST_API_KEY: 'env-key-123456' } }).runtime.server.apiKey).toBe('env-key-123456');
    const both = write('deploy2/both.yml', 'api_key: abcdefghijk\napi_key_file: keys/key\n');
    expect(errorOf(() => loadDeployment({ inferenceConf: qwen3Conf(), serverConf: both, deployPath: base, env: {} })).message).toContain('api_key and api_key_file are both set');
  });
});
