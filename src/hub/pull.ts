// `grpst pull owner/name`: a Hugging Face checkpoint into the hub cache, file by file, each checked
// (its size, and its ETag: the sha256 of an LFS file, the git blob id of the others) before it is
// renamed into blobs/ and linked into the snapshot. A dropped connection resumes where it stopped (Range), an interrupted
// pull resumes from its .incomplete files, and what is already cached is not fetched again.
import { createHash, type Hash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, statfsSync } from 'node:fs';
import type { Reporter } from '../build/progress.js';
import { DiskLimit, isDiskFull } from '../util/disk-full.js';
import { eachLimited } from '../util/each-limited.js';
import { formatBytes } from '../util/format-bytes.js';
import { ExitCode, failed, GrpstError } from '../util/errors.js';
import { sha256File } from '../util/sha256-files.js';
import { selectFiles, type FileFilter } from './file-patterns.js';
import { blobPath, cachedCommit, linkIntoSnapshot, repoFolder, snapshotComplete, snapshotPath, writeRef } from './hub-cache.js';
import { checkRepoId, hubEnv, type HubEnv } from './hub-env.js';
import { downloadRange, fetchFileMeta, fetchRevision, type FileMeta, type HubClient } from './hub-http.js';

export interface PullOptions extends FileFilter {
  revision?: string;
  reporter: Reporter;
  userAgent: string;
  hub?: HubEnv;
  signal?: AbortSignal;
  /** Attempts per file when the connection drops mid-way (default 5). */
  attempts?: number;
  /** Files downloaded at once (default 4). */
  parallel?: number;
}

export interface PulledFile {
  path: string;
  size: number;
  /** False when the blob was already in the cache. */
  fetched: boolean;
}

export interface PullResult {
  repoId: string;
  revision: string;
  commit: string;
  /** The snapshot folder: pass it as --model_dir, or the id itself. */
  dir: string;
  files: PulledFile[];
  bytesFetched: number;
}

const sha256Etag = /^[0-9a-f]{64}$/;
const gitBlobEtag = /^[0-9a-f]{40}$/;

