import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultLimits, extractArchive } from '../../src/archive/extract.js';
import { manifestName } from '../../src/archive/manifest.js';
import { writeArchive } from '../../src/archive/write.js';
import { loadDeployment } from '../../src/config/resolve.js';
import { GrpstError } from '../../src/util/errors.js';
import { repoRoot, tokenizerDir } from '../helpers/fixtures.js';
import { rawZip, type RawEntry } from '../helpers/raw-zip.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-archive-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function put(file: string, data: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data, { mode });
}

function listFiles(dir: string, prefix = ''): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const name = prefix ? `${prefix}/${e.name}` : e.name;
    return e.isDirectory() ? listFiles(path.join(dir, e.name), name) : [name];
  }).sort();
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A .mar from raw entries with a manifest that vouches for every file entry (so only the entry itself is wrong). */
function marOf(entries: RawEntry[], manifestEdit: (files: object[]) => object[] = (f) => f): Buffer {
  const files = entries
    .filter((e) => !e.name.endsWith('/') && ((e.mode ?? 0o100644) & 0o170000) === 0o100000)
    .map((e) => ({ path: e.name, size: (e.data ?? Buffer.alloc(0)).length, sha256: sha(e.data ?? Buffer.alloc(0)), mode: 0o644 }));
  const manifest = { format: 'grpst-mar', version: 1, created: new Date().toISOString(), includesEngine: false, files: manifestEdit(files) };
  return rawZip([...entries, { name: manifestName, data: Buffer.from(JSON.stringify(manifest)) }]);
}

async function refusal(mar: Buffer, limits = defaultLimits()): Promise<{ err: GrpstError; dest: string; root: string }> {
  const root = fs.mkdtempSync(path.join(tmp, 'case-'));
  const file = path.join(root, 'server.mar');
  fs.writeFileSync(file, mar);
  const dest = path.join(root, 'home', 'deploy');
  fs.mkdirSync(path.dirname(dest));
  const err = await extractArchive(file, dest, limits).then(
    () => {
      throw new Error('extraction should have been refused');
    },
    (e: unknown) => e as GrpstError,
  );
  expect(err).toBeInstanceOf(GrpstError);
  // Nothing half-written: the deploy folder is gone, and nothing appeared beside it.
  expect(fs.existsSync(dest)).toBe(false);
  expect(fs.readdirSync(path.dirname(dest))).toEqual([]);
  expect(fs.readdirSync(root).sort()).toEqual(['home', 'server.mar']);
  return { err, dest, root };
}

