// The three Hub requests a download needs, as huggingface_hub makes them:
//   GET  {endpoint}/api/models/{repo}/revision/{rev}    -> {"sha": commit, "siblings": [{"rfilename"}]}
//   HEAD {endpoint}/{repo}/resolve/{commit}/{path}       -> X-Linked-Etag / ETag, X-Linked-Size /
//        Content-Length; a 302 to the CDN for large files, a relative 307 when the repo was renamed
//   GET  the same URL (redirects followed; a Range header resumes a partial file)
// and the Hub's error headers (X-Error-Code, X-Error-Message) turned into errors that say what to do.
import { createWriteStream, statSync } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EnvHttpProxyAgent, fetch, request, type Dispatcher, type RequestInit, type Response } from 'undici';
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

/** fetch, with a network failure said as one: which host, what went wrong, what to do. */
async function hubFetch(c: HubClient, url: string, init: RequestInit): Promise<Response> {
  dispatcher ??= new EnvHttpProxyAgent();
  try {
    return await fetch(url, { ...init, signal: c.signal, dispatcher });
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

/** The Hub's answer to a failed request, in words with a fix. */
/** What hubError reads of an answer: fetch's Response and undici's request both give it. */
export interface HubAnswer {
  status: number;
  headers: { get(name: string): string | null };
}

export function hubError(res: HubAnswer, repoId: string, what: string, hub: HubEnv): GrpstError {
  const code = res.headers.get('x-error-code');
  const message = res.headers.get('x-error-message');
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
  if (code === 'RepoNotFound' || res.status === 401 || res.status === 404) {
    return new GrpstError(`no model ${repoId} on ${hub.endpoint}, or it is private (HTTP ${res.status})`, {
      exitCode: ExitCode.badInput,
      hint: `check the name (owner/name, as on ${hub.endpoint}); for a private model ${tokenFix}`,
    });
  }
  if (res.status === 403) {
    return new GrpstError(`${hub.endpoint} refused ${what} of ${repoId} (HTTP 403${message ? `: ${message}` : ''})`, { exitCode: ExitCode.badInput, hint: tokenFix });
  }
  return new GrpstError(`${hub.endpoint} answered HTTP ${res.status} for ${what} of ${repoId}${message ? `: ${message}` : ''}`, {
    exitCode: ExitCode.failed,
    hint: res.status >= 500 ? 'the Hub is having trouble: try again in a while' : 'try again; if it persists, download the checkpoint elsewhere and pass its folder',
  });
}

export async function fetchRevision(c: HubClient, repoId: string, revision: string): Promise<RepoRevision> {
  const url = `${c.hub.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
  const res = await hubFetch(c, url, { headers: headers(c) });
  if (!res.ok) throw hubError(res, repoId, `revision "${revision}"`, c.hub);
  const body = (await res.json()) as { sha?: unknown; siblings?: { rfilename?: unknown }[] };
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
    const res = await hubFetch(c, url, { method: 'HEAD', redirect: 'manual', headers: headers(c, { 'accept-encoding': 'identity' }) });
    const location = res.headers.get('location');
    // A relative redirect is the Hub's own (a renamed repository): follow it. An absolute one is
    // the CDN: the metadata is on this answer.
    if (res.status >= 300 && res.status < 400 && location?.startsWith('/') && hops < 5) {
      url = new URL(location, url).toString();
      continue;
    }
    if (!res.ok && !(res.status >= 300 && res.status < 400)) throw hubError(res, repoId, path, c.hub);
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    const sizeText = res.headers.get('x-linked-size') ?? (res.ok ? res.headers.get('content-length') : null);
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
  if (res.statusCode < 200 || res.statusCode >= 300) {
    await res.body.dump();
    throw hubError({ status: res.statusCode, headers: { get: (name) => headerValue(res.headers[name]) } }, repoId, new URL(url).pathname, c.hub);
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
  await pipeline(res.body, counter, createWriteStream(file, { flags: restart ? 'w' : 'a', highWaterMark: 1 << 20 }), { signal: c.signal });
}

function headerValue(v: string | string[] | undefined): string | null {
  return v === undefined ? null : Array.isArray(v) ? v[0] : v;
}

/**
 * A GET of file bytes with undici's request (a Node stream, without fetch's web-stream layer:
 * npm run bench:pull went from 163-169 to 189 MiB/s with it), following redirects itself: the
 * token goes only to the Hub's own origin, never to the CDN a file is redirected to.
 */
async function hubGet(c: HubClient, url: string, extra: Record<string, string>): Promise<Dispatcher.ResponseData> {
  dispatcher ??= new EnvHttpProxyAgent();
  const hubOrigin = new URL(c.hub.endpoint).origin;
  for (let hops = 0; ; hops++) {
    const own = new URL(url).origin === hubOrigin;
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { dispatcher, signal: c.signal, headers: own ? headers(c, extra) : { 'user-agent': c.userAgent, ...extra } });
    } catch (e) {
      if (c.signal?.aborted) throw e;
      throw unreachable(url, e);
    }
    const location = headerValue(res.headers.location);
    if (res.statusCode >= 300 && res.statusCode < 400 && location && hops < 10) {
      await res.body.dump();
      url = new URL(location, url).toString();
      continue;
    }
    return res;
  }
}
