// Writes a .mar: a zip of the planned files plus the sha256 manifest. Each file is read once;
// its hash is taken while yazl deflates it. The archive appears under its name only when
// complete (temporary file, then rename); a failed write leaves no temporary file behind.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { pidAlive } from '../daemon/processes.js';
import { DiskLimit, diskFullError, isDiskFull } from '../util/disk-full.js';
import { badInput } from '../util/errors.js';
import { shellQuote } from '../util/shell.js';
import { manifestFormat, manifestName, manifestVersion, type Manifest, type ManifestFile } from './manifest.js';
import { planArchive, shouldCompress, type PlannedFile } from './project.js';

export interface WriteArchiveOptions {
  projectDir: string;
  output: string;
  includeEngine: boolean;
}

export interface WriteArchiveResult {
  output: string;
  files: number;
  bytes: number;
  notes: string[];
}

export async function writeArchive(opts: WriteArchiveOptions): Promise<WriteArchiveResult> {
  const projectDir = path.resolve(opts.projectDir);
  if (!fs.existsSync(projectDir)) {
    throw badInput(`project folder ${opts.projectDir} does not exist`, 'run `grpst archive DIR` with the folder that holds conf/');
  }
  if (!fs.statSync(projectDir).isDirectory()) {
    throw badInput(`${opts.projectDir} is a file, not a project folder`, `run \`grpst archive DIR\` with the folder that holds conf/, e.g. ${path.dirname(opts.projectDir)}`);
  }
  const output = path.resolve(opts.output);
  checkNotFolder(output, opts.output);
  if (!fs.existsSync(path.dirname(output))) {
    throw badInput(`output folder ${path.dirname(output)} does not exist`, 'create it first, or pass -o with an existing folder');
  }
  refuseNonArchive(output, opts.output);
  const plan = planArchive(projectDir, { includeEngine: opts.includeEngine, exclude: [output] });
  if (plan.files.length === 0) throw badInput(`project folder ${projectDir} holds no files to archive`, 'archive the folder that holds conf/');
  if (!plan.files.some((f) => /^conf\/inference.*\.ya?ml$/.test(f.name))) {
    plan.notes.push('no conf/inference*.yml in the project: `grpst start` will need --inference_conf with a file of its own');
  }

  plan.notes.push(...removeAbandonedTemps(output));
  const temp = `${output}.tmp-${process.pid}`;
  // Ctrl-C or SIGTERM mid-write: the default action would end the process with the partial
  // archive (up to the engine's size) left beside -o. The earlier archive there is untouched.
  const onSignal = (signal: NodeJS.Signals) => {
    fs.rmSync(temp, { force: true });
    process.stderr.write(`${signal}: archive interrupted; nothing was written${fs.existsSync(output) ? ` (${opts.output} is unchanged)` : ''}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  for (const sig of signals) process.on(sig, onSignal);
  try {
    const entries = await writeZip(plan.files, temp, plan.includesEngine);
    // (as tar and zip do, an existing archive is replaced; said, so a self-contained one is not lost unnoticed)
    if (fs.existsSync(output)) plan.notes.push(`${opts.output}: the existing archive (${fs.statSync(output).size} bytes) was replaced`);
    fs.renameSync(temp, output);
    return { output, files: entries.length, bytes: entries.reduce((n, e) => n + e.size, 0), notes: plan.notes };
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw explainWriteError(err, { output, temp, shown: opts.output });
  } finally {
    for (const sig of signals) process.off(sig, onSignal);
  }
}

/**
 * Partial archives of this -o left by a grpst archive that was killed outright (SIGKILL, power
 * loss): `<output>.tmp-<pid>` whose process is gone. Returns a note for each one removed.
 */
function removeAbandonedTemps(output: string): string[] {
  const dir = path.dirname(output);
  const prefix = `${path.basename(output)}.tmp-`;
  const notes: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return notes; // a folder that cannot be listed is answered by the write itself
  }
  for (const entry of entries) {
    const pid = entry.startsWith(prefix) ? Number(entry.slice(prefix.length)) : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    fs.rmSync(path.join(dir, entry), { force: true });
    notes.push(`removed ${path.join(dir, entry)}, left by an interrupted grpst archive`);
  }
  return notes;
}

/**
 * A write that failed on the archive's side (a full disk, a read-only or foreign folder) in words,
 * naming the archive the user asked for, not the temporary file beside it; exit 4 for a full disk
 * and 2 for a folder that cannot be written, as `grpst build` answers. A project file that cannot
 * be read keeps its own error, which names that file.
 */
function explainWriteError(err: unknown, at: { output: string; temp: string; shown: string }): unknown {
  const e = err as NodeJS.ErrnoException;
  if (e?.path !== undefined && e.path !== at.temp && e.path !== at.output) return err;
  const dir = path.dirname(at.output);
  if (isDiskFull(e)) return diskFullError(err, at.shown, dir, '-o with a path');
  const why: Record<string, string> = { EROFS: 'is on a read-only file system', EACCES: 'is not writable by this user', EPERM: 'is not writable by this user' };
  if (e?.code !== undefined && why[e.code]) {
    return badInput(`cannot write ${at.shown}: ${dir} ${why[e.code]} (${e.code}); nothing was left behind`, 'pass -o with a path in a folder you can write, e.g. -o ~/server.mar');
  }
  return err;
}

/** Test hook (as grpst build's): the disk fills up after GRPST_TEST_DISK_LIMIT_BYTES of the archive. */
function diskLimit(): Transform {
  const disk = new DiskLimit();
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      try {
        disk.add(chunk.length);
      } catch (full) {
        return done(full as Error);
      }
      done(null, chunk);
    },
  });
}

// -o takes the archive's file path, never a folder to put it in (an existing one included), so a
// path that names a folder is refused with the file path to pass instead.
function checkNotFolder(output: string, shown: string): void {
  const inside = shellQuote(path.join(shown, 'server.mar'));
  const existing = fs.statSync(output, { throwIfNoEntry: false });
  if (existing?.isDirectory()) throw badInput(`-o ${shown} is a folder`, `-o takes the archive's file path: pass -o ${inside}`);
  // A trailing separator names a folder even when none is there; path.resolve would drop it.
  if (!/[\\/]$/.test(shown)) return;
  const bare = shellQuote(shown.replace(/[\\/]+$/, ''));
  if (existing) {
    throw badInput(`-o ${shown} names a folder, but ${output} is a file`, `-o takes the archive's file path: pass -o ${bare} (only an earlier archive there is replaced) or another file path`);
  }
  throw badInput(
    `-o ${shown} names a folder, and that folder does not exist`,
    `-o takes the archive's file path, in a folder that exists: create it first (mkdir -p ${shellQuote(shown)}) and pass -o ${inside}, or pass -o ${bare}.mar`,
  );
}

// Replacing an earlier archive is what `-o` is for; replacing any other file (a conf, the
// project's README: one mistyped -o) would destroy it, so only a zip is replaced.
function refuseNonArchive(output: string, shown: string): void {
  const buf = Buffer.alloc(4);
  let head: Buffer;
  try {
    const fd = fs.openSync(output, 'r');
    try {
      head = buf.subarray(0, fs.readSync(fd, buf, 0, 4, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const zipMagic = [Buffer.from('PK\x03\x04', 'latin1'), Buffer.from('PK\x05\x06', 'latin1')];
  if (!zipMagic.some((m) => head.equals(m))) {
    throw badInput(`-o ${shown} exists and is not an archive; writing there would destroy it`, 'pass a new file path for the archive (e.g. -o server.mar), or remove that file first if it may go');
  }
}

async function writeZip(files: PlannedFile[], target: string, includesEngine: boolean): Promise<ManifestFile[]> {
  const zip = new yazl.ZipFile();
  const written = pipeline(zip.outputStream, diskLimit(), fs.createWriteStream(target, { flags: 'wx' }));
  const hashed = files.map((file) => {
    const mode = file.executable ? 0o755 : 0o644;
    return new Promise<ManifestFile>((resolve, reject) => {
      zip.addReadStreamLazy(
        file.name,
        { mode: 0o100000 | mode, compress: shouldCompress(file.name, file.size), size: file.size, mtime: new Date(0) },
        (cb) => {
          const source = 'real' in file.source ? fs.createReadStream(file.source.real) : Readable.from([file.source.data]);
          const hash = createHash('sha256');
          let size = 0;
          const tap = new Transform({
            transform(chunk: Buffer, _enc, done) {
              hash.update(chunk);
              size += chunk.length;
              done(null, chunk);
            },
            flush(done) {
              resolve({ path: file.name, size, sha256: hash.digest('hex'), mode });
              done();
            },
          });
          source.on('error', reject);
          cb(null, source.pipe(tap));
        },
      );
    });
  });
  // A failure of one file would leave the others waiting forever: race the hashes against the output.
  let entries: ManifestFile[];
  try {
    entries = await Promise.race([Promise.all(hashed), written.then(() => Promise.all(hashed))]);
  } catch (err) {
    (zip.outputStream as unknown as Readable).destroy();
    throw err;
  }
  const manifest: Manifest = { format: manifestFormat, version: manifestVersion, created: new Date().toISOString(), includesEngine, files: entries };
  zip.addBuffer(Buffer.from(JSON.stringify(manifest, null, 1)), manifestName, { mode: 0o100644, mtime: new Date(0) });
  zip.end();
  await written;
  return entries;
}
