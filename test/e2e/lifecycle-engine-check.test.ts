// An engine changed or truncated after `grpst build` is refused at start, before anything runs;
// verified hashes are remembered so a large engine is hashed once, not at every start. So is
// every conf value the engine load would refuse (build limits, KV cache, positions), by `grpst
// start` before anything is deployed and by `grpst serve` before it listens.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEngineFiles } from '../../src/daemon/engine-check.js';
import { checkpoint, repoRoot, tokenizerDir } from '../helpers/fixtures.js';
import { makeCli } from '../helpers/grpst-cli.js';

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-engine-check-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** An engine folder as `grpst build` leaves it: engine.json listing size and sha256 of each file. */
function engineFolder(name: string): { dir: string; weights: string } {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const weights = Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 31) % 256));
  fs.writeFileSync(path.join(dir, 'rank0.weights'), weights);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) fs.copyFileSync(path.join(tokenizerDir, f), path.join(dir, f));
  const files: Record<string, { bytes: number; sha256: string }> = {};
  for (const f of ['rank0.weights', 'tokenizer.json', 'tokenizer_config.json']) {
    const data = fs.readFileSync(path.join(dir, f));
    files[f] = { bytes: data.length, sha256: sha(data) };
  }
  fs.writeFileSync(path.join(dir, 'engine.json'), JSON.stringify({ format: 'grpst-engine', backend: 'native', files }));
  return { dir, weights: path.join(dir, 'rank0.weights') };
}