export async function pullModel(repoIdText: string, opts: PullOptions): Promise<PullResult> {
  const repoId = checkRepoId(repoIdText);
  const hub = opts.hub ?? hubEnv();
  const revision = opts.revision ?? 'main';
  const folder = repoFolder(hub.cacheDir, repoId);
  const { reporter } = opts;
  if (hub.offline) {
    const commit = cachedCommit(folder, revision);
    const dir = commit && snapshotPath(folder, commit);
    if (dir && snapshotComplete(dir)) return { repoId, revision, commit, dir, files: [], bytesFetched: 0 };
    throw new GrpstError(`${repoId} (${revision}) is not in the Hugging Face cache ${hub.cacheDir}, and HF_HUB_OFFLINE is set`, {
      hint: 'unset HF_HUB_OFFLINE to download it, or pass a checkpoint folder as --model_dir',
    });
  }
  // The first file that fails stops the others' downloads (their partial files stay, resumable).
  const stopAll = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, stopAll.signal]) : stopAll.signal;
  const client: HubClient = { hub, userAgent: opts.userAgent, signal };
  reporter.phase('resolve', `${repoId} at ${revision} on ${hub.endpoint}`);
  const listing = await fetchRevision(client, repoId, revision);
  const wanted = selectFiles(listing.files, opts);
  const filtered = opts.include?.length || opts.exclude?.length;
  if (!filtered && !wanted.some((f) => f.endsWith('.safetensors'))) {
    throw new GrpstError(`${repoId} holds no safetensors weights (its files: ${listing.files.slice(0, 12).join(', ')}${listing.files.length > 12 ? ', ...' : ''})`, {
      hint: 'grpst builds from Hugging Face safetensors checkpoints (config.json, *.safetensors, tokenizer.json): pick a repository that has them, e.g. Qwen/Qwen3-8B',
    });
  }
  if (wanted.length === 0) throw new GrpstError(`no file of ${repoId} matches --include / --exclude`, { hint: `its files: ${listing.files.join(', ')}` });
  // Eight metadata requests at once: a 235B checkpoint has over a hundred files.
  const metas: (FileMeta & { path: string })[] = new Array(wanted.length);
  await eachLimited(wanted.length, 8, async (i) => {
    metas[i] = { path: wanted[i], ...(await fetchFileMeta(client, repoId, listing.commit, wanted[i])) };
  });
  const total = metas.reduce((s, m) => s + m.size, 0);
  reporter.done(`${metas.length} files, ${formatBytes(total)}, commit ${listing.commit.slice(0, 12)}`);

  mkdirSync(`${folder}/blobs`, { recursive: true });
  checkSpace(folder, metas);
  reporter.phase('download', `${repoId} into ${folder}`);
  const progress = { have: 0, fetched: 0, total, disk: new DiskLimit(), shownAt: 0 };
  const files: PulledFile[] = new Array(metas.length);
  // A few files at once: one CDN stream rarely fills a fast link (huggingface_hub runs 8). The
  // first failure stops the others' downloads, and every lane has stopped before the pull returns
  // or throws: nothing writes behind its back.
  try {
    await eachLimited(
      metas.length,
      opts.parallel ?? 4,
      async (i) => {
        const m = metas[i];
        const fetched = await fetchBlob(client, repoId, folder, m, { reporter, progress, attempts: opts.attempts ?? 5, label: `${i + 1}/${metas.length} ${m.path}` });
        linkIntoSnapshot(folder, listing.commit, m.path, m.etag);
        files[i] = { path: m.path, size: m.size, fetched };
      },
      () => stopAll.abort(),
    );
  } catch (e) {
    // A full disk: every partial file of this pull goes, to give the space back.
    if (diskFullErrors.has(e as Error)) for (const m of metas) rmSync(`${blobPath(folder, m.etag)}.incomplete`, { force: true });
    throw e;
  }
  writeRef(folder, revision, listing.commit);
  reporter.done(`${formatBytes(progress.fetched)} fetched, ${files.filter((f) => !f.fetched).length} files already cached`);
  return { repoId, revision, commit: listing.commit, dir: snapshotPath(folder, listing.commit), files, bytesFetched: progress.fetched };
}

interface Progress {
  /** Bytes of the pull on disk (cached, complete or partial). */
  have: number;
  fetched: number;
  total: number;
  /** Counts what the pull writes (GRPST_TEST_DISK_LIMIT_BYTES makes the disk fill up). */
  disk: DiskLimit;
  /** When the progress line was last redrawn (ms). */
  shownAt: number;
}

/** The errors of a full disk, told apart from the network's (not retried; partial files removed). */
const diskFullErrors = new WeakSet<Error>();

/**
 * One file into blobs/<etag> (false: it was there already). Network errors mid-file are retried from
 * where they stopped; the Hub's refusals are not, nor is a full disk (the pull then removes its
 * partial files).
 */
