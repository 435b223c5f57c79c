// The pieces of `grpst pull` that need no network: which text is a Hub id, which files a pull
// takes (fnmatch as huggingface_hub's patterns), the cache's folder names and snapshot check.
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fnmatchRegExp, selectFiles } from '../../src/hub/file-patterns.js';
import { repoFolder, repoIdOfSnapshot, snapshotComplete } from '../../src/hub/hub-cache.js';
import { hubEnv, looksLikeRepoId, parseModelRef } from '../../src/hub/hub-env.js';

describe('Hub ids', () => {
  it('takes owner/name and nothing that is plainly a path', () => {
    for (const id of ['Qwen/Qwen3-8B', 'Qwen/Qwen3-30B-A3B-Instruct-2507', 'unsloth/Qwen3-8B-GGUF', 'a/b.c_d']) expect(looksLikeRepoId(id), id).toBe(true);
    for (const p of ['/tmp/Qwen3-8B', './models/x', '../x/y', 'a/b/c', 'Qwen3-8B', 'a--b/c', 'a/b..c', '-a/b', 'a/b.git', 'a/ b']) expect(looksLikeRepoId(p), p).toBe(false);
  });

  it('takes owner/name@revision, main when none is given', () => {
    expect(parseModelRef('Qwen/Qwen3-8B')).toEqual({ id: 'Qwen/Qwen3-8B', revision: 'main' });
    expect(parseModelRef(`Qwen/Qwen3-8B@${'a'.repeat(40)}`)).toEqual({ id: 'Qwen/Qwen3-8B', revision: 'a'.repeat(40) });
    expect(parseModelRef('Qwen/Qwen3-8B@refs/pr/1')).toEqual({ id: 'Qwen/Qwen3-8B', revision: 'refs/pr/1' });
    for (const bad of ['Qwen/Qwen3-8B@', 'Qwen/Qwen3-8B@../x', 'Qwen/Qwen3-8B@a b', '/abs/path@main', 'a/b/c@main']) expect(parseModelRef(bad), bad).toBeUndefined();
  });

  it('names cache folders and reads snapshot folders back as huggingface_hub does', () => {
    expect(repoFolder('/c', 'Qwen/Qwen3-8B')).toBe('/c/models--Qwen--Qwen3-8B');
    const commit = 'a'.repeat(40);
    expect(repoIdOfSnapshot(`/c/models--Qwen--Qwen3-8B/snapshots/${commit}`)).toBe('Qwen/Qwen3-8B');
    expect(repoIdOfSnapshot(`/c/models--Qwen--Qwen3-8B/snapshots/${commit}/`)).toBe('Qwen/Qwen3-8B');
    expect(repoIdOfSnapshot('/tmp/Qwen3-8B')).toBeUndefined();
  });

  it('reads the environment with huggingface_hub’s names and defaults', () => {
    expect(hubEnv({ HOME: '/h', HF_HOME: '/x/hf', HF_ENDPOINT: 'https://mirror.example/' })).toMatchObject({ endpoint: 'https://mirror.example', cacheDir: '/x/hf/hub', offline: false });
    expect(hubEnv({ XDG_CACHE_HOME: '/xdg', HF_HUB_CACHE: '/only-hub', HF_HUB_OFFLINE: 'yes' })).toMatchObject({ cacheDir: '/only-hub', offline: true });
    expect(hubEnv({ XDG_CACHE_HOME: '/xdg', TRANSFORMERS_OFFLINE: '1', HF_TOKEN: 'hf_x' })).toMatchObject({ cacheDir: '/xdg/huggingface/hub', offline: true, token: 'hf_x' });
  });
});

describe('file selection', () => {
  it('matches as fnmatch does: * crosses folders, ? one character, [!x] a class', () => {
    expect(fnmatchRegExp('*.json').test('sub/dir/a.json')).toBe(true);
    expect(fnmatchRegExp('model-?.safetensors').test('model-1.safetensors')).toBe(true);
    expect(fnmatchRegExp('model-?.safetensors').test('model-12.safetensors')).toBe(false);
    expect(fnmatchRegExp('[!t]*').test('tokenizer.json')).toBe(false);
    expect(fnmatchRegExp('[!t]*').test('config.json')).toBe(true);
    expect(fnmatchRegExp('a.b').test('axb')).toBe(false);
  });

  it('leaves other weight formats out unless --include names files', () => {
    const files = ['config.json', 'model.safetensors', 'pytorch_model.bin', 'q4.gguf', 'original/consolidated.pth', 'tokenizer.json'];
    expect(selectFiles(files, {})).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(selectFiles(files, { exclude: ['tokenizer*'] })).toEqual(['config.json', 'model.safetensors']);
    expect(selectFiles(files, { include: ['*.bin', '*.json'] })).toEqual(['config.json', 'pytorch_model.bin', 'tokenizer.json']);
  });
});

describe('snapshot completeness', () => {
  it('wants config.json and every shard the index names, through the links', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grpst-snap-'));
    try {
      expect(snapshotComplete(dir)).toBe(false);
      writeFileSync(join(dir, 'config.json'), '{}');
      expect(snapshotComplete(dir)).toBe(false);
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-1.safetensors', b: 'model-2.safetensors' } }));
      mkdirSync(join(dir, 'blobs'));
      writeFileSync(join(dir, 'blobs', 'one'), 'x');
      symlinkSync('blobs/one', join(dir, 'model-1.safetensors'));
      symlinkSync('blobs/missing', join(dir, 'model-2.safetensors'));
      expect(snapshotComplete(dir)).toBe(false);
      writeFileSync(join(dir, 'blobs', 'missing'), 'y');
      expect(snapshotComplete(dir)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
