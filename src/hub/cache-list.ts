// What the Hugging Face cache holds, for `grpst list` and `grpst rm` (Ollama's `list` and `rm`):
// each model repository, its revisions (refs and snapshots), the bytes its blobs take, when it last
// changed, and whether grpst can build or serve it (config.json's model_type; a complete snapshot).
import fs from 'node:fs';
import path from 'node:path';
import { snapshotComplete } from './hub-cache.js';

export interface CachedModel {
  /** owner/name */
  id: string;
  folder: string;
  /** Snapshot folders, newest first, with the refs (branches, tags) that point at each. */
  revisions: { commit: string; refs: string[]; dir: string; complete: boolean }[];
  /** Bytes of the repository's blobs (each once, however many snapshots link it). */
  bytes: number;
  modified: Date;
  /** config.json's model_type in the newest complete snapshot ('lora' for a PEFT adapter, '' when none has one). */
  modelType: string;
}

/** Model types grpst builds and serves. */
export const servedModelTypes = new Set(['qwen3', 'qwen3_moe']);

function refsOf(folder: string): Map<string, string[]> {
  const byCommit = new Map<string, string[]>();
  const walk = (dir: string, prefix: string) => {
    for (const e of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
      const name = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), name);
      else {
        const commit = fs.readFileSync(path.join(dir, e.name), 'utf8').trim();
        byCommit.set(commit, [...(byCommit.get(commit) ?? []), name]);
      }
    }
  };
  walk(path.join(folder, 'refs'), '');
  return byCommit;
}

function modelTypeOf(dir: string): string {
  if (fs.existsSync(path.join(dir, 'adapter_config.json'))) return 'lora';
  try {
    const t = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { model_type?: unknown }).model_type;
    return typeof t === 'string' ? t : '';
  } catch {
    return '';
  }
}

export function listCachedModels(cacheDir: string): CachedModel[] {
  if (!fs.existsSync(cacheDir)) return [];
  const out: CachedModel[] = [];
  for (const name of fs.readdirSync(cacheDir).sort()) {
    const m = /^models--(.+?)--(.+)$/.exec(name);
    if (!m) continue;
    const folder = path.join(cacheDir, name);
    const refs = refsOf(folder);
    let bytes = 0;
    let newest = fs.statSync(folder).mtimeMs;
    const blobs = path.join(folder, 'blobs');
    for (const b of fs.existsSync(blobs) ? fs.readdirSync(blobs) : []) {
      const st = fs.statSync(path.join(blobs, b));
      bytes += st.size;
      newest = Math.max(newest, st.mtimeMs);
    }
    const snapshots = path.join(folder, 'snapshots');
    const revisions = (fs.existsSync(snapshots) ? fs.readdirSync(snapshots) : [])
      .map((commit) => {
        const dir = path.join(snapshots, commit);
        return { commit, refs: refs.get(commit) ?? [], dir, complete: snapshotComplete(dir), at: fs.statSync(dir).mtimeMs };
      })
      .sort((a, b) => b.at - a.at)
      .map(({ at: _at, ...r }) => r);
    const typed = revisions.find((r) => r.complete) ?? revisions[0];
    out.push({ id: `${m[1]}/${m[2]}`, folder, revisions, bytes, modified: new Date(newest), modelType: typed ? modelTypeOf(typed.dir) : '' });
  }
  return out;
}

/** What grpst can do with it, in a few words for the listing. */
export function usability(m: CachedModel): string {
  if (!m.revisions.some((r) => r.complete)) return 'incomplete (grpst pull resumes it)';
  if (m.modelType === 'lora') return 'LoRA adapter (serve --lora_modules, build --merge_lora)';
  if (m.modelType === '') return 'no config.json model_type';
  return servedModelTypes.has(m.modelType) ? m.modelType : `${m.modelType} (not a Qwen3 model: grpst cannot build it)`;
}
