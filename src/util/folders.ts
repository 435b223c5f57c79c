// Folder creation that fails instead of spinning: Node's recursive mkdir retries forever where
// the kernel answers ENOENT for a folder whose parent exists (under /proc), and every caller
// here must fail with a message instead.
import fs from 'node:fs';
import path from 'node:path';

/** `dir` itself when it exists, else its nearest ancestor that does. */
export function nearestExisting(dir: string): string {
  let at = path.resolve(dir);
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

/** mkdir -p, one level at a time (`mode` for the levels it creates). */
export function makeFolders(dir: string, mode?: number): void {
  const top = nearestExisting(dir);
  const missing: string[] = [];
  for (let at = path.resolve(dir); at !== top; at = path.dirname(at)) missing.unshift(at);
  for (const d of missing) fs.mkdirSync(d, { mode });
}
