// A full disk while `grpst build` or `grpst archive` writes: said in the same words by both, and
// the test hook that makes the disk fill up after a number of bytes, read the same by both.
import { failed, type GrpstError } from './errors.js';

/** Test hook: pretend the disk fills up after this many bytes written (a value not a number is ignored). */
export const diskLimitEnv = 'GRPST_TEST_DISK_LIMIT_BYTES';

/** Whether an error is the disk (or the user's quota) running out of space. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Exit 4, naming what was being written as the user named it and where space is needed;
 * `elsewhere` is the flag that writes to another disk (-o with a path, an --output_dir).
 */
export function diskFullError(err: unknown, written: string, folder: string, elsewhere: string): GrpstError {
  const code = (err as NodeJS.ErrnoException).code;
  return failed(`the disk is full while writing ${written} (${code}); nothing was left behind`, `free space on the disk of ${folder}, or pass ${elsewhere} on a larger disk`, err);
}

/** Counts the bytes written and throws ENOSPC once they pass GRPST_TEST_DISK_LIMIT_BYTES. */
export class DiskLimit {
  private written = 0;
  private readonly limit: number;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const raw = env[diskLimitEnv];
    const limit = raw ? Number(raw) : Infinity;
    this.limit = Number.isNaN(limit) ? Infinity : limit;
  }

  add(bytes: number): void {
    this.written += bytes;
    if (this.written <= this.limit) return;
    const full = new Error(`ENOSPC: no space left on device (${diskLimitEnv}=${this.limit})`) as NodeJS.ErrnoException;
    full.code = 'ENOSPC';
    throw full;
  }
}
