// The server's side of Hugging Face ids in an inference conf (conf-models.ts pulls them first):
// which values are ids, and the cached snapshot an id names. No network here: config/resolve.ts
// reads confs for every command that starts a server, and a daemon never downloads.
import fs from 'node:fs';
import path from 'node:path';
import { badInput } from '../util/errors.js';
import { findCachedSnapshot } from './hub-cache.js';
import { hubEnv, looksLikeRepoId } from './hub-env.js';

/** True when `written` (a conf value) names a Hub model: shaped like an id and no such path from `base`. */
export function namesHubModelFrom(base: string, written: string): boolean {
  return !path.isAbsolute(written) && looksLikeRepoId(written) && !fs.existsSync(path.resolve(base, written));
}

/** The cached snapshot a conf's Hub id names, or the error that says how to get it. */
export function hubModelPath(id: string, where: string, env: NodeJS.ProcessEnv = process.env): string {
  const hub = hubEnv(env);
  const dir = findCachedSnapshot(hub.cacheDir, id, 'main');
  if (dir) return dir;
  throw badInput(`${where}: ${id} names a Hugging Face model that is not in the cache ${hub.cacheDir}`, `grpst start and grpst serve pull it before the server starts; or run grpst pull ${id} as the user the server runs as`);
}
