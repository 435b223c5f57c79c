// The daemon's log: one file per deploy (log_dir/grpst_server.log) that the server's stdout and
// stderr append to, rotated daily by copy-and-truncate so every writer (Node, native code,
// trtllm-serve) keeps its O_APPEND descriptor, with log_backup_count dated copies kept.
import fs from 'node:fs';
import path from 'node:path';

export const logFileName = 'grpst_server.log';

export function logFileIn(logDir: string): string {
  return path.join(logDir, logFileName);
}

/** YYYY-MM-DD in local time: the suffix of a rotated copy. */
export function dayStamp(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/**
 * Copies the live log to <file>.<day> (appending if that copy exists), truncates the live file,
 * and deletes the oldest copies beyond backupCount. Lines written between copy and truncate are
 * lost; at one rotation a day that window is a few milliseconds.
 */
export function rotateLog(file: string, day: string, backupCount: number): void {
  if (!fs.existsSync(file)) return;
  if (fs.statSync(file).size > 0) {
    fs.appendFileSync(`${file}.${day}`, fs.readFileSync(file));
    fs.truncateSync(file, 0);
  }
  pruneBackups(file, backupCount);
}

export function pruneBackups(file: string, backupCount: number): void {
  const base = path.basename(file);
  const dir = path.dirname(file);
  const copies = fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${base}.`) && /^\d{4}-\d{2}-\d{2}$/.test(f.slice(base.length + 1)))
    .sort();
  for (const old of copies.slice(0, Math.max(0, copies.length - backupCount))) fs.rmSync(path.join(dir, old), { force: true });
}

/**
 * Rotates at every local midnight while the process lives; a log left from an earlier day is
 * rotated at once. The timer does not keep the process alive.
 */
export function scheduleDailyRotation(file: string, backupCount: number, now: () => Date = () => new Date()): () => void {
  rotateStale(file, backupCount, now());
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const current = now();
    const midnight = new Date(current.getFullYear(), current.getMonth(), current.getDate() + 1, 0, 0, 0, 50);
    const finishedDay = dayStamp(current);
    timer = setTimeout(() => {
      try {
        rotateLog(file, finishedDay, backupCount);
      } catch (err) {
        process.stderr.write(`log rotation failed: ${(err as Error).message}\n`);
      }
      arm();
    }, midnight.getTime() - current.getTime());
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

/**
 * A log last written on an earlier day is rotated now (its day's copy), and backups past
 * `backupCount` are removed. `grpst serve` calls it before its first line (that line would make
 * the log today's: a server restarted daily before midnight would never rotate), and again with
 * the conf's count once it is read.
 */
export function rotateStale(file: string, backupCount: number, at: Date = new Date()): void {
  try {
    const lastWrite = fs.statSync(file).mtime;
    if (dayStamp(lastWrite) !== dayStamp(at) && fs.statSync(file).size > 0) rotateLog(file, dayStamp(lastWrite), backupCount);
    else pruneBackups(file, backupCount);
  } catch {
    // No log yet.
  }
}

/**
 * The last `count` lines of a file written after byte `from` and, when `to` is given, before byte
 * `to` (reads at most the last 256 KiB). `count` 0 is no lines, as `tail -n 0`: slice(-0) would
 * be every line.
 */
export function tailLines(file: string, count: number, from = 0, to?: number): string[] {
  if (count <= 0) return [];
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return [];
  }
  try {
    const size = Math.min(fs.fstatSync(fd).size, to ?? Infinity);
    // A log truncated by rotation since `from` was taken: read it all.
    const start = from > size ? 0 : from;
    const length = Math.min(size - start, 256 * 1024);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, size - length);
    const lines = buf.toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-count);
  } finally {
    fs.closeSync(fd);
  }
}

/** A logger whose lines carry a timestamp and level; writes to the given stream (stdout in the daemon). */
/**
 * INFO lines to `out`, WARN and ERROR to `err`: in the foreground (systemd, containers) severity
 * shows in which stream a line came on; a daemon's two streams append to the same log file.
 */
export function createLogger(out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Logger {
  const line = (to: NodeJS.WritableStream, level: string, text: string) => to.write(`${new Date().toISOString()} ${level} ${text}\n`);
  return { info: (t) => line(out, 'INFO', t), warn: (t) => line(err, 'WARN', t), error: (t) => line(err, 'ERROR', t) };
}

export interface Logger {
  info(text: string): void;
  warn(text: string): void;
  error(text: string): void;
}
