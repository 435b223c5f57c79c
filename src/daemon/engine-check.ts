// Before a native engine is served, every file engine.json lists must still be what `grpst build`
// wrote: same size (a truncated copy) and same sha256 (a file changed after the build). Hashing
// a large engine takes a while, so hashes are reused: those the archive extraction just checked,
// and those of files (by device and inode) whose size and mtime have not changed since they were
// last verified (recorded in $GRPST_HOME/.run/.verified-engines.json: a dot file, so no server name can collide).
import fs from 'node:fs';
import path from 'node:path';
import { runDirOf } from '../config/paths.js';
import { badInput } from '../util/errors.js';
import { sha256Files } from '../util/sha256-files.js';
import { atomicWrite } from './state.js';

interface ListedFile {
  bytes: number;
  sha256: string;
}

interface VerifiedRecord {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** engine.json's file list, or undefined for folders without one (checkpoints, TensorRT-LLM engines). */
function listedFiles(engineDir: string): Record<string, ListedFile> | undefined {
  let manifest: unknown;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(engineDir, 'engine.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const files = (manifest as { files?: unknown })?.files;
  if (!files || typeof files !== 'object') return undefined;
  const out: Record<string, ListedFile> = {};
  for (const [name, info] of Object.entries(files as Record<string, Partial<ListedFile>>)) {
    if (typeof info?.bytes === 'number' && typeof info.sha256 === 'string') out[name] = { bytes: info.bytes, sha256: info.sha256 };
  }
  return out;
}

/** Throws a clear error for a missing, truncated or changed engine file; returns the files hashed now. */
export async function verifyEngineFiles(
  engineDir: string,
  home: string,
  opts: { known?: Map<string, string>; onHashing?: (file: string) => void } = {},
): Promise<number> {
  const files = listedFiles(engineDir);
  if (!files) return 0;
  const cacheFile = path.join(runDirOf(home), '.verified-engines.json');
  const cache = readCache(cacheFile);
  const fix = 'rebuild the engine with `grpst build`, or copy the whole engine folder again';
  // Sizes and cached hashes first; the files left to hash go to worker threads together.
  const pending: { file: string; want: ListedFile; key: string; stat: fs.Stats }[] = [];
  const check = (file: string, want: ListedFile, actual: string) => {
    if (actual !== want.sha256) throw badInput(`engine file ${file} was changed after the build (sha256 ${actual.slice(0, 12)}..., engine.json records ${want.sha256.slice(0, 12)}...)`, fix);
  };
  for (const [name, want] of Object.entries(files)) {
    const file = path.join(engineDir, name);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch {
      throw badInput(`engine file ${file} is missing (engine.json lists it)`, fix);
    }
    if (stat.size !== want.bytes) throw badInput(`engine file ${file} has ${stat.size} bytes but engine.json records ${want.bytes} (truncated or replaced)`, fix);
    const key = `${stat.dev}:${stat.ino}`;
    const record = cache[key];
    let actual = opts.known?.get(file);
    if (actual === undefined && record && record.size === stat.size && record.mtimeMs === stat.mtimeMs) actual = record.sha256;
    if (actual === undefined) pending.push({ file, want, key, stat });
    else check(file, want, actual);
  }
  for (const p of pending) opts.onHashing?.(p.file);
  const hashes = await sha256Files(pending.map((p) => p.file));
  pending.forEach((p, i) => {
    cache[p.key] = { size: p.stat.size, mtimeMs: p.stat.mtimeMs, sha256: hashes[i] };
    check(p.file, p.want, hashes[i]);
  });
  if (pending.length > 0) {
    fs.mkdirSync(path.dirname(cacheFile), { recursive: true, mode: 0o700 });
    atomicWrite(cacheFile, JSON.stringify(cache));
  }
  return pending.length;
}

function readCache(file: string): Record<string, VerifiedRecord> {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, VerifiedRecord>) : {};
  } catch {
    return {};
  }
}
