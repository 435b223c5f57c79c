// Safe extraction of a .mar into a fresh folder. Everything is checked on the central directory
// before a byte is written (entry names, types, duplicates, sizes, compression ratios, the
// manifest, free disk space); then each file is written with O_EXCL and its sha256 compared with
// the manifest. Any failure removes the whole folder: nothing half-written, nothing outside it.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { envVars, isInside } from '../config/paths.js';
import { positiveEnvNumber } from '../util/env-values.js';
import { isDiskFull } from '../util/disk-full.js';
import { badInput } from '../util/errors.js';
import { entryKind, unsafeEntryName } from './entry-name.js';
import { manifestName, manifestSchema, type Manifest } from './manifest.js';

export interface ExtractLimits {
  /** Most bytes the archive may unpack to. */
  maxTotalBytes: number;
  maxEntries: number;
  /** An entry over ratioFloorBytes that inflates more than this many times is a zip bomb. */
  maxRatio: number;
  ratioFloorBytes: number;
}

/** The limits, GRPST_MAX_MAR_BYTES applied (refused when it is not a whole number of bytes above 0). */
export function defaultLimits(env: NodeJS.ProcessEnv = process.env): ExtractLimits {
  const fromEnv = positiveEnvNumber(env, envVars.maxMarBytes, { takes: 'a whole number of bytes above 0', default: '512 GiB', example: '1099511627776', integer: true });
  return {
    maxTotalBytes: fromEnv ?? 512 * 1024 ** 3,
    maxEntries: 100_000,
    maxRatio: 200,
    ratioFloorBytes: 1024 * 1024,
  };
}

export interface ExtractResult {
  manifest: Manifest;
  files: number;
  bytes: number;
}

/** Extracts `marPath` into `dest`, which must not exist yet (it is created, and removed on failure). */
export async function extractArchive(marPath: string, dest: string, limits: ExtractLimits = defaultLimits()): Promise<ExtractResult> {
  const shown = marPath;
  if (!fs.existsSync(marPath)) throw badInput(`archive ${shown} does not exist`, 'create it with `grpst archive .` or pass the right path');
  if (!fs.statSync(marPath).isFile()) throw badInput(`archive ${shown} is not a file`, 'pass the .mar file that `grpst archive` wrote');
  fs.mkdirSync(dest, { recursive: false });
  let zip: ZipFile | undefined;
  try {
    zip = await openZip(marPath, shown);
    const refuse = (why: string) => badInput(`archive ${shown} refused: ${why}`, 'recreate it with `grpst archive` from the project folder; never deploy an archive from an unknown source');
    if (zip.entryCount > limits.maxEntries) throw refuse(`${zip.entryCount} entries, more than ${limits.maxEntries}`);
    const entries = await readEntries(zip, shown);

    const files = new Map<string, Entry>();
    const dirs = new Set<string>();
    let total = 0;
    for (const entry of entries) {
      const raw = entry.fileName as unknown as Buffer;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, raw, entry.extraFields, false);
      const unsafe = unsafeEntryName(name);
      if (unsafe) throw refuse(`entry ${JSON.stringify(name)}: ${unsafe}`);
      const kind = entryKind(entry.externalFileAttributes, entry.versionMadeBy, name);
      if (kind === 'symlink') throw refuse(`entry ${JSON.stringify(name)} is a symbolic link`);
      if (kind === 'special') throw refuse(`entry ${JSON.stringify(name)} is not a regular file or folder`);
      if (entry.isEncrypted()) throw refuse(`entry ${JSON.stringify(name)} is encrypted`);
      const key = name.replace(/\/$/, '');
      if (files.has(key) || dirs.has(key)) throw refuse(`entry ${JSON.stringify(key)} appears twice`);
      if (kind === 'dir') {
        dirs.add(key);
        continue;
      }
      if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) throw refuse(`entry ${JSON.stringify(name)} uses unsupported compression method ${entry.compressionMethod}`);
      const ratio = entry.uncompressedSize / Math.max(entry.compressedSize, 1);
      if (entry.uncompressedSize > limits.ratioFloorBytes && ratio > limits.maxRatio) {
        throw refuse(`entry ${JSON.stringify(name)} inflates ${Math.round(ratio)}:1 (${entry.uncompressedSize} bytes), more than ${limits.maxRatio}:1: a zip bomb`);
      }
      total += entry.uncompressedSize;
      if (total > limits.maxTotalBytes) throw refuse(`it unpacks to more than ${limits.maxTotalBytes} bytes (set ${envVars.maxMarBytes} to allow more)`);
      files.set(key, entry);
    }
    // Entries each under the per-entry floor (or sharing one compressed stream) can still add up
    // to a bomb: the archive as a whole may not inflate past the same ratio either.
    const archiveBytes = Math.max(fs.statSync(marPath).size, 1);
    if (total > limits.ratioFloorBytes && total / archiveBytes > limits.maxRatio) {
      throw refuse(`it inflates ${Math.round(total / archiveBytes)}:1 overall (${total} bytes from ${archiveBytes}), more than ${limits.maxRatio}:1: a zip bomb`);
    }
    // A file may not also be the folder of another entry ("a" and "a/b").
    for (const key of files.keys()) {
      for (let parent = path.posix.dirname(key); parent !== '.'; parent = path.posix.dirname(parent)) {
        if (files.has(parent)) throw refuse(`entry ${JSON.stringify(parent)} is both a file and a folder`);
      }
    }

    const manifestEntry = files.get(manifestName);
    if (!manifestEntry) throw badInput(`archive ${shown} has no ${manifestName}`, 'create the archive with `grpst archive` (it records a sha256 of every file)');
    const manifest = await readManifest(zip, manifestEntry, shown);
    files.delete(manifestName);
    const listed = new Map(manifest.files.map((f) => [f.path, f]));
    if (listed.size !== manifest.files.length) throw refuse('the manifest lists a file twice');
    for (const [name, entry] of files) {
      const want = listed.get(name);
      if (!want) throw refuse(`entry ${JSON.stringify(name)} is not in the manifest`);
      if (want.size !== entry.uncompressedSize) throw refuse(`entry ${JSON.stringify(name)} is ${entry.uncompressedSize} bytes, the manifest says ${want.size}`);
    }
    for (const name of listed.keys()) if (!files.has(name)) throw refuse(`${JSON.stringify(name)} is in the manifest but missing from the archive`);
    checkFreeSpace(dest, total, shown);

    for (const dir of dirs) fs.mkdirSync(safeJoin(dest, dir), { recursive: true });
    let bytes = 0;
    for (const [name, entry] of files) {
      const want = listed.get(name)!;
      const target = safeJoin(dest, name);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      const hash = createHash('sha256');
      const tap = new Transform({
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          done(null, chunk);
        },
      });
      const source = await zip.openReadStreamPromise(entry);
      try {
        await pipeline(source, tap, fs.createWriteStream(target, { flags: 'wx', mode: want.mode }));
      } catch (err) {
        // The disk filling up is not damage to the archive: the caller names the disk and the fix.
        if (isDiskFull(err)) throw err;
        throw refuse(`entry ${JSON.stringify(name)} is damaged: ${(err as Error).message}`);
      }
      if (hash.digest('hex') !== want.sha256) throw refuse(`checksum mismatch for ${JSON.stringify(name)} (the file was changed or corrupted after archiving)`);
      fs.chmodSync(target, want.mode);
      bytes += want.size;
    }
    return { manifest, files: files.size, bytes };
  } catch (err) {
    fs.rmSync(dest, { recursive: true, force: true });
    throw err;
  } finally {
    zip?.close();
  }
}

