// The output folder of a build is written as a temporary sibling and renamed into place at the
// end, so a failed, interrupted or out-of-space build leaves nothing behind at --output_dir.
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { pidAlive } from '../daemon/processes.js';
import { DiskLimit, diskFullError, isDiskFull } from '../util/disk-full.js';
import { badInput } from '../util/errors.js';
import { makeFolders, nearestExisting } from '../util/folders.js';
import { MANIFEST_FILE } from './manifest.js';

export { diskLimitEnv } from '../util/disk-full.js';

/** Staging folders of this process not yet committed or aborted: removed if the process exits. */
const live = new Set<Staging>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const s of live) s.abort();
  });
}

/** Written first into every staging folder: marks it as a build's, so a later build may remove it. */
export const STAGING_MARKER = '.grpst-staging';

/**
 * Removes staging folders of earlier builds whose process is gone (killed with SIGKILL, power
 * loss): those of the same output, and those of any output in the same folder that carry the
 * marker (an FP8 build's may hold a float copy of the model). Returns the folders removed.
 */
function removeStale(parent: string, name: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(parent);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const e of entries) {
    const m = /^\.(.+)\.(?:tmp|old)-(\d+)$/.exec(e);
    if (!m || Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
    const dir = join(parent, e);
    if (m[1] !== name && !existsSync(join(dir, STAGING_MARKER))) continue; // not provably a build's
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

export class Staging {
  readonly output: string;
  readonly tmp: string;
  /** Test hook: the disk fills up after GRPST_TEST_DISK_LIMIT_BYTES written through the staging folder. */
  private readonly disk = new DiskLimit();
  private finished = false;
  /** Staging folders of interrupted earlier builds that begin() removed, for the build to report. */
  readonly removedStale: string[] = [];
  /** The folders above --output_dir that begin() created, outermost first: a failed build removes them again. */
  private readonly createdParents: string[];

  private constructor(output: string, tmp: string, createdParents: string[]) {
    this.output = output;
    this.tmp = tmp;
    this.createdParents = createdParents;
  }

  /** Checks the output folder may be written, then creates the temporary one beside it. */
  static begin(outputDir: string, force: boolean, modelDir?: string): Staging {
    const output = resolve(outputDir);
    checkOutput(output, force, modelDir);
    const parent = dirname(output);
    const createdParents: string[] = [];
    for (let at = parent, top = nearestExisting(parent); at !== top; at = dirname(at)) createdParents.unshift(at);
    try {
      makeFolders(parent);
    } catch (e) {
      throw badInput(`cannot create ${parent}: ${(e as Error).message}`, 'pass an --output_dir on a writable disk');
    }
    const removed = removeStale(parent, basename(output));
    const tmp = join(parent, `.${basename(output)}.tmp-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    try {
      mkdirSync(tmp);
      writeFileSync(join(tmp, STAGING_MARKER), `${process.pid}\n`);
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw badInput(`cannot write in ${parent}: ${(e as Error).message}`, 'pass an --output_dir on a writable disk');
    }
    const staging = new Staging(output, tmp, createdParents);
    staging.removedStale.push(...removed);
    live.add(staging);
    installExitHook();
    return staging;
  }

  path(...parts: string[]): string {
    return join(this.tmp, ...parts);
  }

  /** Counts bytes about to be written; throws ENOSPC past the test limit. */
  account(bytes: number): void {
    this.disk.add(bytes);
  }

  /** Moves the finished folder into place (replacing an old one only under --force). */
  commit(force: boolean): void {
    checkOutput(this.output, force); // again: another build may have written it meanwhile
    rmSync(join(this.tmp, STAGING_MARKER), { force: true }); // the engine is no longer a staging folder
    let old: string | undefined;
    if (existsSync(this.output)) {
      old = join(dirname(this.output), `.${basename(this.output)}.old-${process.pid}`);
      renameSync(this.output, old);
    }
    renameSync(this.tmp, this.output);
    this.finished = true;
    live.delete(this);
    if (old) rmSync(old, { recursive: true, force: true });
  }

  /** Removes the temporary folder; safe to call more than once and after commit. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    live.delete(this);
    rmSync(this.tmp, { recursive: true, force: true });
    // Innermost first, and only while empty: something another process put there meanwhile stays.
    for (const dir of [...this.createdParents].reverse()) {
      try {
        rmdirSync(dir);
      } catch {
        break;
      }
    }
  }
}

/** Whether `inner` is `outer` or lies somewhere under it. */
function within(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/**
 * What a build with these settings would refuse about --output_dir (also run by --dry-run). The
 * folder is replaced whole at the end, so it may never hold the checkpoint or the current folder,
 * and --force replaces only what a build made (a folder with engine.json) or an empty folder:
 * `--output_dir .` or a checkpoint folder by mistake must not delete anything.
 */
export function checkOutput(output: string, force: boolean, modelDir?: string): void {
  const model = modelDir === undefined ? undefined : resolve(modelDir);
  if (model !== undefined && within(model, output)) {
    throw badInput(
      model === output ? `--output_dir ${output} is the checkpoint folder (--model_dir)` : `--output_dir ${output} holds the checkpoint folder ${model} (--model_dir)`,
      `pass an --output_dir of its own, e.g. ${join(model, 'engine')}`,
    );
  }
  if (within(process.cwd(), output)) {
    throw badInput(`--output_dir ${output} is the current folder or holds it; the build replaces its output folder whole`, `pass an --output_dir of its own, e.g. ${join(output, 'engine')}`);
  }
  if (!existsSync(output)) return;
  if (!statSync(output).isDirectory()) {
    throw badInput(`--output_dir ${output} exists and is a file`, 'pass a folder path that does not exist yet');
  }
  const entries = readdirSync(output);
  if (entries.length === 0) return;
  if (!force) {
    throw badInput(`--output_dir ${output} already exists`, 'pass --force to replace it, or choose another --output_dir');
  }
  if (!entries.includes(MANIFEST_FILE)) {
    throw badInput(
      `--output_dir ${output} is not an engine folder (no ${MANIFEST_FILE}), and --force replaces only engines a build wrote`,
      'choose another --output_dir, or empty that folder yourself if its files may go',
    );
  }
}

/** Turns an out-of-space error into one that says where space is needed. */
export function explainWriteError(e: unknown, where: string): unknown {
  return isDiskFull(e) ? diskFullError(e, where, dirname(where), 'an --output_dir') : e;
}