async function fetchBlob(
  client: HubClient,
  repoId: string,
  folder: string,
  m: FileMeta & { path: string },
  run: { reporter: Reporter; progress: Progress; attempts: number; label: string },
): Promise<boolean> {
  const { reporter, progress } = run;
  const blob = blobPath(folder, m.etag);
  if (existsSync(blob) && statSync(blob).size === m.size) {
    progress.have += m.size;
    return false;
  }
  const part = `${blob}.incomplete`;
  let counted = 0;
  // The sha256 is taken as the bytes arrive when the whole file passes through here (a fresh
  // download, resumed or not); a file begun by an earlier pull is hashed once it is complete.
  let hash: Hash | undefined = existsSync(part) || !sha256Etag.test(m.etag) ? undefined : createHash('sha256');
  let hashed = 0;
  for (let attempt = 1; ; attempt++) {
    const already = existsSync(part) ? statSync(part).size : 0;
    progress.have += already - counted;
    counted = already;
    // A chunk hashed but not written before the connection dropped: the stream's hash is no good.
    if (hash && hashed !== already) hash = undefined;
    try {
      await downloadRange(client, repoId, m.url, part, (n, chunk) => {
        // n < 0: the server ignored the range and the file starts over.
        if (n < 0 && sha256Etag.test(m.etag)) {
          hash = createHash('sha256');
          hashed = 0;
        }
        if (chunk) {
          progress.disk.add(n);
          progress.fetched += n;
          hash?.update(chunk);
          hashed += n;
        }
        counted += n;
        progress.have += n;
        // A chunk is 16-64 KiB: the progress line is redrawn ten times a second, not per chunk.
        const now = Date.now();
        if (now - progress.shownAt < 100) return;
        progress.shownAt = now;
        reporter.progress(progress.total > 0 ? progress.have / progress.total : undefined, `${run.label}  ${formatBytes(progress.have)} of ${formatBytes(progress.total)}`);
      });
      break;
    } catch (e) {
      if (isDiskFull(e)) {
        const full = failed(`the disk is full while downloading ${m.path} into ${folder} (${(e as NodeJS.ErrnoException).code}); the partial files were removed, the files complete so far stay cached`, 'free space on that disk, or set HF_HUB_CACHE (or HF_HOME) to a folder on a larger disk', e);
        diskFullErrors.add(full);
        throw full;
      }
      const retryable = !(e instanceof GrpstError) || e.message.startsWith('could not reach');
      if (client.signal?.aborted || !retryable || attempt >= run.attempts) throw e;
      reporter.info(`${m.path}: connection lost at ${formatBytes(existsSync(part) ? statSync(part).size : 0)}, resuming (attempt ${attempt + 1})`);
      await new Promise((r) => setTimeout(r, Math.min(8000, 500 * 2 ** attempt)));
    }
  }
  await verifyBlob(part, m.path, m.size, m.etag, hash && hashed === m.size ? hash.digest('hex') : undefined);
  renameSync(part, blob);
  return true;
}

/** Refuses a pull whose missing bytes do not fit on the cache's disk, before anything is fetched. */
function checkSpace(folder: string, metas: readonly (FileMeta & { path: string })[]): void {
  let needed = 0;
  for (const m of metas) {
    const blob = blobPath(folder, m.etag);
    if (existsSync(blob) && statSync(blob).size === m.size) continue;
    needed += m.size - (existsSync(`${blob}.incomplete`) ? statSync(`${blob}.incomplete`).size : 0);
  }
  const fs = statfsSync(folder);
  const free = fs.bavail * fs.bsize;
  if (needed > free) {
    throw failed(`the download needs ${formatBytes(needed)} more in ${folder}, and its disk has ${formatBytes(free)} free; nothing was fetched`, 'free space on that disk, or set HF_HUB_CACHE (or HF_HOME) to a folder on a larger disk');
  }
}

/** A file that is not what the Hub said is deleted (the next pull starts it afresh) and reported. */
async function verifyBlob(part: string, path: string, size: number, etag: string, streamedSha256?: string): Promise<void> {
  const got = statSync(part).size;
  let problem = got === size ? undefined : `${got} bytes, not ${size}`;
  if (!problem && sha256Etag.test(etag)) {
    const hex = streamedSha256 ?? (await sha256File(part));
    if (hex !== etag) problem = `sha256 ${hex.slice(0, 16)}..., not ${etag.slice(0, 16)}...`;
  } else if (!problem && gitBlobEtag.test(etag) && size <= 64 * 2 ** 20) {
    // A file kept in git (not LFS) is named by its git blob id: sha1 of "blob <size>\0" + bytes.
    const id = createHash('sha1').update(`blob ${size}\0`).update(readFileSync(part)).digest('hex');
    if (id !== etag) problem = `git blob id ${id.slice(0, 16)}..., not ${etag.slice(0, 16)}...`;
  }
  if (problem) {
    rmSync(part, { force: true });
    throw new GrpstError(`${path} arrived damaged (${problem})`, { exitCode: ExitCode.failed, hint: 'pull again; the damaged copy was removed' });
  }
}
