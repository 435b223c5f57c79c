// The server's side of Hugging Face ids in an inference conf (conf-models.ts pulls them first):
// which values are ids, and the cached snapshot an id names. No network here: config/resolve.ts
// reads confs for every command that starts a server, and a daemon never downloads.
import fs from 'node:fs';
import path from 'node:path';
import { findCachedSnapshot } from './hub-cache.js';
import { hubEnv, parseModelRef } from './hub-env.js';

/** True when `written` (a conf value) names a Hub model: shaped like an id and no such path from `base`. */
export function namesHubModelFrom(base: string, written: string): boolean {
  return !path.isAbsolute(written) && parseModelRef(written) !== undefined && !fs.existsSync(path.resolve(base, written));
}

/**
 * The cached snapshot a conf's Hub id names; undefined when it is not cached, and the caller's own
 * "does not exist" error follows (grpst start and serve pull ids before this is asked, so what is
 * missing here is as likely a mistyped relative path).
 */
export function hubModelPath(ref: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const parsed = parseModelRef(ref);
  return parsed && findCachedSnapshot(hubEnv(env).cacheDir, parsed.id, parsed.revision);
}
