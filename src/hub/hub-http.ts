// The three Hub requests a download needs, as huggingface_hub makes them:
//   GET  {endpoint}/api/models/{repo}/revision/{rev}    -> {"sha": commit, "siblings": [{"rfilename"}]}
//   HEAD {endpoint}/{repo}/resolve/{commit}/{path}       -> X-Linked-Etag / ETag, X-Linked-Size /
//        Content-Length; a 302 to the CDN for large files, a relative 307 when the repo was renamed
//   GET  the same URL (redirects followed; a Range header resumes a partial file)
// and the Hub's error headers (X-Error-Code, X-Error-Message) turned into errors that say what to do.
import { createWriteStream, statSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { EnvHttpProxyAgent, fetch, type RequestInit, type Response } from 'undici';
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
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new GrpstError(`could not reach ${new URL(url).origin} (${why})`, {
      exitCode: ExitCode.failed,
      hint: 'check the network (set HF_ENDPOINT for a mirror), or download the checkpoint where the Hub is reachable and pass its folder',
      cause: e,
    });
  }
}

/** The Hub's answer to a failed request, in words with a fix. */
export function hubError(res: Response, repoId: string, what: string, hub: HubEnv): GrpstError {
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
 * is there; a server that ignores the range restarts the file). `onBytes` gets each chunk's length.
 */
export async function downloadRange(c: HubClient, repoId: string, url: string, file: string, onBytes: (n: number) => void): Promise<void> {
  let have = 0;
  try {
    have = statSync(file).size;
  } catch {
    /* a new file */
  }
  const res = await hubFetch(c, url, { headers: headers(c, have > 0 ? { range: `bytes=${have}-` } : {}) });
  if (res.status === 416) return; // the range starts at the end: nothing left to fetch
  if (!res.ok || !res.body) throw hubError(res, repoId, new URL(url).pathname, c.hub);
  const restart = have > 0 && res.status !== 206;
  if (restart) onBytes(-have);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      // onBytes may refuse the bytes (a full disk): that ends the pipeline, not the process.
      try {
        onBytes(chunk.length);
      } catch (e) {
        return done(e as Error);
      }
      done(null, chunk);
    },
  });
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), counter, createWriteStream(file, { flags: restart ? 'w' : 'a' }), { signal: c.signal });
}
