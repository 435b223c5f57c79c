// API key check. Both sides are hashed first so the comparison takes the same time whatever the
// key's length or how much of it matches.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { unauthorized } from './errors.js';

export class ApiKeyCheck {
  private readonly digest: Buffer;

  constructor(key: string) {
    this.digest = sha256(key);
  }

  /** Throws 401 unless the request carries the key as a Bearer token (or x-api-key). */
  verify(req: IncomingMessage): void {
    const given = presentedKey(req);
    if (given === undefined) throw unauthorized('This server requires an API key and the request sent none');
    if (!timingSafeEqual(sha256(given), this.digest)) throw unauthorized('The API key is not valid for this server');
  }
}

function presentedKey(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^\s*Bearer\s+(.+?)\s*$/i.exec(auth);
    return m ? m[1] : auth.trim();
  }
  const alt = req.headers['x-api-key'];
  return typeof alt === 'string' ? alt.trim() : undefined;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
