// A checkpoint's generation_config.json supplies the sampling defaults a request and the conf
// leave out (vLLM's --generation-config auto), and `generation_config: none` turns that off.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDeployment } from '../../src/config/resolve.js';
import { samplingFor, tokenBudget } from '../../src/server/openai/sampling.js';
import type { CommonRequest } from '../../src/server/openai/schema-common.js';
import { tokenizerDir } from '../helpers/fixtures.js';

let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-genconf-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** An engine folder holding `generation` as its generation_config.json, and a conf serving it. */
function deployment(generation: unknown, infererExtra = '', tokenizer = tokenizerDir) {
  const dir = fs.mkdtempSync(path.join(tmp, 'd-'));
  const engine = path.join(dir, 'engine');
  fs.mkdirSync(engine);
  fs.writeFileSync(path.join(engine, 'engine.json'), '{}');
  if (generation !== undefined) fs.writeFileSync(path.join(engine, 'generation_config.json'), typeof generation === 'string' ? generation : JSON.stringify(generation));
  const conf = path.join(dir, 'inference.yml');
  fs.writeFileSync(
    conf,
    ['models:', '  - name: m', '    version: 1.0.0', '    inferer_args:', '      llm_style: qwen3', `      tokenizer_path: ${tokenizer}`, `      gpt_model_path: ${engine}`, ...infererExtra.split('\n').filter(Boolean).map((l) => `      ${l}`)].join('\n'),
  );
  return loadDeployment({ inferenceConf: conf, deployPath: dir, env: {} });
}

const qwen3Generation = { bos_token_id: 151643, do_sample: true, eos_token_id: [151645, 151643], pad_token_id: 151643, temperature: 0.6, top_k: 20, top_p: 0.95 };
const request = (fields: Partial<CommonRequest> = {}) => ({ model: 'qwen3', ...fields }) as CommonRequest;

describe('generation_config.json sampling defaults', () => {
  it("a request that leaves sampling out gets the checkpoint's recommended values", () => {
    const d = deployment(qwen3Generation);
    expect(d.runtime.server.sampling).toEqual({ temperature: 0.6, topK: 20, topP: 0.95 });
    expect(d.generationDefaults?.applied).toBe('temperature=0.6 top_k=20 top_p=0.95');
    expect(d.generationDefaults?.file).toBe(path.join(path.dirname(d.inferenceConfFile), 'engine', 'generation_config.json'));
    const s = samplingFor(request(), d.runtime.server);
    expect([s.temperature, s.topK, s.topP, s.minP]).toEqual([0.6, 20, 0.95, 0]);
  });

  it("the request's own fields win, then the conf's sampling, then the file", () => {
    const d = deployment(qwen3Generation, 'sampling:\n  temperature: 0.7\n  top_p: 0.8');
    expect(d.runtime.server.sampling).toEqual({ temperature: 0.7, topP: 0.8, topK: 20 });
    expect(d.generationDefaults?.applied).toBe('top_k=20');
    const s = samplingFor(request({ temperature: 0, top_k: 5 }), d.runtime.server);
    expect([s.temperature, s.topK, s.topP]).toEqual([0, 5, 0.8]);
  });

  it("max_new_tokens is the answer's length when a request sets none; the request's own max_tokens wins", () => {
    const d = deployment({ ...qwen3Generation, max_new_tokens: 7 });
    expect(d.runtime.server.defaultMaxTokens).toBe(7);
    expect(d.generationDefaults?.applied).toBe('temperature=0.6 top_k=20 top_p=0.95 max_new_tokens=7');
    const limits = { maxSeqLen: 100, maxInputLen: 100 };
    expect(tokenBudget(undefined, 10, limits, 'messages', 'max_tokens', d.runtime.server.defaultMaxTokens)).toBe(7);
    expect(tokenBudget(50, 10, limits, 'messages', 'max_tokens', d.runtime.server.defaultMaxTokens)).toBe(50);
    // Never past what the context leaves.
    expect(tokenBudget(undefined, 96, limits, 'messages', 'max_tokens', d.runtime.server.defaultMaxTokens)).toBe(4);
    const bad = deployment({ max_new_tokens: 0 });
    expect(bad.runtime.server.defaultMaxTokens).toBeUndefined();
    expect(bad.generationDefaults?.ignored).toEqual(['max_new_tokens 0 (expected an integer >= 1)']);
    expect(deployment({ max_new_tokens: 7 }, 'generation_config: none').runtime.server.defaultMaxTokens).toBeUndefined();
  });

  it('generation_config: none keeps OpenAI defaults (temperature 1, no top_k / top_p)', () => {
    const d = deployment(qwen3Generation, 'generation_config: none');
    expect(d.runtime.server.sampling).toEqual({});
    expect(d.generationDefaults).toBeUndefined();
    const s = samplingFor(request(), d.runtime.server);
    expect([s.temperature, s.topK, s.topP]).toEqual([1, 0, 1]);
  });

  it('out-of-range or non-numeric values are left out and named; a file without sampling fields changes nothing', () => {
    const d = deployment({ temperature: -1, top_p: 0, top_k: 2.5, min_p: 0.05, repetition_penalty: '1.1' });
    expect(d.runtime.server.sampling).toEqual({ minP: 0.05 });
    expect(d.generationDefaults?.ignored).toEqual(['temperature -1 (expected 0..100)', 'top_k 2.5 (expected an integer >= 0)', 'top_p 0 (expected (0, 1])', 'repetition_penalty "1.1" (expected > 0)']);
    const plain = deployment({ eos_token_id: [151645, 151643] });
    expect(plain.runtime.server.sampling).toEqual({});
    expect(plain.generationDefaults?.applied).toBe('');
  });

  it('a broken generation_config.json is reported and ignored, not fatal (the file is optional)', () => {
    const d = deployment('{ not json');
    expect(d.runtime.server.sampling).toEqual({});
    expect(d.generationDefaults?.ignored).toEqual(['the file is not valid JSON']);
  });

  it("without one in the engine folder, the tokenizer folder's is read; the engine folder's comes first", () => {
    const tokenizer = fs.mkdtempSync(path.join(tmp, 'tok-'));
    fs.cpSync(tokenizerDir, tokenizer, { recursive: true });
    fs.writeFileSync(path.join(tokenizer, 'generation_config.json'), JSON.stringify({ temperature: 0.7, top_p: 0.8 }));
    const fallback = deployment(undefined, '', tokenizer);
    expect(fallback.runtime.server.sampling).toEqual({ temperature: 0.7, topP: 0.8 });
    expect(fallback.generationDefaults?.file).toBe(path.join(tokenizer, 'generation_config.json'));
    expect(deployment(qwen3Generation, '', tokenizer).runtime.server.sampling).toEqual({ temperature: 0.6, topK: 20, topP: 0.95 });
  });

  it('with a generation_config.json in neither folder, nothing changes', () => {
    const d = deployment(undefined);
    expect(d.runtime.server.sampling).toEqual({});
    // The bundled tokenizer folder has no generation_config.json either.
    expect(fs.existsSync(path.join(tokenizerDir, 'generation_config.json'))).toBe(false);
    expect(d.generationDefaults).toBeUndefined();
  });
});
