// The rules an entry name of a .mar must follow to be extracted: a plain relative path that
// stays inside the deploy folder. Checked on the raw name, before any path is built from it.

/** Why the name is unsafe, or undefined when it is fine. */
export function unsafeEntryName(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length > 4096) return 'name longer than 4096 characters';
  if (name.includes('\0')) return 'NUL character in name';
  if (name.includes('\\')) return 'backslash in name';
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'absolute path';
  const trimmed = name.endsWith('/') ? name.slice(0, -1) : name;
  const segments = trimmed.split('/');
  for (const segment of segments) {
    if (segment === '..') return 'path climbs out with ".."';
    if (segment === '' || segment === '.') return 'empty or "." path segment';
    if (Buffer.byteLength(segment) > 255) return 'path segment longer than 255 bytes';
  }
  return undefined;
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * The kind of entry from its unix mode (high 16 bits of the external attributes, when the
 * archive was made on unix). Zips made elsewhere carry no type: regular file or folder by name.
 */
export function entryKind(externalFileAttributes: number, versionMadeBy: number, name: string): 'file' | 'dir' | 'symlink' | 'special' {
  const madeOnUnix = versionMadeBy >> 8 === 3;
  const mode = (externalFileAttributes >>> 16) & 0xffff;
  if (madeOnUnix && mode !== 0) {
    const type = mode & S_IFMT;
    if (type === S_IFLNK) return 'symlink';
    if (type === S_IFDIR) return 'dir';
    if (type === S_IFREG) return name.endsWith('/') ? 'dir' : 'file';
    if (type !== 0) return 'special';
  }
  return name.endsWith('/') ? 'dir' : 'file';
}
