// The three Hub requests a download needs, as huggingface_hub makes them:
//   GET  {endpoint}/api/models/{repo}/revision/{rev}    -> {"sha": commit, "siblings": [{"rfilename"}]}
//   HEAD {endpoint}/{repo}/resolve/{commit}/{path}       -> X-Linked-Etag / ETag, X-Linked-Size /
//        Content-Length; a 302 to the CDN for large files, a relative 307 when the repo was renamed
//   GET  the same URL (redirects followed; a Range header resumes a partial file)
// and the Hub's error headers (X-Error-Code, X-Error-Message) turned into errors that say what to do.
import { createWriteStream, openSync, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { ExitCode, GrpstError } from '../util/errors.js';
import type { HubEnv } from './hub-env.js';

export interface HubClient {
  hub: HubEnv;
  userAgent: string;
  signal?: AbortSignal;
}

export interface RepoRevision {
  commit: string;
  files: string[];
}

export interface FileMeta {
  /** The blob's name in the cache: sha256 for LFS files, the git blob id for others. */
  etag: string;
  size: number;
  /** The resolve URL after relative (rename) redirects; the CDN redirect is left to the GET. */
  url: string;
}

function headers(c: HubClient, extra: Record<string, string> = {}): Record<string, string> {
  return { 'user-agent': c.userAgent, ...(c.hub.token ? { authorization: `Bearer ${c.hub.token}` } : {}), ...extra };
}

function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export function resolveUrl(hub: HubEnv, repoId: string, revision: string, path: string): string {
  return `${hub.endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${encodePath(path)}`;
}

// HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured as huggingface_hub (httpx) honours them; Node's
// own fetch ignores them, which would leave a machine behind a proxy without downloads.
let dispatcher: EnvHttpProxyAgent | undefined;

/**
 * One request through undici's `request` (Node streams, no redirect followed), with a network
 * failure said as one: which host, what went wrong, what to do.
 */
async function hubRequest(c: HubClient, url: string, opts: { method?: 'GET' | 'HEAD'; headers: Record<string, string> }): Promise<Dispatcher.ResponseData> {
  dispatcher ??= new EnvHttpProxyAgent();
  try {
    return await request(url, { method: opts.method ?? 'GET', headers: opts.headers, dispatcher, signal: c.signal });
  } catch (e) {
    if (c.signal?.aborted) throw e;
    throw unreachable(url, e);
  }
}

function unreachable(url: string, e: unknown): GrpstError {
  const err = e as { code?: string; cause?: { code?: string; message?: string }; message?: string };
  const why = err.cause?.code ?? err.code ?? err.cause?.message ?? err.message;
  return new GrpstError(`could not reach ${new URL(url).origin} (${why})`, {
    exitCode: ExitCode.failed,
    hint: 'check the network (set HF_ENDPOINT for a mirror), or download the checkpoint where the Hub is reachable and pass its folder',
    cause: e,
  });
}

function header(res: Dispatcher.ResponseData, name: string): string | null {
  const v = res.headers[name];
  return v === undefined ? null : Array.isArray(v) ? v[0] : v;
}

const ok = (res: Dispatcher.ResponseData) => res.statusCode >= 200 && res.statusCode < 300;
const isRedirect = (res: Dispatcher.ResponseData) => res.statusCode >= 300 && res.statusCode < 400;

/** The Hub's answer to a failed request, in words with a fix. */
export function hubError(res: Dispatcher.ResponseData, repoId: string, what: string, hub: HubEnv): GrpstError {
  const status = res.statusCode;
  const code = header(res, 'x-error-code');
  const message = header(res, 'x-error-message');
  const tokenFix = hub.token ? 'check that HF_TOKEN (or the stored login) may read it' : 'set HF_TOKEN to a token that may read it (huggingface.co/settings/tokens)';
  if (code === 'GatedRepo') {
    return new GrpstError(`${repoId} is gated: its files are served once its conditions are accepted${message ? ` (${message})` : ''}`, {
      exitCode: ExitCode.badInput,
      hint: `accept them on ${hub.endpoint}/${repoId} and ${tokenFix}`,
    });
  }
  if (code === 'RevisionNotFound') {
    return new GrpstError(`${repoId} has no ${what}`, { exitCode: ExitCode.badInput, hint: `pass a branch, tag or commit it has (see ${hub.endpoint}/${repoId}/tree/main)` });
  }
  if (code === 'EntryNotFound') {
    return new GrpstError(`${repoId} has no ${what}`, { exitCode: ExitCode.failed, hint: 'the repository changed during the download: pull it again' });
  }
  if (code === 'RepoNotFound' || status === 401 || status === 404) {
    return new GrpstError(`no model ${repoId} on ${hub.endpoint}, or it is private (HTTP ${status})`, {
      exitCode: ExitCode.badInput,
      hint: `check the name (owner/name, as on ${hub.endpoint}); for a private model ${tokenFix}`,
    });
  }
  if (status === 403) {
    return new GrpstError(`${hub.endpoint} refused ${what} of ${repoId} (HTTP 403${message ? `: ${message}` : ''})`, { exitCode: ExitCode.badInput, hint: tokenFix });
  }
  return new GrpstError(`${hub.endpoint} answered HTTP ${status} for ${what} of ${repoId}${message ? `: ${message}` : ''}`, {
    exitCode: ExitCode.failed,
    hint: status >= 500 ? 'the Hub is having trouble: try again in a while' : 'try again; if it persists, download the checkpoint elsewhere and pass its folder',
  });
}

export async function fetchRevision(c: HubClient, repoId: string, revision: string): Promise<RepoRevision> {
  const url = `${c.hub.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
  const res = await hubRequest(c, url, { headers: headers(c) });
  if (!ok(res)) {
    await res.body.dump();
    throw hubError(res, repoId, `revision "${revision}"`, c.hub);
  }
  const body = (await res.body.json().catch(() => ({}))) as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
  if (typeof body.sha !== 'string' || !Array.isArray(body.siblings)) {
    throw new GrpstError(`${url} answered without a commit and file list`, { exitCode: ExitCode.failed, hint: 'is HF_ENDPOINT a Hugging Face Hub (or a mirror of one)?' });
  }
  return { commit: body.sha, files: body.siblings.map((s) => s.rfilename).filter((f): f is string => typeof f === 'string') };
}

/** W/"abc" and "abc" -> abc (huggingface_hub's _normalize_etag). */
export function normalizeEtag(etag: string | null): string | undefined {
  if (!etag) return undefined;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '') || undefined;
}

export async function fetchFileMeta(c: HubClient, repoId: string, commit: string, path: string): Promise<FileMeta> {
  let url = resolveUrl(c.hub, repoId, commit, path);
  for (let hops = 0; ; hops++) {
    const res = await hubRequest(c, url, { method: 'HEAD', headers: headers(c, { 'accept-encoding': 'identity' }) });
    await res.body.dump();
    const location = header(res, 'location');
    // A relative redirect is the Hub's own (a renamed repository): follow it. An absolute one is
    // the CDN: the metadata is on this answer.
    if (isRedirect(res) && location?.startsWith('/') && hops < 5) {
      url = new URL(location, url).toString();
      continue;
    }
    if (!ok(res) && !isRedirect(res)) throw hubError(res, repoId, path, c.hub);
    const etag = normalizeEtag(header(res, 'x-linked-etag') ?? header(res, 'etag'));
    const sizeText = header(res, 'x-linked-size') ?? (ok(res) ? header(res, 'content-length') : null);
    const size = sizeText === null ? NaN : Number(sizeText);
    if (!etag || !Number.isSafeInteger(size)) {
      throw new GrpstError(`${url} answered without the file's ETag and size`, { exitCode: ExitCode.failed, hint: 'is HF_ENDPOINT a Hugging Face Hub (or a mirror of one)?' });
    }
    return { etag, size, url };
  }
}

