// grpst pull and huggingface_hub (the client transformers and vLLM download with), in a virtual
// environment from client/python/requirements-hub.txt: huggingface_hub downloads from the Hub
// stand-in the other pull tests use (so the stand-in answers as the Hub does for the real client),
// the two caches come out the same file for file and blob for blob, huggingface_hub reads the
// cache grpst wrote with the network off, and grpst finds the model huggingface_hub pulled.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { repoFromFiles, startHubStandin, type HubStandin } from '../helpers/hub-standin.js';
import { hostPython, pythonVenv, type PythonVenv } from '../helpers/python-venv.js';

const clientDir = join(repoRoot, 'client', 'python');
// A proxy the machine sets for the outside world must not carry the calls to the local stand-in.
const noProxy = { NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' };
let hub: HubStandin;
let cli: Cli;
let venv: PythonVenv;
let work: string;

beforeAll(async () => {
  venv = await pythonVenv(join(clientDir, 'requirements-hub.txt'), await hostPython());
  work = mkdtempSync(join(tmpdir(), 'grpst-pull-hf-'));
  const dir = checkpoint('tiny-a');
  const files: Record<string, Buffer> = {};
  for (const name of readdirSync(dir)) if (name !== 'weights.sha256') files[name] = readFileSync(join(dir, name));
  files['docs/notes.txt'] = Buffer.from('nested\n');
  hub = await startHubStandin({ 'test-org/tiny-a': repoFromFiles(files, 'tiny-a') });
  cli = makeCli();
}, 600_000);

afterAll(async () => {
  await hub?.close();
  if (work) rmSync(work, { recursive: true, force: true });
  if (cli) rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst pull beside huggingface_hub', () => {
  it('the same cache either way, each read by the other with the network off', async () => {
    const grpstHome = join(work, 'grpst-hf-home');
    const pulled = await cli.run(['pull', 'test-org/tiny-a'], { env: { HF_ENDPOINT: hub.endpoint, HF_HOME: grpstHome, HF_TOKEN: '', ...noProxy } });
    expect(pulled.code, pulled.stderr).toBe(0);
    const hfCache = join(work, 'hf-cache');
    const py = await execa(venv.python, [join(clientDir, 'compat_hub.py'), 'test-org/tiny-a', hfCache, join(grpstHome, 'hub')], {
      env: { HF_ENDPOINT: hub.endpoint, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_OFFLINE: '', HF_TOKEN: '', HF_HOME: join(work, 'py-hf-home'), ...noProxy },
      reject: false,
      timeout: 120_000,
    });
    expect(py.exitCode, py.stderr).toBe(0);
    const r = JSON.parse(py.stdout);
    expect(r.version).toBe('2.4.0');
    // huggingface_hub read grpst's snapshot (no request: local_files_only) ...
    expect(r.from_grpst).toBe(pulled.stdout.trim());
    expect(r.config).toBe(join(pulled.stdout.trim(), 'config.json'));
    expect(r.scan_warnings).toEqual([]);
    expect(r.scan_repos).toHaveLength(1);
    expect(r.scan_repos[0]).toMatchObject({ repo_id: 'test-org/tiny-a', refs: ['main'], nb_files: Object.keys(r.from_grpst_files).length });
    // ... and its own download from the stand-in is the same tree: same paths, same blob links, same sizes.
    expect(r.downloaded_files).toEqual(r.from_grpst_files);
    expect(r.downloaded.split('/').slice(-3)).toEqual(r.from_grpst.split('/').slice(-3));

    // grpst finds what huggingface_hub pulled, with the network off.
    const before = hub.seen.length;
    const found = await cli.run(['pull', 'test-org/tiny-a'], { env: { HF_HUB_CACHE: hfCache, HF_HUB_OFFLINE: '1', HF_ENDPOINT: hub.endpoint } });
    expect(found.code, found.stderr).toBe(0);
    expect(found.stdout.trim()).toBe(r.downloaded);
    expect(hub.seen.length).toBe(before);
  });
});
