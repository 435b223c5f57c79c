// `grpst pull owner/name`: a Hugging Face checkpoint into the hub cache, file by file, each checked
// (size; sha256 for LFS files, whose ETag is their sha256) before it is renamed into blobs/ and
// linked into the snapshot. A dropped connection resumes where it stopped (Range), an interrupted
// pull resumes from its .incomplete files, and what is already cached is not fetched again.
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import type { Reporter } from '../build/progress.js';
import { ExitCode, GrpstError } from '../util/errors.js';
import { sha256File } from '../util/sha256-files.js';
import { selectFiles, type FileFilter } from './file-patterns.js';
import { blobPath, cachedCommit, linkIntoSnapshot, repoFolder, snapshotComplete, snapshotPath, writeRef } from './hub-cache.js';
import { checkRepoId, hubEnv, type HubEnv } from './hub-env.js';
import { downloadRange, fetchFileMeta, fetchRevision, type HubClient } from './hub-http.js';

export interface PullOptions extends FileFilter {
  revision?: string;
  reporter: Reporter;
  userAgent: string;
  hub?: HubEnv;
  signal?: AbortSignal;
  /** Attempts per file when the connection drops mid-way (default 5). */
  attempts?: number;
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

function gb(bytes: number): string {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

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
  const client: HubClient = { hub, userAgent: opts.userAgent, signal: opts.signal };
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
  const metas = [];
  for (const path of wanted) metas.push({ path, ...(await fetchFileMeta(client, repoId, listing.commit, path)) });
  const total = metas.reduce((s, m) => s + m.size, 0);
  reporter.done(`${metas.length} files, ${gb(total)}, commit ${listing.commit.slice(0, 12)}`);

  mkdirSync(`${folder}/blobs`, { recursive: true });
  reporter.phase('download', `${repoId} into ${folder}`);
  let done = 0;
  let fetchedBytes = 0;
  const files: PulledFile[] = [];
  for (const [i, m] of metas.entries()) {
    const blob = blobPath(folder, m.etag);
    const cached = existsSync(blob) && statSync(blob).size === m.size;
    if (!cached) {
      const part = `${blob}.incomplete`;
      let attempt = 0;
      for (;;) {
        const before = existsSync(part) ? statSync(part).size : 0;
        let mine = before;
        try {
          await downloadRange(client, repoId, m.url, part, (n) => {
            mine += n;
            fetchedBytes += n;
            reporter.progress(total > 0 ? (done + mine) / total : undefined, `${i + 1}/${metas.length} ${m.path}  ${gb(done + mine)} of ${gb(total)}`);
          });
          break;
        } catch (e) {
          // A network error mid-file is retried from where it stopped; the Hub's refusals are not.
          const retryable = !(e instanceof GrpstError) || e.message.startsWith('could not reach');
          if (opts.signal?.aborted || !retryable || ++attempt >= (opts.attempts ?? 5)) throw e;
          reporter.info(`${m.path}: connection lost at ${gb(existsSync(part) ? statSync(part).size : 0)}, resuming (attempt ${attempt + 1})`);
          await new Promise((r) => setTimeout(r, Math.min(8000, 500 * 2 ** attempt)));
        }
      }
      await verifyBlob(part, m.path, m.size, m.etag);
      renameSync(part, blob);
    }
    linkIntoSnapshot(folder, listing.commit, m.path, m.etag);
    files.push({ path: m.path, size: m.size, fetched: !cached });
    done += m.size;
  }
  writeRef(folder, revision, listing.commit);
  reporter.done(`${gb(fetchedBytes)} fetched, ${files.filter((f) => !f.fetched).length} files already cached`);
  return { repoId, revision, commit: listing.commit, dir: snapshotPath(folder, listing.commit), files, bytesFetched: fetchedBytes };
}

/** A file that is not what the Hub said is deleted (the next pull starts it afresh) and reported. */
async function verifyBlob(part: string, path: string, size: number, etag: string): Promise<void> {
  const got = statSync(part).size;
  let problem = got === size ? undefined : `${got} bytes, not ${size}`;
  if (!problem && sha256Etag.test(etag)) {
    const hex = await sha256File(part);
    if (hex !== etag) problem = `sha256 ${hex.slice(0, 16)}..., not ${etag.slice(0, 16)}...`;
  }
  if (problem) {
    rmSync(part, { force: true });
    throw new GrpstError(`${path} arrived damaged (${problem})`, { exitCode: ExitCode.failed, hint: 'pull again; the damaged copy was removed' });
  }
}
