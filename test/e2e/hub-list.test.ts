// `grpst list` and `grpst rm` (Ollama's list and rm) over the Hugging Face cache: a model pulled
// from the Hub stand-in, a LoRA adapter, a model of another family and a half-pulled one, each
// said for what grpst can do with it; rm takes every revision, checks every id before removing
// any, and names what is there when an id is not.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { repoFromFiles, startHubStandin, type HubStandin } from '../helpers/hub-standin.js';

let cli: Cli;
let hub: HubStandin;
let work: string;
let env: NodeJS.ProcessEnv;

function files(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const name of fs.readdirSync(dir)) if (name !== 'weights.sha256') out[name] = fs.readFileSync(path.join(dir, name));
  return out;
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-hub-list-'));
  const tiny = files(checkpoint('tiny-a'));
  const llamaConfig = Buffer.from(JSON.stringify({ ...JSON.parse(tiny['config.json'].toString()), model_type: 'llama', architectures: ['LlamaForCausalLM'] }));
  hub = await startHubStandin({
    'test-org/tiny-a': repoFromFiles(tiny, 'tiny-a'),
    'test-org/qv-lora': repoFromFiles(files(loraAdapter('tiny-b-lora-qv')), 'qv-lora'),
    'other-org/llama-ish': repoFromFiles({ ...tiny, 'config.json': llamaConfig }, 'llama'),
  });
  cli = makeCli();
  env = { HF_ENDPOINT: hub.endpoint, HF_HOME: path.join(work, 'hf-home'), HF_HUB_CACHE: '', HF_TOKEN: '', HF_HUB_OFFLINE: '', NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' };
  for (const id of ['test-org/tiny-a', 'test-org/qv-lora', 'other-org/llama-ish']) {
    const r = await cli.run(['pull', id], { env });
    expect(r.code, r.stderr).toBe(0);
  }
  // A pull that stopped before the weights: refs and config.json, no safetensors.
  const half = path.join(work, 'hf-home', 'hub', 'models--test-org--half');
  fs.mkdirSync(path.join(half, 'snapshots', 'c'.repeat(40)), { recursive: true });
  fs.mkdirSync(path.join(half, 'refs'), { recursive: true });
  fs.writeFileSync(path.join(half, 'refs', 'main'), 'c'.repeat(40));
  fs.writeFileSync(path.join(half, 'snapshots', 'c'.repeat(40), 'config.json'), tiny['config.json']);
});

afterAll(async () => {
  await hub?.close();
  fs.rmSync(work, { recursive: true, force: true });
  if (cli) fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst list and rm', () => {
  it('lists each cached model with its revision, size and what grpst can do with it', async () => {
    const r = await cli.run(['list'], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^MODEL\s+REVISION\s+SIZE\s+MODIFIED\s+KIND$/);
    const row = (id: string) => lines.find((l) => l.startsWith(`${id} `)) ?? '';
    expect(row('test-org/tiny-a')).toMatch(/^test-org\/tiny-a\s+main\s+\d+\.\d MiB\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+qwen3$/);
    expect(row('test-org/qv-lora')).toMatch(/LoRA adapter/);
    expect(row('other-org/llama-ish')).toMatch(/llama \(not a Qwen3 model: grpst cannot build it\)$/);
    expect(row('test-org/half')).toMatch(/incomplete \(grpst pull resumes it\)$/);
    const json = JSON.parse((await cli.run(['ls', '--json'], { env })).stdout);
    const tiny = json.models.find((m: { model: string }) => m.model === 'test-org/tiny-a');
    const weights = fs.statSync(path.join(checkpoint('tiny-a'), 'model.safetensors')).size;
    expect(tiny.bytes).toBeGreaterThan(weights);
    expect(tiny).toMatchObject({ model_type: 'qwen3', usable: 'qwen3' });
    expect(tiny.revisions).toEqual([expect.objectContaining({ refs: ['main'], complete: true })]);
  });

  it('rm checks every id before removing any, then removes each whole; the list says when the cache is empty', async () => {
    const typo = await cli.run(['rm', 'test-org/tiny-a', 'test-org/tiny-aa'], { env });
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/test-org\/tiny-aa is not in the Hugging Face cache .*\n.*fix: grpst list shows what is there \(.*test-org\/tiny-a.*\)/);
    expect(fs.existsSync(path.join(work, 'hf-home', 'hub', 'models--test-org--tiny-a'))).toBe(true);
    const r = await cli.run(['rm', 'test-org/tiny-a', 'test-org/qv-lora', 'other-org/llama-ish', 'test-org/half'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^removed test-org\/tiny-a \(\d+\.\d MiB\)$/m);
    expect(fs.readdirSync(path.join(work, 'hf-home', 'hub')).filter((f) => f.startsWith('models--'))).toEqual([]);
    const empty = await cli.run(['list'], { env });
    expect(empty.code).toBe(0);
    expect(empty.stdout).toBe('');
    expect(empty.stderr).toMatch(/no models in the Hugging Face cache .*; fetch one with: grpst pull Qwen\/Qwen3-8B/);
  });
});
