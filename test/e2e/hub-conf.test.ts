// Hugging Face ids in an inference conf (gpt_model_path / tokenizer_path: test-org/tiny-a), through
// the seed's flow: `grpst archive --include_engine` leaves the id as it is (with a note), `grpst
// start` pulls it in the foreground from the Hub stand-in before the daemon starts, the daemon finds
// it in the cache and answers, `grpst stop` stops it; `grpst serve --inference_conf` offline with an
// empty cache is refused with the way to get the model.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { repoFromFiles, startHubStandin, type HubStandin } from '../helpers/hub-standin.js';

let cli: Cli;
let hub: HubStandin;
let work: string;
let project: string;
let port: number;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-hub-conf-'));
  const tiny = checkpoint('tiny-a');
  const files: Record<string, Buffer> = {};
  for (const name of fs.readdirSync(tiny)) if (name !== 'weights.sha256') files[name] = fs.readFileSync(path.join(tiny, name));
  hub = await startHubStandin({ 'test-org/tiny-a': repoFromFiles(files, 'tiny-a') });
  cli = makeCli({ env: { HF_ENDPOINT: hub.endpoint, HF_HOME: path.join(work, 'hf-home'), HF_TOKEN: '', HF_HUB_OFFLINE: '', NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1' } });
  port = await freePort('127.0.0.1');
  project = path.join(work, 'project');
  fs.mkdirSync(path.join(project, 'conf'), { recursive: true });
  const conf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', 'test-org/tiny-a');
  fs.writeFileSync(path.join(project, 'conf', 'inference_tiny.yml'), conf);
  fs.writeFileSync(path.join(project, 'conf', 'server.yml'), `interface:\n  host: 127.0.0.1\n  port: ${port}\n`);
});

afterAll(async () => {
  await cli?.run(['stop', 'hubconf', '--timeout', '5']);
  await hub?.close();
  fs.rmSync(work, { recursive: true, force: true });
  if (cli) fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('a Hugging Face id in an inference conf', () => {
  it('archive leaves it, start pulls it in the foreground, the daemon serves it from the cache, stop stops it', async () => {
    const archived = await cli.run(['archive', '.', '--include_engine'], { cwd: project });
    expect(archived.code, archived.stderr).toBe(0);
    expect(archived.stdout + archived.stderr).toContain('conf/inference_tiny.yml: gpt_model_path test-org/tiny-a names a Hugging Face model: not packed; grpst start pulls it');
    const started = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--server_conf=conf/server.yml', '--name', 'hubconf'], { cwd: project });
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toMatch(/inference_tiny\.yml test-org\/tiny-a: no such folder; downloading it from http:\/\/127\.0\.0\.1:\d+/);
    expect(fs.existsSync(path.join(work, 'hf-home', 'hub', 'models--test-org--tiny-a', 'refs', 'main'))).toBe(true);
    const answer = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }),
    });
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
    const stopped = await cli.run(['stop', 'hubconf']);
    expect(stopped.code, stopped.stderr).toBe(0);
  });

  it('grpst serve --inference_conf offline with an empty cache is refused before anything listens', async () => {
    const r = await cli.run(['serve', '--inference_conf', 'conf/inference_tiny.yml', '--server_conf', 'conf/server.yml'], { cwd: project, env: { HF_HOME: path.join(work, 'empty-hf-home'), HF_HUB_OFFLINE: '1' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/inference_tiny\.yml test-org\/tiny-a is neither a folder nor a model in the Hugging Face cache .*, and HF_HUB_OFFLINE is set/);
  });
});
