// Checkpoints in the layout Qwen3-Embedding ships: a base model's save (Qwen3Model), its tensors
// named without `model.` and no lm_head.weight (the 8B's config even says tie_word_embeddings
// false). They load; their embeddings are the causal LM layout's vectors (the head plays no part
// in them); generation routes answer a 400 that says where the model serves.
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEngine, type Engine } from '../../src/engine/index.js';
import { defaultSampling } from '../../src/engine/types.js';
import { readManifest } from '../../src/build/manifest.js';
import { runBuild } from '../../src/build/index.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { resolveSettings } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { writeSafetensors } from '../../src/model/safetensors.js';
import { checkpoint, refs, type CheckpointName } from '../helpers/fixtures.js';
import { post, serve, type TestServer } from './server-harness.js';
import { ChatTemplate } from '../../src/chat/chat-template.js';
import { Tokenizer } from '../../src/chat/tokenizer.js';

const dirs: string[] = [];
const engines: Engine[] = [];
const servers: TestServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.server.close();
  for (const e of engines) await e.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** `name`'s tensors but lm_head.weight, renamed by `rename`, in one file of a new folder with its config and tokenizer. */
function resaved(name: CheckpointName, rename: (n: string) => string): string {
  const src = checkpoint(name);
  const dir = mkdtempSync(join(tmpdir(), `grpst-base-${name}-`));
  dirs.push(dir);
  const files = new Map<string, Buffer>();
  const tensors = [...openCheckpoint(src).tensors.values()]
    .filter((t) => t.name !== 'lm_head.weight')
    .map((t) => {
      if (!files.has(t.file)) files.set(t.file, readFileSync(t.file));
      return { name: rename(t.name), dtype: t.dtype, shape: t.shape, data: files.get(t.file)!.subarray(t.offset, t.offset + t.nbytes) };
    });
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(dir, f));
  return dir;
}
/** `name` re-saved as a base model: `model.` dropped from every name, no lm_head.weight. */
const baseModelCopy = (name: CheckpointName) => resaved(name, (n) => n.replace(/^model\./, ''));

async function vector(engine: Engine, tokens: number[]): Promise<number[]> {
  let v: Float32Array | undefined;
  for await (const ev of engine.submit({ tokens, sampling: { ...defaultSampling, temperature: 0 }, maxTokens: 0, embed: true })) v = ev.embedding ?? v;
  return Array.from(v!);
}

describe('base-model checkpoints (the Qwen3-Embedding layout)', () => {
  it('load as embedding models: flat names taken, the missing head stood in for, the same vectors', async () => {
    // tiny-a ties its head; tiny-b does not, and its copy has no head at all (as Qwen3-Embedding-8B).
    for (const name of ['tiny-a', 'tiny-b'] as CheckpointName[]) {
      const dir = baseModelCopy(name);
      const ck = openCheckpoint(dir);
      expect(ck.headless).toBe(true);
      expect(ck.tensors.has('model.layers.0.self_attn.q_proj.weight')).toBe(true);
      expect(ck.model.tieWordEmbeddings).toBe(true);
      const opts = { maxSeqLen: 1024, maxTokensInPagedKvCache: 4096 };
      const [base, full] = [await loadEngine(dir, opts), await loadEngine(checkpoint(name), opts)];
      engines.push(base, full);
      expect(base.info.embeddingOnly).toBe(true);
      expect(full.info.embeddingOnly).toBeUndefined();
      for (const p of refs(name).prompts) expect(await vector(base, p.prompt_ids), `${name} ${p.name}`).toEqual(await vector(full, p.prompt_ids));
    }
    // A causal LM's own layout missing its untied head is still an incomplete checkpoint.
    const broken = resaved('tiny-b', (n) => n);
    expect(() => openCheckpoint(broken)).toThrow(/tensor lm_head.weight is missing/);
  });

  it('build into engines that remember it', async () => {
    const dir = baseModelCopy('tiny-b');
    const out = join(dirs[dirs.length - 1], 'engine');
    await runBuild(resolveSettings({}, { model_dir: dir, output_dir: out, eval_tokens: 64 }), { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
    expect(readManifest(out).source.embedding_only).toBe(true);
    const opts = { maxSeqLen: 1024, maxTokensInPagedKvCache: 4096 };
    const [engine, ck] = [await loadEngine(out, opts), await loadEngine(checkpoint('tiny-b'), opts)];
    engines.push(engine, ck);
    expect(engine.info.embeddingOnly).toBe(true);
    const tokens = refs('tiny-b').prompts[0].prompt_ids;
    expect(await vector(engine, tokens)).toEqual(await vector(ck, tokens));
  });

  it('serve /v1/embeddings; the generation routes answer 400 naming where the model serves', async () => {
    const dir = baseModelCopy('tiny-b');
    const engine = await loadEngine(dir, { maxSeqLen: 1024, maxTokensInPagedKvCache: 4096 });
    engines.push(engine);
    const srv = await serve({ engine, tokenizer: Tokenizer.fromDir(dir), template: ChatTemplate.fromDir(dir) });
    servers.push(srv);
    const e = await srv.client.embeddings.create({ model: 'qwen3', input: 'The sea is deep.' });
    expect(e.data[0].embedding).toHaveLength(engine.info.hiddenSize);
    const refused: [string, Record<string, unknown>][] = [
      ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }],
      ['/v1/completions', { prompt: 'hi' }],
      ['/v1/responses', { input: 'hi' }],
      ['/api/generate', { model: 'qwen3', prompt: 'hi', stream: false }],
      ['/v1/rerank', { query: 'hi', documents: ['hello'] }],
      ['/v1/score', { text_1: 'hi', text_2: 'hello' }],
    ];
    for (const [path, body] of refused) {
      const r = await post(`${srv.url}${path}`, body);
      expect(r.status, path).toBe(400);
      expect(JSON.stringify(r.json)).toMatch(/is an embedding model .* serves POST \/v1\/embeddings/);
    }
    const m = await post(`${srv.url}/v1/messages`, { model: 'qwen3', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] });
    expect(m.status).toBe(400);
  });
});