/**
 * Appends the bytes of `url` from the file's current length to its end (a Range request when part
 * is there; a server that ignores the range restarts the file). `onBytes` gets each chunk (a
 * negative count, no chunk, when the file starts over).
 */
export async function downloadRange(c: HubClient, repoId: string, url: string, file: string, onBytes: (n: number, chunk?: Buffer) => void): Promise<void> {
  let have = 0;
  try {
    have = statSync(file).size;
  } catch {
    /* a new file */
  }
  const res = await hubGet(c, url, have > 0 ? { range: `bytes=${have}-` } : {});
  if (res.statusCode === 416) return res.body.dump(); // the range starts at the end: nothing left to fetch
  if (!ok(res)) {
    await res.body.dump();
    throw hubError(res, repoId, new URL(url).pathname, c.hub);
  }
  const restart = have > 0 && res.statusCode !== 206;
  if (restart) onBytes(-have);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      // onBytes may refuse the bytes (a full disk): that ends the pipeline, not the process.
      try {
        onBytes(chunk.length, chunk);
      } catch (e) {
        return done(e as Error);
      }
      done(null, chunk);
    },
  });
  // The file is opened here, synchronously: a stream that opened it later (asynchronously) could
  // create it after the pull, stopped by another file's failure, had removed its partial files.
  if (c.signal?.aborted) {
    await res.body.dump().catch(() => undefined);
    throw c.signal.reason;
  }
  const fd = openSync(file, restart ? 'w' : 'a');
  await pipeline(res.body, counter, createWriteStream(file, { fd, highWaterMark: 1 << 20 }), { signal: c.signal });
}

/**
 * A GET of file bytes, following redirects itself: the token goes only to the Hub's own origin,
 * never to the CDN a file is redirected to. (Through `request`, not fetch's web streams: npm run
 * bench:pull went from 163-169 to 189 MiB/s with it.)
 */
async function hubGet(c: HubClient, url: string, extra: Record<string, string>): Promise<Dispatcher.ResponseData> {
  const hubOrigin = new URL(c.hub.endpoint).origin;
  for (let hops = 0; ; hops++) {
    const own = new URL(url).origin === hubOrigin;
    const res = await hubRequest(c, url, { headers: own ? headers(c, extra) : { 'user-agent': c.userAgent, ...extra } });
    const location = header(res, 'location');
    if (isRedirect(res) && location && hops < 10) {
      await res.body.dump();
      url = new URL(location, url).toString();
      continue;
    }
    return res;
  }
}