describe('grpst archive', () => {
  it('packs the project with a sha256 manifest and extracts it byte for byte', async () => {
    const project = path.join(tmp, 'project');
    put(path.join(project, 'conf', 'inference.yml'), 'models: []\n');
    put(path.join(project, 'conf', 'server.yml'), 'max_concurrency: 4\n');
    put(path.join(project, 'data', 'deep', 'blob.bin'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)));
    put(path.join(project, 'run.sh'), '#!/bin/sh\necho hi\n', 0o755);
    put(path.join(project, '.git', 'HEAD'), 'ref\n');
    put(path.join(project, 'logs', 'old.log'), 'old\n');
    put(path.join(project, 'old.mar'), 'zip?');
    put(path.join(project, 'engine', 'engine.json'), '{}');
    fs.symlinkSync('/etc/passwd', path.join(project, 'passwd-link'));

    const output = path.join(tmp, 'server.mar');
    const result = await writeArchive({ projectDir: project, output, includeEngine: false });
    expect(result.files).toBe(4);
    expect(result.notes.join('\n')).toContain('engine/: engine or model folder left out (pass --include_engine');
    expect(result.notes.join('\n')).toContain('passwd-link: symbolic link left out');
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);

    const dest = path.join(tmp, 'deployed');
    const extracted = await extractArchive(output, dest);
    expect(extracted.files).toBe(4);
    expect(listFiles(dest)).toEqual(['conf/inference.yml', 'conf/server.yml', 'data/deep/blob.bin', 'run.sh']);
    for (const f of listFiles(dest)) expect(fs.readFileSync(path.join(dest, f))).toEqual(fs.readFileSync(path.join(project, f)));
    expect(fs.statSync(path.join(dest, 'run.sh')).mode & 0o777).toBe(0o755);
    expect(fs.statSync(path.join(dest, 'conf', 'server.yml')).mode & 0o777).toBe(0o644);
    expect(extracted.manifest.files.find((f) => f.path === 'data/deep/blob.bin')?.sha256).toBe(sha(fs.readFileSync(path.join(project, 'data/deep/blob.bin'))));

    const withEngine = await writeArchive({ projectDir: project, output: path.join(tmp, 'with-engine.mar'), includeEngine: true });
    expect(withEngine.files).toBe(5);
  });

  it('--include_engine copies an outside engine, draft model, LoRA adapters and tokenizer in and points the conf at the copies', async () => {
    const outside = path.join(tmp, 'outside');
    // LoRA adapters in both of lora_modules' forms, one of them listed twice (packed once).
    for (const name of ['sql', 'style']) {
      put(path.join(outside, 'adapters', name, 'adapter_config.json'), '{"peft_type": "LORA", "r": 8, "lora_alpha": 16}');
      put(path.join(outside, 'adapters', name, 'adapter_model.safetensors'), Buffer.alloc(512, 7));
    }
    // A draft model for speculative decoding, a checkpoint folder of its own.
    put(path.join(outside, 'draft', 'config.json'), '{"model_type": "qwen3"}');
    put(path.join(outside, 'draft', 'model.safetensors'), Buffer.alloc(2048, 5));
    put(path.join(outside, 'ckpt', 'tokenizer.json'), fs.readFileSync(path.join(tokenizerDir, 'tokenizer.json')));
    put(path.join(outside, 'ckpt', 'tokenizer_config.json'), fs.readFileSync(path.join(tokenizerDir, 'tokenizer_config.json')));
    put(path.join(outside, 'ckpt', 'model.safetensors'), Buffer.alloc(1000));
    put(path.join(outside, 'ckpt', 'engine', 'engine.json'), '{"format":1}');
    put(path.join(outside, 'ckpt', 'engine', 'weights.bin'), Buffer.alloc(4096, 3));
    const project = path.join(tmp, 'project2');
    const conf = fs
      .readFileSync(path.join(repoRoot, 'conf', 'inference_qwen3.yml'), 'utf8')
      .replace('tokenizer_path: /tmp/Qwen3-8B/', `tokenizer_path: ${path.join(outside, 'ckpt')}`)
      .replace('gpt_model_path: /tmp/Qwen3-8B/engine/', `gpt_model_path: ${path.join(outside, 'ckpt', 'engine')}`)
      .replace(/^(\s+)speculative_config:.*$/m, `$1speculative_config: {model: ${path.join(outside, 'draft')}, num_speculative_tokens: 3}`)
      .replace(
        /^(\s+)lora_modules:.*$/m,
        `$1lora_modules: [sql=${path.join(outside, 'adapters', 'sql')}, {name: style, path: ${path.join(outside, 'adapters', 'style')}}, again=${path.join(outside, 'adapters', 'sql')}]`,
      );
    put(path.join(project, 'conf', 'inference_qwen3.yml'), conf);
    fs.copyFileSync(path.join(repoRoot, 'conf', 'server.yml'), path.join(project, 'conf', 'server.yml'));

    const output = path.join(tmp, 'self-contained.mar');
    await writeArchive({ projectDir: project, output, includeEngine: true });
    const dest = path.join(tmp, 'deployed2');
    const { manifest } = await extractArchive(output, dest);
    expect(manifest.includesEngine).toBe(true);
    expect(listFiles(dest)).toEqual([
      'conf/inference_qwen3.yml',
      'conf/server.yml',
      'engines/ckpt-tokenizer/tokenizer.json',
      'engines/ckpt-tokenizer/tokenizer_config.json',
      'engines/draft/config.json',
      'engines/draft/model.safetensors',
      'engines/engine/engine.json',
      'engines/engine/weights.bin',
      'engines/lora-sql/adapter_config.json',
      'engines/lora-sql/adapter_model.safetensors',
      'engines/lora-style/adapter_config.json',
      'engines/lora-style/adapter_model.safetensors',
    ]);
    const rewritten = fs.readFileSync(path.join(dest, 'conf', 'inference_qwen3.yml'), 'utf8');
    expect(rewritten).toContain('gpt_model_path: ./engines/engine');
    expect(rewritten).toMatch(/speculative_config: \{ model: \.\/engines\/draft, num_speculative_tokens: 3 \}/);
    expect(rewritten).toContain('# "<|im_end|>"'); // comments survive the rewrite
    const d = loadDeployment({ inferenceConf: path.join(dest, 'conf', 'inference_qwen3.yml'), deployPath: dest, env: {} });
    expect(d.enginePath).toBe(path.join(dest, 'engines', 'engine'));
    expect(d.tokenizerPath).toBe(path.join(dest, 'engines', 'ckpt-tokenizer'));
    expect(d.runtime.load.speculative).toEqual({ method: 'draft_model', numSpeculativeTokens: 3, model: path.join(dest, 'engines', 'draft') });
    expect(d.runtime.server.loraModules).toEqual([
      { name: 'sql', path: path.join(dest, 'engines', 'lora-sql') },
      { name: 'style', path: path.join(dest, 'engines', 'lora-style') },
      { name: 'again', path: path.join(dest, 'engines', 'lora-sql') },
    ]);
  });

  it('without --include_engine, a relative engine path leaving the project is noted (start would refuse it)', async () => {
    const project = path.join(tmp, 'project-up');
    const conf = fs
      .readFileSync(path.join(repoRoot, 'conf', 'inference_qwen3.yml'), 'utf8')
      .replace('gpt_model_path: /tmp/Qwen3-8B/engine/', 'gpt_model_path: ../engine')
      .replace(/^(\s+)speculative_config:.*$/m, '$1speculative_config: {model: ../draft, num_speculative_tokens: 3}')
      .replace(/^(\s+)lora_modules:.*$/m, '$1lora_modules: [{name: sql, path: ../adapters/sql}]');
    put(path.join(project, 'conf', 'inference_qwen3.yml'), conf);
    const result = await writeArchive({ projectDir: project, output: path.join(tmp, 'up.mar'), includeEngine: false });
    expect(result.notes).toContain('conf/inference_qwen3.yml: gpt_model_path ../engine leaves the project, so grpst start will refuse it; pass --include_engine to pack it, or write the path absolute');
    expect(result.notes).toContain('conf/inference_qwen3.yml: speculative_config.model ../draft leaves the project, so grpst start will refuse it; pass --include_engine to pack it, or write the path absolute');
    expect(result.notes).toContain('conf/inference_qwen3.yml: lora_modules[0] ../adapters/sql leaves the project, so grpst start will refuse it; pass --include_engine to pack it, or write the path absolute');
    const absolute = path.join(tmp, 'project-abs');
    put(path.join(absolute, 'conf', 'inference_qwen3.yml'), fs.readFileSync(path.join(repoRoot, 'conf', 'inference_qwen3.yml'), 'utf8'));
    const plain = await writeArchive({ projectDir: absolute, output: path.join(tmp, 'abs.mar'), includeEngine: false });
    expect(plain.notes.filter((n) => n.includes('leaves the project'))).toEqual([]);
  });

  it('--include_engine follows an engine reached through a symbolic link, outside the project or inside it', async () => {
    const store = path.join(tmp, 'store', 'qwen-engine');
    put(path.join(store, 'engine.json'), '{"format":1}');
    put(path.join(store, 'weights.bin'), Buffer.alloc(2048, 5));
    const project = path.join(tmp, 'project-links');
    const tokenizerFiles = (dir: string) => ['tokenizer.json', 'tokenizer_config.json'].forEach((f) => put(path.join(dir, f), fs.readFileSync(path.join(tokenizerDir, f))));
    tokenizerFiles(store);
    const conf = fs
      .readFileSync(path.join(repoRoot, 'conf', 'inference_qwen3.yml'), 'utf8')
      .replace('gpt_model_path: /tmp/Qwen3-8B/engine/', 'gpt_model_path: ./models/qwen')
      .replace('tokenizer_path: /tmp/Qwen3-8B/', 'tokenizer_path: ./models/qwen');
    put(path.join(project, 'conf', 'inference_qwen3.yml'), conf);
    put(path.join(project, 'conf', 'inference_local.yml'), conf.replaceAll('./models/qwen', './models/local'));
    fs.mkdirSync(path.join(project, 'models'));
    fs.symlinkSync(store, path.join(project, 'models', 'qwen')); // models/qwen -> a store outside
    put(path.join(project, 'engines-here', 'e1', 'engine.json'), '{"format":1}');
    tokenizerFiles(path.join(project, 'engines-here', 'e1'));
    fs.symlinkSync(path.join(project, 'engines-here', 'e1'), path.join(project, 'models', 'local')); // a link to a folder inside

    const output = path.join(tmp, 'links.mar');
    await writeArchive({ projectDir: project, output, includeEngine: true });
    const dest = path.join(tmp, 'deployed-links');
    await extractArchive(output, dest);
    expect(listFiles(dest)).toEqual(expect.arrayContaining(['engines/qwen/engine.json', 'engines/qwen/weights.bin', 'engines-here/e1/engine.json']));
    const outsideConf = loadDeployment({ inferenceConf: path.join(dest, 'conf', 'inference_qwen3.yml'), deployPath: dest, env: {} });
    expect(outsideConf.enginePath).toBe(path.join(dest, 'engines', 'qwen'));
    const insideConf = loadDeployment({ inferenceConf: path.join(dest, 'conf', 'inference_local.yml'), deployPath: dest, env: {} });
    expect(insideConf.enginePath).toBe(path.join(dest, 'engines-here', 'e1'));
    expect([outsideConf.tokenizerPath, insideConf.tokenizerPath]).toEqual([path.join(dest, 'engines', 'qwen'), path.join(dest, 'engines-here', 'e1')]);
  });

  it('--include_engine refuses a conf whose relative engine path holds no engine, and writes nothing', async () => {
    const project = path.join(tmp, 'project3');
    put(path.join(project, 'conf', 'inference.yml'), 'models:\n  - inferer_args:\n      gpt_model_path: ./engine-missing\n');
    const output = path.join(tmp, 'missing-engine.mar');
    await expect(writeArchive({ projectDir: project, output, includeEngine: true })).rejects.toThrow(
      /conf\/inference\.yml: gpt_model_path \.\/engine-missing is not an engine or model folder \(it does not exist\)/,
    );
    expect(fs.existsSync(output)).toBe(false);
    // Without --include_engine nothing is looked for: the engine may be built or mounted later.
    await writeArchive({ projectDir: project, output, includeEngine: false });
    // An absolute path may exist where the archive runs: a note, not an error.
    put(path.join(project, 'conf', 'inference.yml'), 'models:\n  - inferer_args:\n      gpt_model_path: /srv/models/engine\n');
    const again = await writeArchive({ projectDir: project, output, includeEngine: true });
    expect(again.notes.join('\n')).toContain('gpt_model_path /srv/models/engine is not an engine folder on this machine');
    expect(again.notes.join('\n')).toMatch(/missing-engine\.mar: the existing archive \(\d+ bytes\) was replaced/);
  });

  it('a missing project folder is a clear error and writes nothing', async () => {
    const output = path.join(tmp, 'never.mar');
    await expect(writeArchive({ projectDir: path.join(tmp, 'missing'), output, includeEngine: false })).rejects.toThrow(/project folder .* does not exist/);
    expect(fs.existsSync(output)).toBe(false);
  });
});