describe('engine files are checked against engine.json', () => {
  it('hashes once, then trusts unchanged files; a change of content is caught', async () => {
    const home = path.join(tmp, 'home');
    const { dir, weights } = engineFolder('e1');
    expect(await verifyEngineFiles(dir, home)).toBe(3);
    expect(await verifyEngineFiles(dir, home)).toBe(0);
    const data = fs.readFileSync(weights);
    data[500] ^= 0xff;
    fs.writeFileSync(weights, data); // same size, new content (and mtime)
    await expect(verifyEngineFiles(dir, home)).rejects.toThrow(/rank0\.weights was changed after the build \(sha256/);
  });

  it('a truncated or missing file is named with the fix', async () => {
    const home = path.join(tmp, 'home2');
    const { dir, weights } = engineFolder('e2');
    fs.truncateSync(weights, 1000);
    await expect(verifyEngineFiles(dir, home)).rejects.toThrow(/has 1000 bytes but engine.json records 100000 \(truncated or replaced\)/);
    fs.rmSync(weights);
    await expect(verifyEngineFiles(dir, home)).rejects.toThrow(/rank0\.weights is missing/);
  });

  it('grpst start refuses a changed engine before anything starts', async () => {
    const { dir, weights } = engineFolder('e3');
    const data = fs.readFileSync(weights);
    data[0] ^= 1;
    fs.writeFileSync(weights, data);
    const res = await startRefused('project', dir);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('rank0.weights was changed after the build');
    expect(res.stderr).toContain('fix: rebuild the engine with `grpst build`');
  });

  it('grpst start refuses device: cuda on a runtime without the CUDA backend, before anything starts', async () => {
    const { probeAddon } = await import('../../src/engine/addon.js');
    if (probeAddon().cuda) return; // a CUDA build serves it: nothing to refuse
    const res = await startRefused('project-cuda', engineFolder('e4').dir, (yml) => yml.replace('      device: cpu', '      device: cuda'));
    expect(res.code, res.stderr).toBe(3);
    expect(res.stderr).toContain('conf/inference_tiny.yml asks for device cuda, but this build of the native runtime has only the CPU backend');
    expect(res.stderr).toContain('set device: cpu or auto');
  });

  it('grpst start refuses an end_token_id outside the vocabulary, before anything starts', async () => {
    const res = await startRefused('project-end-id', engineFolder('e5').dir, (yml) => yml.replace(/end_token_id: 151645.*/, 'end_token_id: 200000'));
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain("conf/inference_tiny.yml: end_token_id 200000 is outside the tokenizer's vocabulary (ids 0 to 151668)");
    expect(res.stderr).toContain('Qwen3: 151645');
  });
});

describe('what loading the engine would refuse is refused before anything is deployed or listens', () => {
  let built: string;
  beforeAll(async () => {
    // Small build limits, and a KV cache built without calibrated scales (the default).
    built = path.join(tmp, 'built');
    const cli = makeCli();
    const r = await cli.run(['build', '--model_dir', checkpoint('tiny-a'), '--output_dir', built, '--max_batch_size', '4', '--max_seq_len', '512', '--max_input_len', '256', '--max_num_tokens', '256', '--eval_tokens', '64']);
    fs.rmSync(cli.home, { recursive: true, force: true });
    expect(r.code, r.stderr).toBe(0);
  }, 180_000);

  const overLimits = (yml: string) => yml.replace('      max_batch_size: 16', '      max_batch_size: 64\n      max_seq_len: 40000\n      max_num_tokens: 100000');

  it("grpst start refuses conf values above the engine's build limits, one line per key with both values", async () => {
    const res = await startRefused('project-limits', built, overLimits);
    expect(res.code, res.stderr).toBe(2);
    const conf = 'conf/inference_tiny.yml';
    expect(res.stderr).toContain(`error: ${conf}:26:7: max_batch_size 64 is above the engine's build limit of 4 (${built}/engine.json)`);
    expect(res.stderr).toContain(`  ${conf}:27:7: max_seq_len 40000 is above the engine's build limit of 512 (${built}/engine.json)`);
    expect(res.stderr).toContain(`  ${conf}:28:7: max_num_tokens 100000 is above the engine's build limit of 256 (${built}/engine.json)`);
    expect(res.stderr).toContain(
      'fix: set max_batch_size to at most 4, max_seq_len to at most 512, max_num_tokens to at most 256 in the inference conf, or rebuild the engine with --max_batch_size 64 --max_seq_len 40000 --max_num_tokens 100000 (grpst build)',
    );
  });

  it('grpst start names an engine packed in the archive by its files there: nothing is deployed yet', async () => {
    const res = await startRefused('project-limits-packed', built, (yml) => overLimits(yml).replace('      max_num_tokens: 100000', '      max_num_tokens: 100000\n      kv_cache_dtype: int8'), ['--include_engine']);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain("max_batch_size 64 is above the engine's build limit of 4 (engines/built/engine.json in ./server.mar)");
    expect(res.stderr).toContain('kv_cache_dtype int8: an int8 KV cache needs per-layer scales from calibration, and engines/built in ./server.mar has none');
    expect(res.stderr).not.toContain('my_grps/engines');
  });

  it('grpst start names a packed engine this runtime cannot read by its folder in the archive', async () => {
    const newer = path.join(tmp, 'built-newer-packed');
    fs.cpSync(built, newer, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(newer, 'engine.json'), 'utf8'));
    fs.writeFileSync(path.join(newer, 'engine.json'), JSON.stringify({ ...manifest, format_version: 99 }));
    const res = await startRefused('project-newer-packed', newer, (yml) => yml, ['--include_engine']);
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain('engines/built-newer-packed/engine.json has engine format version 99; this grpst reads up to 1');
    expect(res.stderr).toContain('(engines/built-newer-packed in ./server.mar)');
    expect(res.stderr).not.toContain('my_grps');
  });

  it('grpst start refuses kv_cache_dtype int8 on an engine without calibrated KV scales', async () => {
    const res = await startRefused('project-kv-int8', built, (yml) => yml.replace('      max_batch_size: 16', '      kv_cache_dtype: int8'));
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain(`conf/inference_tiny.yml:26:7: kv_cache_dtype int8: an int8 KV cache needs per-layer scales from calibration, and ${built} has none`);
    expect(res.stderr).toMatch(/fix: build an engine with `grpst build .*--kv_cache_dtype int8`/);
  });

  it("grpst start refuses a max_seq_len past a checkpoint's positions; a checkpoint has no build limits", async () => {
    const res = await startRefused('project-positions', checkpoint('tiny-a'), (yml) => yml.replace('      max_batch_size: 16', '      max_batch_size: 64\n      max_seq_len: 65536'));
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain("conf/inference_tiny.yml:27:7: max_seq_len 65536 is past the model's 40960 positions (config.json: max_position_embeddings)");
    expect(res.stderr).toContain('fix: set max_seq_len to at most 40960 in the inference conf');
    expect(res.stderr).not.toContain('max_batch_size');
  });

  it('grpst serve --inference_conf refuses the same before it listens (exit 2)', async () => {
    const cli = makeCli();
    const conf = path.join(tmp, 'serve-limits.yml');
    fs.writeFileSync(conf, overLimits(fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', built)));
    const res = await cli.run(['serve', '--inference_conf', conf, '--host', '127.0.0.1', '--port', '9551'], { timeoutMs: 60_000 });
    fs.rmSync(cli.home, { recursive: true, force: true });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain(`${conf}:26:7: max_batch_size 64 is above the engine's build limit of 4`);
    expect(`${res.stdout}${res.stderr}`).not.toContain('listening on');
  });

  it('grpst serve --model_dir refuses an engine this runtime cannot read before it listens, naming the flag', async () => {
    const newer = path.join(tmp, 'built-newer');
    fs.cpSync(built, newer, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(newer, 'engine.json'), 'utf8'));
    fs.writeFileSync(path.join(newer, 'engine.json'), JSON.stringify({ ...manifest, format_version: 99 }));
    const cli = makeCli();
    const res = await cli.run(['serve', '--model_dir', newer, '--host', '127.0.0.1', '--port', '9552'], { timeoutMs: 60_000 });
    fs.rmSync(cli.home, { recursive: true, force: true });
    expect(res.code, res.stderr).toBe(2);
    expect(res.stderr).toContain(`error: --model_dir ${newer}: ${newer}/engine.json has engine format version 99; this grpst reads up to 1`);
    expect(`${res.stdout}${res.stderr}`).not.toContain('listening on');
  });
});

/**
 * A project whose tiny conf serves `engine` (edited by `edit`), archived (with `archiveFlags`) and started in a fresh
 * GRPST_HOME: the start's result, once the test has seen that nothing was deployed or recorded.
 */
async function startRefused(name: string, engine: string, edit: (yml: string) => string = (yml) => yml, archiveFlags: string[] = []) {
  const cli = makeCli();
  const project = path.join(tmp, name);
  fs.mkdirSync(path.join(project, 'conf'), { recursive: true });
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engine);
  fs.writeFileSync(path.join(project, 'conf', 'inference_tiny.yml'), edit(conf));
  expect((await cli.run(['archive', '.', ...archiveFlags], { cwd: project })).code).toBe(0);
  const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml'], { cwd: project });
  expect(fs.existsSync(path.join(cli.home, 'my_grps'))).toBe(false);
  expect(fs.existsSync(path.join(cli.home, '.run', 'my_grps.json'))).toBe(false);
  fs.rmSync(cli.home, { recursive: true, force: true });
  return res;
}
