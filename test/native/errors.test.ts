// Bad checkpoints, bad options and bad requests become clean JS errors (or "error" events),
// never a crash of the process.
import { cpSync, mkdtempSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAddon, loadEngine, LoadCancelled, type Engine } from '../../src/engine/index.js';
import { runBuild } from '../../src/build/index.js';
import { loadRuntimeBridge } from '../../src/build/native/runtime-loader.js';
import { resolveSettings } from '../../src/build/options.js';
import { MemoryReporter } from '../../src/build/progress.js';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { GrpstError } from '../../src/util/errors.js';
import { checkpoint } from '../helpers/fixtures.js';
import { greedy, run } from './helpers.js';

function copyOf(name: 'tiny-a' | 'tiny-b'): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'grpst-bad-')), name);
  cpSync(checkpoint(name), dir, { recursive: true });
  return dir;
}

async function loadError(dir: string, opts = {}): Promise<GrpstError> {
  try {
    const e = await loadEngine(dir, { maxTokensInPagedKvCache: 256, ...opts });
    await e.close();
  } catch (err) {
    expect(err).toBeInstanceOf(GrpstError);
    return err as GrpstError;
  }
  throw new Error('loadEngine did not fail');
}

describe('loading', () => {
  it('a truncated safetensors file names the file', async () => {
    const dir = copyOf('tiny-a');
    const file = join(dir, 'model.safetensors');
    truncateSync(file, statSync(file).size - 1000);
    const err = await loadError(dir);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/truncated/);
  });

  it('the runtime re-checks byte ranges against the mapped file', async () => {
    const ckpt = openCheckpoint(checkpoint('tiny-a'));
    const table = [...ckpt.tensors.values()].map((t) => ({ ...t, shape: [...t.shape] }));
    const last = table.reduce((a, b) => (a.offset > b.offset ? a : b));
    last.offset += 4096;  // past the end of the file
    await expect(loadAddon().createEngine(ckpt.model, table, {}, () => {})).rejects.toThrow(
      new RegExp(`${last.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is truncated`),
    );
  });

  it('a tensor whose shape disagrees with the config names the tensor', async () => {
    const ckpt = openCheckpoint(checkpoint('tiny-a'));
    const table = [...ckpt.tensors.values()].map((t) => ({ ...t, shape: [...t.shape] }));
    const q = table.find((t) => t.name === 'model.layers.1.self_attn.q_proj.weight')!;
    q.shape = [q.shape[1], q.shape[0]];
    await expect(loadAddon().createEngine(ckpt.model, table, {}, () => {})).rejects.toThrow(
      /model\.layers\.1\.self_attn\.q_proj\.weight has shape/,
    );
  });

  it('a missing tensor is named', async () => {
    const ckpt = openCheckpoint(checkpoint('tiny-b'));
    const table = [...ckpt.tensors.values()].filter((t) => t.name !== 'lm_head.weight');
    await expect(loadAddon().createEngine(ckpt.model, table, {}, () => {})).rejects.toThrow(/lm_head\.weight is missing/);
  });

  it('a config that is not Qwen3 names config.json', async () => {
    const dir = copyOf('tiny-a');
    const cfgFile = join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
    writeFileSync(cfgFile, JSON.stringify({ ...cfg, model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
    const err = await loadError(dir);
    expect(err.message).toContain(cfgFile);
    expect(err.message).toMatch(/not qwen3/);
  });

  it('a missing folder, a CUDA request and a bad kernel level are clear errors', async () => {
    expect((await loadError('/nonexistent/model')).message).toMatch(/does not exist/);
    expect((await loadError(checkpoint('tiny-a'), { device: 'cuda' })).message).toMatch(/only the CPU backend/);
    process.env.GRPST_CPU_KERNELS = 'avx9000';
    try {
      expect((await loadError(checkpoint('tiny-a'))).message).toMatch(/GRPST_CPU_KERNELS/);
    } finally {
      delete process.env.GRPST_CPU_KERNELS;
    }
    expect((await loadError(checkpoint('tiny-a'), { kvCacheDtype: 'int3' })).message).toMatch(/KV cache dtype/);
    // A cache too small for one block names the inference conf's keys (what a user of grpst start edits).
    // Past the model's positions (40,960 for tiny-a; tiny-yarn's YaRN factor 4 x 64 original stays under it).
    expect((await loadError(checkpoint('tiny-a'), { maxSeqLen: 100_000 })).message).toMatch(/max_seq_len 100000 is past the model's 40960 positions/);
    const small = await loadError(checkpoint('tiny-a'), { maxTokensInPagedKvCache: 3 });
    expect(small.message).toMatch(/would hold no block of 16 tokens; raise max_tokens_in_paged_kv_cache \/ kv_cache_bytes \(inference conf\)/);
  });

  it('a load stopped through its signal rejects as cancelled, and the runtime loads and runs again after it', async () => {
    const dir = checkpoint('tiny-a');
    const opts = { maxTokensInPagedKvCache: 256 };
    const built = join(mkdtempSync(join(tmpdir(), 'grpst-cancel-')), 'engine');
    await runBuild(resolveSettings({}, { model_dir: dir, output_dir: built, eval_tokens: 16 }), { reporter: new MemoryReporter(), version: 'test', bridge: loadRuntimeBridge });
    // Aborted before the runtime starts: it stops at its first layer (a stop mid-load is the
    // serve test's, test/e2e/serve-model-dir.test.ts, through GRPST_TEST_LOAD_LAYER_DELAY_MS).
    for (const engineDir of [dir, built]) {
      const err = await loadEngine(engineDir, opts, AbortSignal.abort()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LoadCancelled);
      expect((err as LoadCancelled).message).toBe(`loading ${engineDir} was cancelled`);
    }
    // A signal that fires after the load has no effect on the engine.
    const ac = new AbortController();
    const engine = await loadEngine(dir, opts, ac.signal);
    ac.abort();
    try {
      expect((await run(engine, { tokens: [1, 2, 3], sampling: greedy, maxTokens: 4, ignoreEos: true })).tokens).toHaveLength(4);
    } finally {
      await engine.close();
    }
  });
});

describe('requests', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await loadEngine(checkpoint('tiny-a'), { maxSeqLen: 128, maxTokensInPagedKvCache: 1024 });
  });
  afterAll(async () => {
    await engine?.close();
  });

  it('bad parameters throw at submit', () => {
    const bad = (over: object) => () => engine.submit({ tokens: [1, 2, 3], sampling: greedy, maxTokens: 2, ...over });
    expect(bad({ tokens: [] })).toThrow(/empty/);
    expect(bad({ sampling: { ...greedy, temperature: -1 } })).toThrow(/temperature/);
    expect(bad({ sampling: { ...greedy, topP: 0 } })).toThrow(/topP/);
    expect(bad({ maxTokens: -1 })).toThrow(/maxTokens/);
    expect(bad({ tokens: new Array(128).fill(5) })).toThrow(/max_seq_len is 128/);
    expect(bad({ tokens: [1, 2.5] })).toThrow(/integers/);
  });

  it('a token id outside the vocabulary ends the request with an error event', async () => {
    const r = await run(engine, { tokens: [1, 999_999], sampling: greedy, maxTokens: 2 });
    expect(r.finish).toBe('error');
    expect(r.last.error).toMatch(/outside the vocabulary/);
    const ok = await run(engine, { tokens: [1, 2], sampling: greedy, maxTokens: 2 });
    expect(ok.tokens).toHaveLength(2);
  });

  it('generation stops at max_seq_len with "length"', async () => {
    const r = await run(engine, { tokens: new Array(120).fill(7), sampling: greedy, maxTokens: 50, ignoreEos: true });
    expect(r.finish).toBe('length');
    expect(120 + r.tokens.length).toBe(128);
  });
});