function safeJoin(dest: string, name: string): string {
  const target = path.resolve(dest, ...name.split('/'));
  // unsafeEntryName already refused anything that could leave; this is the last line of defence.
  if (!isInside(dest, target) || target === path.resolve(dest)) throw badInput(`archive entry ${JSON.stringify(name)} leaves the deploy folder`);
  return target;
}

function openZip(marPath: string, shown: string): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(marPath, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true }, (err, zip) => {
      if (err) reject(badInput(`archive ${shown} is not a valid .mar (zip): ${err.message}`, 'create it with `grpst archive` from the project folder'));
      else resolve(zip);
    });
  });
}

function readEntries(zip: ZipFile, shown: string): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: Entry[] = [];
    zip.on('entry', (entry: Entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.once('end', () => resolve(entries));
    zip.once('error', (err: Error) => reject(badInput(`archive ${shown} is damaged: ${err.message}`, 'recreate it with `grpst archive`')));
    zip.readEntry();
  });
}

async function readManifest(zip: ZipFile, entry: Entry, shown: string): Promise<Manifest> {
  if (entry.uncompressedSize > 64 * 1024 * 1024) throw badInput(`archive ${shown}: ${manifestName} is too large`, 'recreate it with `grpst archive`');
  const chunks: Buffer[] = [];
  for await (const chunk of await zip.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badInput(`archive ${shown}: ${manifestName} is not JSON`, 'recreate it with `grpst archive`');
  }
  const result = manifestSchema.safeParse(parsed);
  if (!result.success) throw badInput(`archive ${shown}: ${manifestName} is not a grpst manifest (${result.error.issues[0]?.message})`, 'recreate it with `grpst archive`');
  return result.data;
}

function checkFreeSpace(dest: string, needed: number, shown: string): void {
  let free: number;
  try {
    const stat = fs.statfsSync(dest);
    free = stat.bavail * stat.bsize;
  } catch {
    return;
  }
  if (needed > free) {
    throw badInput(`archive ${shown} unpacks to ${needed} bytes but ${path.dirname(dest)} has ${free} free`, 'free disk space, or set GRPST_HOME to a larger disk');
  }
}
