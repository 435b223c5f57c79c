// `grpst pull` and Hugging Face ids as --model_dir / --engine_dir, against a stand-in of the Hub's
// download API (test/helpers/hub-standin.ts; the real huggingface_hub client is run against it in
// pull-hf-client.test.ts) serving a real tiny checkpoint. Checked: the hub cache's layout, nothing
// fetched twice, a dropped connection resumed with Range, a damaged file refused and not kept, the
// Hub's refusals in words, the token sent to the Hub but not to the CDN, offline mode.
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../helpers/fixtures.js';
import { loraAdapter } from '../helpers/lora-fixtures.js';
import { serveForeground } from '../helpers/foreground-server.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { repoFromFiles, startHubStandin, type HubStandin } from '../helpers/hub-standin.js';

let hub: HubStandin;
let cli: Cli;
let work: string;
let tinyFiles: Record<string, Buffer>;
let n = 0;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function folderFiles(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const name of readdirSync(dir)) if (name !== 'weights.sha256') out[name] = readFileSync(join(dir, name));
  return out;
}

/** A fresh HF_HOME and the environment pointing at the stand-in. */
function freshEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv & { HF_HOME: string } {
  // A proxy the machine sets for the outside world must not carry the calls to the local stand-in.
  return { HF_ENDPOINT: hub.endpoint, HF_HOME: join(work, `hf-home-${++n}`), HF_TOKEN: '', HF_HUB_OFFLINE: '', NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost', ...extra };
}

/** A port nothing listens on (taken, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

const repoDir = (env: { HF_HOME: string }, id: string) => join(env.HF_HOME, 'hub', `models--${id.replace('/', '--')}`);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'grpst-pull-'));
  tinyFiles = folderFiles(checkpoint('tiny-a'));
  hub = await startHubStandin({
    'test-org/tiny-a': repoFromFiles({ ...tinyFiles, 'pytorch_model.bin': Buffer.from('not read by grpst'), 'docs/notes.txt': Buffer.from('nested\n') }, 'tiny-a'),
    'test-org/gated': repoFromFiles(tinyFiles, 'gated', 'hf_secret_token'),
    'test-org/tiny-b': repoFromFiles(folderFiles(checkpoint('tiny-b')), 'tiny-b'),
    'test-org/qv-lora': repoFromFiles(folderFiles(loraAdapter('tiny-b-lora-qv')), 'qv-lora'),
    'test-org/gguf-only': repoFromFiles({ 'config.json': tinyFiles['config.json'], 'model-q4.gguf': Buffer.from('gguf') }, 'gguf'),
  });
  cli = makeCli();
});

afterAll(async () => {
  await hub?.close();
  rmSync(work, { recursive: true, force: true });
  if (cli) rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst pull', () => {
  it('writes the hub cache as huggingface_hub does, leaves other weight formats out, and fetches nothing twice', async () => {
    const env = freshEnv();
    const r = await cli.run(['pull', 'test-org/tiny-a'], { env });
    expect(r.code, r.stderr).toBe(0);
    const repo = repoDir(env, 'test-org/tiny-a');
    const commit = readFileSync(join(repo, 'refs', 'main'), 'utf8');
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    const snapshot = join(repo, 'snapshots', commit);
    expect(r.stdout.trim()).toBe(snapshot);
    // Every checkpoint file is there with its bytes, as a relative link into blobs/.
    for (const [name, bytes] of Object.entries(tinyFiles)) {
      const link = join(snapshot, name);
      expect(lstatSync(link).isSymbolicLink(), name).toBe(true);
      expect(readFileSync(link).equals(bytes), name).toBe(true);
    }
    // LFS files are named by their sha256, the others by their git blob id (the Hub's ETags).
    expect(readlinkSync(join(snapshot, 'model.safetensors'))).toBe(`../../blobs/${sha256(tinyFiles['model.safetensors'])}`);
    const gitId = createHash('sha1').update(`blob ${tinyFiles['config.json'].length}\0`).update(tinyFiles['config.json']).digest('hex');
    expect(readlinkSync(join(snapshot, 'config.json'))).toBe(`../../blobs/${gitId}`);
    expect(readlinkSync(join(snapshot, 'docs', 'notes.txt'))).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
    expect(existsSync(join(snapshot, 'pytorch_model.bin'))).toBe(false);
    expect(readdirSync(join(repo, 'blobs')).filter((f) => f.endsWith('.incomplete'))).toEqual([]);

    const before = hub.seen.length;
    const again = await cli.run(['pull', 'test-org/tiny-a', '--json'], { env });
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout);
    expect(summary).toMatchObject({ ok: true, model: 'test-org/tiny-a', commit, dir: snapshot, bytes_fetched: 0 });
    expect(summary.files.every((f: { fetched: boolean }) => !f.fetched)).toBe(true);
    expect(hub.seen.slice(before).filter((s) => s.method === 'GET' && !s.url.startsWith('/api/'))).toEqual([]);
  });

  it('--include and --exclude pick files as hf download does (* crosses folders)', async () => {
    const env = freshEnv();
    const r = await cli.run(['pull', 'test-org/tiny-a', '--include', '*.json', '--exclude', 'tokenizer*'], { env });
    expect(r.code, r.stderr).toBe(0);
    const snapshot = r.stdout.trim();
    const want = Object.keys(tinyFiles).filter((f) => f.endsWith('.json') && !f.startsWith('tokenizer')).sort();
    expect(readdirSync(snapshot).sort()).toEqual(want);
    const docs = await cli.run(['pull', 'test-org/tiny-a', '--include', '*notes*'], { env });
    expect(docs.code, docs.stderr).toBe(0);
    expect(readFileSync(join(docs.stdout.trim(), 'docs', 'notes.txt'), 'utf8')).toBe('nested\n');
  });

  it('resumes a file whose connection dropped with a Range request, and refuses a damaged one without keeping it', async () => {
    const env = freshEnv();
    const weights = tinyFiles['model.safetensors'];
    hub.knobs.dropOnce = { path: 'model.safetensors', afterBytes: Math.floor(weights.length / 3) };
    const before = hub.seen.length;
    const r = await cli.run(['pull', 'test-org/tiny-a'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/model\.safetensors: connection lost at .*, resuming \(attempt 2\)/);
    const cdnGets = hub.seen.slice(before).filter((s) => s.origin === 'cdn');
    // The resume starts where the kept bytes end: after some, at most where the server cut it.
    const resumedAt = cdnGets.map((s) => /^bytes=(\d+)-$/.exec(s.range ?? '')?.[1]).filter((x) => x !== undefined).map(Number);
    expect(resumedAt).toHaveLength(1);
    expect(resumedAt[0]).toBeGreaterThan(0);
    expect(resumedAt[0]).toBeLessThanOrEqual(Math.floor(weights.length / 3));
    expect(readFileSync(join(r.stdout.trim(), 'model.safetensors')).equals(weights)).toBe(true);

    const env2 = freshEnv();
    const damaged = Buffer.from(weights);
    damaged[damaged.length - 1] ^= 0xff;
    hub.knobs.corrupt = { 'model.safetensors': damaged };
    try {
      const bad = await cli.run(['pull', 'test-org/tiny-a'], { env: env2 });
      expect(bad.code).toBe(4);
      expect(bad.stderr).toMatch(/model\.safetensors arrived damaged \(sha256 [0-9a-f]{16}\.\.\., not [0-9a-f]{16}\.\.\.\)/);
      const repo = repoDir(env2, 'test-org/tiny-a');
      expect(readdirSync(join(repo, 'blobs'))).not.toContain(sha256(weights));
      expect(readdirSync(join(repo, 'blobs')).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
      expect(existsSync(join(repo, 'refs', 'main'))).toBe(false);
    } finally {
      hub.knobs.corrupt = undefined;
    }
    // A file kept in git is checked against its git blob id.
    hub.knobs.corrupt = { 'config.json': Buffer.from(tinyFiles['config.json'].toString().replace('"', "'")) };
    try {
      const bad = await cli.run(['pull', 'test-org/tiny-a', '--include', 'config.json'], { env: freshEnv() });
      expect(bad.code).toBe(4);
      expect(bad.stderr).toMatch(/config\.json arrived damaged \(git blob id [0-9a-f]{16}\.\.\., not [0-9a-f]{16}\.\.\.\)/);
    } finally {
      hub.knobs.corrupt = undefined;
    }
    const good = await cli.run(['pull', 'test-org/tiny-a'], { env: env2 });
    expect(good.code, good.stderr).toBe(0);
  });

  it('refuses a download larger than the free space before fetching, and stops cleanly when the disk fills', async () => {
    const env = freshEnv();
    hub.knobs.claimSize = { 'model.safetensors': 2 ** 50 };
    const before = hub.seen.length;
    try {
      const r = await cli.run(['pull', 'test-org/tiny-a'], { env });
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/the download needs [\d.]+ [KMGT]iB more in .*models--test-org--tiny-a, and its disk has [\d.]+ [KMGT]iB free; nothing was fetched\n.*fix: free space on that disk, or set HF_HUB_CACHE/);
      expect(hub.seen.slice(before).filter((s) => s.origin === 'cdn' || s.method === 'GET' && !s.url.startsWith('/api/'))).toEqual([]);
    } finally {
      hub.knobs.claimSize = undefined;
    }
    const full = await cli.run(['pull', 'test-org/tiny-a'], { env: { ...env, GRPST_TEST_DISK_LIMIT_BYTES: '4096' } });
    expect(full.code, full.stderr).toBe(4);
    expect(full.stderr).toMatch(/the disk is full while downloading \S+ into .* \(ENOSPC\); the partial files were removed, the files complete so far stay cached/);
    const blobs = readdirSync(join(repoDir(env, 'test-org/tiny-a'), 'blobs'));
    expect(blobs.filter((f) => f.endsWith('.incomplete'))).toEqual([]);
    expect(existsSync(join(repoDir(env, 'test-org/tiny-a'), 'refs', 'main'))).toBe(false);
    const after = await cli.run(['pull', 'test-org/tiny-a'], { env });
    expect(after.code, after.stderr).toBe(0);
  });

  it("says what is wrong: a missing model, a revision it lacks, a gated model without a token, no safetensors, no network, not an id", async () => {
    const env = freshEnv();
    const missing = await cli.run(['pull', 'test-org/nope'], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no model test-org\/nope on http:\/\/127\.0\.0\.1:\d+, or it is private \(HTTP 401\)\n.*fix: check the name/);
    const rev = await cli.run(['pull', 'test-org/tiny-a', '--revision', 'v9'], { env });
    expect(rev.code).toBe(2);
    expect(rev.stderr).toMatch(/test-org\/tiny-a has no revision "v9"/);
    const gated = await cli.run(['pull', 'test-org/gated'], { env });
    expect(gated.code).toBe(2);
    expect(gated.stderr).toMatch(/test-org\/gated is gated.*\n.*fix: accept them on http:\/\/127\.0\.0\.1:\d+\/test-org\/gated and set HF_TOKEN/);
    const gguf = await cli.run(['pull', 'test-org/gguf-only'], { env });
    expect(gguf.code).toBe(2);
    expect(gguf.stderr).toMatch(/test-org\/gguf-only holds no safetensors weights \(its files: config\.json, model-q4\.gguf\)/);
    const closedPort = await freePort();
    const offline = await cli.run(['pull', 'test-org/tiny-a'], { env: { ...env, HF_ENDPOINT: `http://127.0.0.1:${closedPort}` } });
    expect(offline.code).toBe(4);
    expect(offline.stderr).toMatch(new RegExp(`could not reach http://127\\.0\\.0\\.1:${closedPort} \\(ECONNREFUSED\\)\n.*fix: check the network \\(set HF_ENDPOINT for a mirror\\)`));
    const notId = await cli.run(['pull', 'just-a-name'], { env });
    expect(notId.code).toBe(2);
    expect(notId.stderr).toMatch(/"just-a-name" is not a Hugging Face model id\n.*fix: name it as owner\/name/);
    // Nothing was left in the cache by any of them.
    expect(existsSync(join(env.HF_HOME, 'hub', 'models--test-org--tiny-a', 'refs'))).toBe(false);
  });

  it('sends HF_TOKEN to the Hub for a gated model and never to the CDN it is redirected to', async () => {
    const env = freshEnv({ HF_TOKEN: 'hf_secret_token' });
    const before = hub.seen.length;
    const r = await cli.run(['pull', 'test-org/gated'], { env });
    expect(r.code, r.stderr).toBe(0);
    const seen = hub.seen.slice(before);
    expect(seen.filter((s) => s.origin === 'hub').every((s) => s.authorization === 'Bearer hf_secret_token')).toBe(true);
    const cdn = seen.filter((s) => s.origin === 'cdn');
    expect(cdn.length).toBeGreaterThan(0);
    expect(cdn.every((s) => s.authorization === undefined)).toBe(true);
  });

  it('goes through HTTPS_PROXY / HTTP_PROXY when one is set, to the Hub and to the CDN', async () => {
    const tunnels: string[] = [];
    const sockets = new Set<net.Socket>();
    // A tunnelling proxy (CONNECT), as corporate proxies are and as Node's proxy agent speaks.
    const proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      for (const sock of [client, upstream]) {
        sockets.add(sock);
        sock.on('error', () => undefined);
        sock.on('close', () => sockets.delete(sock));
      }
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
      const r = await cli.run(['pull', 'test-org/tiny-a'], { env: freshEnv({ HTTP_PROXY: proxyUrl, NO_PROXY: '', no_proxy: '' }), timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(tunnels).toContain(new URL(hub.endpoint).host);
      expect(tunnels).toContain(new URL(hub.cdn).host);
    } finally {
      for (const sock of sockets) sock.destroy();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });

  it('HF_HUB_OFFLINE uses the cache alone: a cached model resolves with no request, a missing one is refused', async () => {
    const env = freshEnv();
    expect((await cli.run(['pull', 'test-org/tiny-a'], { env })).code).toBe(0);
    const before = hub.seen.length;
    const cached = await cli.run(['pull', 'test-org/tiny-a'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect(cached.code, cached.stderr).toBe(0);
    expect(hub.seen.length).toBe(before);
    const missing = await cli.run(['pull', 'test-org/gated'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/test-org\/gated \(main\) is not in the Hugging Face cache .*, and HF_HUB_OFFLINE is set/);
  });
});

describe('a Hugging Face id where a folder is asked for', () => {
  it('grpst run --engine_dir pulls the model first, then answers from it', async () => {
    const env = freshEnv();
    const r = await cli.run(['run', '--engine_dir', 'test-org/tiny-a', '--input_text', 'Hello', '--max_output_len', '4'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('--engine_dir test-org/tiny-a: no such folder; downloading it from');
    expect(existsSync(join(repoDir(env, 'test-org/tiny-a'), 'refs', 'main'))).toBe(true);
  });

  it('grpst serve --model_dir serves a Hub id under that id, as vLLM does, and takes a draft model by its id', async () => {
    const env = freshEnv();
    const served = makeCli({ env });
    const server = await serveForeground(served, ['--model_dir', 'test-org/tiny-a', '--speculative_config', '{"model": "test-org/tiny-a", "num_speculative_tokens": 2}'], work);
    try {
      const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id)).toEqual(['test-org/tiny-a']);
      expect(server.output()).toContain('--model_dir test-org/tiny-a: no such folder; downloading it from');
      // The draft (the model drafting for itself here) came from the cache the first pull filled.
      expect(server.output()).toContain("--speculative_config model test-org/tiny-a: the Hugging Face cache's copy");
      const answer = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'test-org/tiny-a', messages: [{ role: 'user', content: 'hi' }], max_tokens: 6 }),
      });
      expect(answer.status).toBe(200);
      const drafts = /^grpst_spec_decode_draft_tokens_total (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text());
      expect(Number(drafts?.[1])).toBeGreaterThan(0);
    } finally {
      await server.stop();
      rmSync(served.home, { recursive: true, force: true });
    }
  });

  it('a LoRA adapter by its Hub id: merged by a build, served beside the model', async () => {
    const env = freshEnv();
    const out = join(work, `lora-engine-${n}`);
    const built = await cli.run(['build', '--model_dir', 'test-org/tiny-b', '--merge_lora', 'test-org/qv-lora', '--output_dir', out], { env });
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'engine.json'), 'utf8')).source).toMatchObject({ name: 'test-org/tiny-b', merged_lora: { name: 'test-org/qv-lora' } });
    const served = makeCli({ env });
    const server = await serveForeground(served, ['--model_dir', 'test-org/tiny-b', '--lora_modules', 'qv=test-org/qv-lora'], work);
    try {
      const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] };
      expect(models.data.map((m) => m.id).sort()).toEqual(['qv', 'test-org/tiny-b']);
      const answer = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'qv', prompt: 'Hello', max_tokens: 3 }),
      });
      expect(answer.status).toBe(200);
    } finally {
      await server.stop();
      rmSync(served.home, { recursive: true, force: true });
    }
  });

  it('owner/name@revision pins a commit (or names a branch) wherever an id is taken', async () => {
    const env = freshEnv();
    const first = await cli.run(['pull', 'test-org/tiny-a'], { env: freshEnv() });
    const commit = /snapshots\/([0-9a-f]{40})$/.exec(first.stdout.trim())![1];
    const pinned = await cli.run(['run', '--engine_dir', `test-org/tiny-a@${commit}`, '--input_text', 'Hello', '--max_output_len', '2'], { env });
    expect(pinned.code, pinned.stderr).toBe(0);
    // A commit moves nothing: no refs/ entry, the snapshot of that commit.
    expect(existsSync(join(repoDir(env, 'test-org/tiny-a'), 'snapshots', commit))).toBe(true);
    expect(existsSync(join(repoDir(env, 'test-org/tiny-a'), 'refs', 'main'))).toBe(false);
    const missing = await cli.run(['run', '--engine_dir', 'test-org/tiny-a@v9', '--input_text', 'Hello'], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/test-org\/tiny-a has no revision "v9"/);
    const both = await cli.run(['pull', 'test-org/tiny-a@main', '--revision', commit], { env });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/test-org\/tiny-a@main names revision main and --revision says [0-9a-f]{40}\n.*fix: give the revision once/);
    const viaPull = await cli.run(['pull', `test-org/tiny-a@${commit}`, '--json'], { env });
    expect(viaPull.code, viaPull.stderr).toBe(0);
    expect(JSON.parse(viaPull.stdout)).toMatchObject({ model: 'test-org/tiny-a', revision: commit, commit, bytes_fetched: 0 });
  });

  it('a mistyped folder that reads as an id gets an error naming both readings', async () => {
    const env = freshEnv();
    const r = await cli.run(['build', '--model_dir', 'modles/qwen3', '--output_dir', join(work, 'never-built')], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--model_dir modles\/qwen3 is neither a folder \(.*modles\/qwen3\) nor a model found on the Hugging Face Hub: no model modles\/qwen3 on/);
    expect(r.stderr).toMatch(/fix: as a folder, check the path \(relative paths start at .*\); as a model id, check the name/);
    expect(existsSync(join(work, 'never-built'))).toBe(false);
  });

  it('grpst build --model_dir takes the cached copy (the dry run too) and records the id as the source', async () => {
    const env = freshEnv();
    const dryMissing = await cli.run(['build', '--model_dir', 'test-org/tiny-a', '--output_dir', join(work, 'never'), '--dry-run'], { env });
    expect(dryMissing.code).toBe(2);
    expect(dryMissing.stderr).toMatch(/--model_dir test-org\/tiny-a is neither a folder nor a model in the Hugging Face cache.*\n.*fix: download it first: grpst pull test-org\/tiny-a/);
    expect((await cli.run(['pull', 'test-org/tiny-a'], { env })).code).toBe(0);
    const before = hub.seen.length;
    const out = join(work, `engine-${n}`);
    const r = await cli.run(['build', '--model_dir', 'test-org/tiny-a', '--output_dir', out], { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("--model_dir test-org/tiny-a: the Hugging Face cache's copy");
    expect(hub.seen.length).toBe(before);
    expect(JSON.parse(readFileSync(join(out, 'engine.json'), 'utf8')).source.name).toBe('test-org/tiny-a');
    // A recipe may name the model by its id too.
    const recipe = join(work, 'hub-recipe.yml');
    writeFileSync(recipe, `model_dir: test-org/tiny-a\noutput_dir: ${join(work, 'recipe-engine')}\nqformat: int8_wo\n`);
    const dry = await cli.run(['build', recipe, '--dry-run'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect(dry.code, dry.stderr).toBe(0);
    const commit = readFileSync(join(repoDir(env, 'test-org/tiny-a'), 'refs', 'main'), 'utf8');
    expect(dry.stdout).toContain(`# native build of ${join(repoDir(env, 'test-org/tiny-a'), 'snapshots', commit)} `);
  });
});
