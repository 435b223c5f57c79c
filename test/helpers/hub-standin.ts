// A stand-in for the Hugging Face Hub's download API (the Hub cannot be reached where tests run),
// answering as huggingface.co does, which the real huggingface_hub client is run against to keep it
// honest (test/e2e/pull-hf-client.test.ts):
//   GET  /api/models/{repo}/revision/{rev}     {"id", "sha", "siblings": [{"rfilename"}]}
//   GET  /api/models/{repo}/tree/{rev}          [{"type": "file", "oid", "size", "path", "lfs"?}]
//   HEAD|GET /{repo}/resolve/{rev}/{path}       small files: 200 with ETag (git blob id) and
//        X-Repo-Commit; LFS files (*.safetensors): 302 to the CDN with X-Linked-Etag (sha256),
//        X-Linked-Size and X-Repo-Commit
//   GET  {cdn}/blobs/{sha256}                   the bytes, with Range (206); on another origin, as
//        the real CDN is, so an Authorization header must not follow the redirect
// Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, GatedRepo, EntryNotFound) as the Hub's do.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandinRepo {
  commit: string;
  files: Record<string, Buffer>;
  /** Files are served only with `Authorization: Bearer <token>` (a gated model). */
  gatedToken?: string;
}

export interface StandinKnobs {
  /** Close the connection after this many bytes of the next CDN answer for this path's blob, once. */
  dropOnce?: { path: string; afterBytes: number };
  /** Serve these bytes instead of a file's real ones (a corrupted CDN answer). */
  corrupt?: Record<string, Buffer>;
  /** Announce this size for a file in its resolve answer (X-Linked-Size). */
  claimSize?: Record<string, number>;
}

export interface SeenRequest {
  method: string;
  url: string;
  authorization?: string;
  range?: string;
  origin: 'hub' | 'cdn';
}

export interface HubStandin {
  endpoint: string;
  cdn: string;
  seen: SeenRequest[];
  knobs: StandinKnobs;
  close(): Promise<void>;
}

const isLfs = (path: string) => path.endsWith('.safetensors');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

function fail(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-error-code': code, 'x-error-message': message });
  res.end(JSON.stringify({ error: message }));
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function startHubStandin(repos: Record<string, StandinRepo>): Promise<HubStandin> {
  const seen: SeenRequest[] = [];
  const knobs: StandinKnobs = {};
  const blobs = new Map<string, { path: string; bytes: Buffer }>();
  for (const repo of Object.values(repos)) for (const [path, bytes] of Object.entries(repo.files)) blobs.set(sha256(bytes), { path, bytes });
  const note = (req: http.IncomingMessage, origin: 'hub' | 'cdn') =>
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization, range: req.headers.range, origin });

  const cdnServer = http.createServer((req, res) => {
    note(req, 'cdn');
    const m = /^\/blobs\/([0-9a-f]{64})/.exec(req.url ?? '');
    const blob = m && blobs.get(m[1]);
    if (!blob) return fail(res, 404, 'EntryNotFound', 'no such blob');
    const bytes = knobs.corrupt?.[blob.path] ?? blob.bytes;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) start = Number(range[1]);
    if (start >= bytes.length && range) {
      res.writeHead(416, { 'content-range': `bytes */${bytes.length}` });
      return res.end();
    }
    const body = bytes.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-length': body.length,
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    if (req.method === 'HEAD') return res.end();
    const drop = knobs.dropOnce;
    if (drop && drop.path === blob.path && drop.afterBytes < body.length) {
      knobs.dropOnce = undefined;
      res.write(body.subarray(0, drop.afterBytes), () => res.destroy());
      return;
    }
    res.end(body);
  });
  const cdn = await listen(cdnServer);

  const hubServer = http.createServer((req, res) => {
    note(req, 'hub');
    const url = new URL(req.url ?? '/', 'http://hub');
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repoId = decodeURIComponent((api ?? resolve)?.[1] ?? '');
    const repo = repos[repoId];
    if (!api && !resolve) return fail(res, 404, 'EntryNotFound', 'unknown route');
    // The Hub answers 401 for a repository it does not show to this caller (missing or private).
    if (!repo) return fail(res, 401, 'RepoNotFound', 'Repository not found');
    const rev = decodeURIComponent((api ? api[3] : resolve![2]) ?? '');
    if (rev !== 'main' && rev !== repo.commit) return fail(res, 404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (api?.[2] === 'revision') {
      return json({ id: repoId, modelId: repoId, sha: repo.commit, private: false, gated: repo.gatedToken ? 'manual' : false, siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })) });
    }
    if (api?.[2] === 'tree') {
      return json(Object.entries(repo.files).map(([path, b]) => ({
        type: 'file', oid: gitBlobId(b), size: b.length, path, ...(isLfs(path) ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 134 } } : {}),
      })));
    }
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`) {
      return fail(res, 401, 'GatedRepo', `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
    }
    const path = resolve![3].split('/').map(decodeURIComponent).join('/');
    const bytes = repo.files[path];
    if (!bytes) return fail(res, 404, 'EntryNotFound', `${path} does not exist on "${rev}"`);
    const common = { 'x-repo-commit': repo.commit, 'accept-ranges': 'bytes' };
    if (isLfs(path)) {
      res.writeHead(302, { ...common, location: `${cdn}/blobs/${sha256(bytes)}?expires=1`, 'x-linked-etag': `"${sha256(bytes)}"`, 'x-linked-size': String(knobs.claimSize?.[path] ?? bytes.length), etag: `"${gitBlobId(bytes)}"` });
      return res.end();
    }
    res.writeHead(200, { ...common, etag: `"${gitBlobId(bytes)}"`, 'content-length': bytes.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : (knobs.corrupt?.[path] ?? bytes));
  });
  const endpoint = await listen(hubServer);
  return {
    endpoint,
    cdn,
    seen,
    knobs,
    close: async () => {
      hubServer.closeAllConnections();
      cdnServer.closeAllConnections();
      await Promise.all([new Promise((r) => hubServer.close(r)), new Promise((r) => cdnServer.close(r))]);
    },
  };
}

/** A checkpoint folder's files as a stand-in repository at a made-up commit. */
export function repoFromFiles(files: Record<string, Buffer>, commitSeed: string, gatedToken?: string): StandinRepo {
  return { commit: createHash('sha1').update(commitSeed).digest('hex'), files, gatedToken };
}