describe('hostile archives are refused with nothing written', () => {
  const good = { name: 'conf/a.yml', data: Buffer.from('a: 1\n') };

  it('zip-slip "../" entries', async () => {
    const { err, root } = await refusal(marOf([good, { name: '../../evil.txt', data: Buffer.from('pwned') }]));
    expect(err.message).toMatch(/entry "\.\.\/\.\.\/evil\.txt": path climbs out with "\.\."/);
    expect(fs.existsSync(path.join(root, 'evil.txt'))).toBe(false);
    const nested = await refusal(marOf([{ name: 'conf/../../x', data: Buffer.from('x') }]));
    expect(nested.err.message).toContain('path climbs out');
  });

  it('absolute paths', async () => {
    const target = path.join(tmp, 'absolute-target.txt');
    const { err } = await refusal(marOf([good, { name: target, data: Buffer.from('pwned') }]));
    expect(err.message).toContain('absolute path');
    expect(fs.existsSync(target)).toBe(false);
  });

  it('symlink entries', async () => {
    const { err } = await refusal(marOf([{ name: 'conf/link', data: Buffer.from('/etc/passwd'), mode: 0o120777 }, good]));
    expect(err.message).toContain('entry "conf/link" is a symbolic link');
  });

  it('duplicate entries, and a file that is also a folder', async () => {
    expect((await refusal(marOf([good, { ...good, data: Buffer.from('b: 2\n') }]))).err.message).toContain('entry "conf/a.yml" appears twice');
    expect((await refusal(marOf([{ name: 'conf', data: Buffer.from('x') }, good]))).err.message).toContain('"conf" is both a file and a folder');
  });

  it('a file whose checksum does not match the manifest', async () => {
    const mar = marOf([good], (files) => files.map((f) => ({ ...f, sha256: sha(Buffer.from('a: 2\n')) })));
    expect((await refusal(mar)).err.message).toContain('checksum mismatch for "conf/a.yml"');
  });

  it('files missing from or unknown to the manifest, and archives without one', async () => {
    expect((await refusal(marOf([good], () => []))).err.message).toContain('entry "conf/a.yml" is not in the manifest');
    expect((await refusal(marOf([], () => [{ path: 'x', size: 1, sha256: sha(Buffer.from('x')), mode: 0o644 }]))).err.message).toContain('"x" is in the manifest but missing');
    const bare = await refusal(rawZip([good]));
    expect(bare.err.message).toContain(`has no ${manifestName}`);
    expect(bare.err.hint).toContain('grpst archive');
  });

  it('zip bombs: by compression ratio and by total size', async () => {
    const zeros = Buffer.alloc(8 * 1024 * 1024);
    const ratio = await refusal(marOf([{ name: 'zeros.bin', data: zeros, deflate: true }]));
    expect(ratio.err.message).toMatch(/entry "zeros\.bin" inflates \d+:1 .* a zip bomb/);
    const many = Array.from({ length: 4 }, (_, i) => ({ name: `f${i}.bin`, data: Buffer.alloc(1000, i) }));
    const total = await refusal(marOf(many), { ...defaultLimits(), maxTotalBytes: 3000 });
    expect(total.err.message).toContain('unpacks to more than 3000 bytes');
    const count = await refusal(marOf(many), { ...defaultLimits(), maxEntries: 3 });
    expect(count.err.message).toContain('5 entries, more than 3');
  });

  it('a file that is not a zip, and a truncated archive', async () => {
    expect((await refusal(Buffer.from('not a zip at all'))).err.message).toMatch(/is not a valid \.mar/);
    const whole = marOf([{ name: 'big.bin', data: Buffer.alloc(20000, 1) }]);
    const truncated = Buffer.concat([whole.subarray(0, 5000), whole.subarray(whole.length - 200)]);
    expect((await refusal(truncated)).err.message).toMatch(/refused|not a valid|damaged/);
  });
});
