// The Hugging Face hub cache's layout, as huggingface_hub writes and reads it:
//   <cache>/models--<owner>--<name>/blobs/<etag>            one file's bytes, named by its ETag
//                                                          (sha256 for LFS files, git blob id else)
//   <cache>/models--<owner>--<name>/snapshots/<commit>/<path> -> ../../blobs/<etag> (relative link)
//   <cache>/models--<owner>--<name>/refs/<revision>          the commit a branch or tag pointed at
// Files grpst pulls land there, so transformers, vLLM and `hf` find them, and theirs are found here.
import { existsSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { isCommitHash } from './hub-env.js';

export function repoFolder(cacheDir: string, repoId: string): string {
  return join(cacheDir, ['models', ...repoId.split('/')].join('--'));
}

export function blobPath(folder: string, etag: string): string {
  return join(folder, 'blobs', etag);
}

export function snapshotPath(folder: string, commit: string): string {
  return join(folder, 'snapshots', commit);
}

/** The commit `revision` names in the cache: itself when it is a commit, else what refs/<revision> holds. */
export function cachedCommit(folder: string, revision: string): string | undefined {
  if (isCommitHash(revision)) return revision;
  const ref = join(folder, 'refs', revision);
  return existsSync(ref) ? readFileSync(ref, 'utf8').trim() || undefined : undefined;
}

export function writeRef(folder: string, revision: string, commit: string): void {
  if (isCommitHash(revision)) return;
  const ref = join(folder, 'refs', revision);
  mkdirSync(dirname(ref), { recursive: true });
  // No newline: huggingface_hub writes the bare hash and compares it as read.
  writeFileSync(`${ref}.tmp-${process.pid}`, commit);
  renameSync(`${ref}.tmp-${process.pid}`, ref);
}

/** Points snapshots/<commit>/<path> at blobs/<etag> with a relative link, replacing what was there. */
export function linkIntoSnapshot(folder: string, commit: string, path: string, etag: string): void {
  const link = join(snapshotPath(folder, commit), path);
  const target = relative(dirname(link), blobPath(folder, etag));
  mkdirSync(dirname(link), { recursive: true });
  try {
    if (readlinkSync(link) === target) return;
  } catch {
    /* not there yet, or not a link */
  }
  rmSync(link, { force: true });
  symlinkSync(target, link);
}

/**
 * True when a snapshot holds what a build needs: config.json, and every weight shard its index
 * names (or, without an index, a *.safetensors file); for a PEFT LoRA adapter, adapter_config.json
 * and adapter_model.safetensors. A snapshot an interrupted download left (huggingface_hub writes
 * refs/ before the files) fails this and is pulled again.
 */
export function snapshotComplete(dir: string): boolean {
  if (existsSync(join(dir, 'adapter_config.json'))) return existsSync(join(dir, 'adapter_model.safetensors'));
  if (!existsSync(join(dir, 'config.json'))) return false;
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    try {
      const map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map ?? {};
      return Object.values(map).every((shard) => existsSync(join(dir, shard)));
    } catch {
      return false;
    }
  }
  return existsSync(join(dir, 'model.safetensors'));
}

/** The cached snapshot folder of repoId at revision, when it is there and complete. */
export function findCachedSnapshot(cacheDir: string, repoId: string, revision: string): string | undefined {
  const folder = repoFolder(cacheDir, repoId);
  const commit = cachedCommit(folder, revision);
  if (!commit) return undefined;
  const dir = snapshotPath(folder, commit);
  return snapshotComplete(dir) ? dir : undefined;
}

/** owner/name for a folder inside the hub cache's snapshots/<commit>/ (else undefined): a readable source name. */
export function repoIdOfSnapshot(dir: string): string | undefined {
  const m = /(?:^|[\\/])models--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/][0-9a-f]{40}[\\/]?$/.exec(dir);
  return m ? `${m[1]}/${m[2]}` : undefined;
}
