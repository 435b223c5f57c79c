// Which conf files `grpst start` deploys. --inference_conf / --server_conf name a file inside the
// archive (what was archived is what is deployed, with the paths --include_engine rewrote) or a
// file on this machine. A path written as a file here (absolute, or starting with ./ or ../)
// means the file here when it exists; a bare path (conf/x.yml) means the archive's when it holds
// one. When both exist and say different things, the one not deployed is named, with the flag
// that picks it; the archive's conf --include_engine rewrote is the same conf only while the file
// here still points at the engine that was packed. A file from here is copied into the deploy's
// conf/, so the server depends on no file outside the deploy folder.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { isInside } from '../config/paths.js';
import { badInput } from '../util/errors.js';
import { holdsPackedModel } from './same-model.js';

export interface ChosenConf {
  /** The copy inside the staging folder that is validated. */
  staged: string;
  /** Path relative to the deploy folder, where the daemon reads it. */
  relative: string;
  /** How the user sees it in messages. */
  shown: string;
  /** Where it came from, for the progress line. */
  origin: string;
}

export interface ConfRequest {
  mar: string;
  inferenceConf?: string;
  serverConf?: string;
}

type ConfKind = 'inference' | 'server';

const confPattern: Record<ConfKind, RegExp> = { inference: /^inference.*\.ya?ml$/, server: /^server.*\.ya?ml$/ };

/** The confs to deploy; `warn` hears of a file of the same name that was not used. */
export function chooseConfs(input: ConfRequest, staging: string, cwd: string, warn: (text: string) => void): { inference: ChosenConf; server?: ChosenConf } {
  const ctx = { input, staging, cwd, warn };
  const archived = confsIn(staging, 'inference');
  const inference =
    input.inferenceConf !== undefined
      ? pick(input.inferenceConf, '--inference_conf', 'inference', ctx)
      : fallback(staging, ['conf/inference.yml', ...(archived.length === 1 ? [archived[0]] : [])]);
  if (!inference) {
    throw badInput(
      archived.length === 0 ? `no inference conf given and ${input.mar} has no conf/inference*.yml` : `no inference conf given and ${input.mar} has several (${archived.map((f) => path.basename(f)).join(', ')})`,
      archived.length === 0
        ? 'pass one of your own (--inference_conf=./my-inference.yml), or put conf/inference.yml in the project folder and archive it again'
        : `pick one: ${archived.map((f) => `--inference_conf=${f}`).join(', ')}`,
    );
  }
  const server = input.serverConf !== undefined ? pick(input.serverConf, '--server_conf', 'server', ctx) : fallback(staging, ['conf/server.yml']);
  // Files here are copied in only once both are chosen: a copy must not replace the archive's
  // file the other conf deploys, nor the other copy (./a/my.yml and ./b/my.yml).
  const deployed = [inference, server].flatMap((c) => (c && !('local' in c) ? [c.relative] : []));
  return { inference: copyIn(staging, inference, 'inference', deployed), server: server && copyIn(staging, server, 'server', deployed) };
}

/** The progress line's words for where the confs come from. */
export function describeConfs(confs: { inference: ChosenConf; server?: ChosenConf }): string {
  return `inference: ${confs.inference.origin}; server: ${confs.server ? confs.server.origin : 'none, the built-in defaults'}`;
}

/** The archive's confs of a kind, as "conf/<file>", sorted. */
function confsIn(staging: string, kind: ConfKind): string[] {
  const dir = path.join(staging, 'conf');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => confPattern[kind].test(f)).sort().map((f) => `conf/${f}`) : [];
}

function fallback(staging: string, candidates: string[]): ChosenConf | undefined {
  const found = candidates.find((c) => isFile(path.join(staging, c)));
  return found === undefined ? undefined : fromArchive(staging, path.join(staging, found), found);
}

interface PickContext {
  input: ConfRequest;
  staging: string;
  cwd: string;
  warn: (text: string) => void;
}

/** A conf here, chosen but not yet copied into the staging folder. */
interface LocalConf {
  local: string;
  shown: string;
}

function pick(given: string, flag: string, kind: ConfKind, ctx: PickContext): ChosenConf | LocalConf {
  const { staging, cwd } = ctx;
  const candidate = path.resolve(staging, given);
  const inArchive = !path.isAbsolute(given) && isInside(staging, candidate) && isFile(candidate) ? candidate : undefined;
  const archiveName = inArchive && path.relative(staging, inArchive).split(path.sep).join('/');
  const local = path.resolve(cwd, given);
  const here = isFile(local) ? local : undefined;
  const writtenAsHere = path.isAbsolute(given) || /^\.\.?[\\/]/.test(given);

  if (here && writtenAsHere) {
    if (!inArchive || sameConf(here, inArchive, kind, ctx)) return inArchive ? fromArchive(staging, inArchive, given) : { local: here, shown: given };
    ctx.warn(`${flag}=${given}: deploying ${here}; the archive's ${archiveName} differs and is not used (${flag}=${archiveName} deploys that one)`);
    return { local: here, shown: given };
  }
  if (inArchive) {
    if (here && !sameConf(here, inArchive, kind, ctx)) {
      ctx.warn(`${flag}=${given}: deploying the archive's ${archiveName}; ${here} differs and is not used (${flag}=./${given.replace(/^[\\/]+/, '')} deploys that one)`);
    }
    return fromArchive(staging, inArchive, given);
  }
  if (here) return { local: here, shown: given };
  // The archive's own confs of that kind are the likely answer to a typo.
  const held = confsIn(staging, kind);
  throw badInput(
    `${flag}=${given}: no such file in ${ctx.input.mar} or in ${cwd}`,
    held.length > 0 ? `the archive holds ${held.map((f) => `${flag}=${f}`).join(', ')}` : `the archive has no conf/${kind}*.yml: pass the path of a conf file here, e.g. ${flag}=./${kind}.yml`,
  );
}

function fromArchive(staging: string, staged: string, shown: string): ChosenConf {
  const relative = path.relative(staging, staged);
  return { staged, relative, shown, origin: `${relative.split(path.sep).join('/')} of the archive` };
}

/**
 * A conf here is copied to conf/ under its own name, or, when that name is taken by the other
 * conf deployed, under its name with the kind added (my.yml, my-server.yml).
 */
function copyIn(staging: string, chosen: ChosenConf | LocalConf, kind: ConfKind, taken: string[]): ChosenConf {
  if (!('local' in chosen)) return chosen;
  const { name, ext } = path.parse(chosen.local);
  let relative = path.join('conf', `${name}${ext}`);
  for (let n = 1; taken.includes(relative); n++) relative = path.join('conf', `${name}-${kind}${n > 1 ? `-${n}` : ''}${ext}`);
  taken.push(relative);
  fs.mkdirSync(path.join(staging, 'conf'), { recursive: true });
  fs.copyFileSync(chosen.local, path.join(staging, relative));
  return { staged: path.join(staging, relative), relative, shown: chosen.shown, origin: `${chosen.local}, a file here` };
}

function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() === true;
}

/**
 * Whether the file here and the archive's say the same. An inference conf whose only differences
 * are engine and tokenizer paths is the same conf when, in the archive, they point at folders
 * packed in it and, here, at the folders those were packed from: the conf `grpst archive
 * --include_engine` rewrote to the copies. A relative path here is read from the current folder,
 * as `grpst archive` read it in the project folder.
 */
function sameConf(here: string, archived: string, kind: ConfKind, ctx: PickContext): boolean {
  const [a, b] = [fs.readFileSync(here, 'utf8'), fs.readFileSync(archived, 'utf8')];
  if (a === b) return true;
  let mine: unknown;
  let theirs: unknown;
  try {
    [mine, theirs] = [parse(a), parse(b)];
  } catch {
    return false;
  }
  if (kind === 'inference') {
    for (const [m, t] of pairedInfererArgs(mine, theirs)) {
      for (const key of ['gpt_model_path', 'tokenizer_path']) {
        const [local, packed] = [m[key], t[key]];
        if (typeof local !== 'string' || typeof packed !== 'string' || local === packed) continue;
        const copy = path.resolve(ctx.staging, packed);
        if (path.isAbsolute(packed) || !isInside(ctx.staging, copy)) continue;
        if (holdsPackedModel(path.resolve(ctx.cwd, local), copy)) {
          delete m[key];
          delete t[key];
        }
      }
    }
  }
  return JSON.stringify(mine) === JSON.stringify(theirs);
}

/** models[i].inferer_args of both confs, pair by pair (mutable: the caller drops keys from both). */
function pairedInfererArgs(mine: unknown, theirs: unknown): [Record<string, unknown>, Record<string, unknown>][] {
  const models = (conf: unknown) => ((conf as { models?: unknown })?.models instanceof Array ? ((conf as { models: unknown[] }).models) : []);
  const args = (model: unknown) => {
    const a = (model as { inferer_args?: unknown } | null)?.inferer_args;
    return a !== null && typeof a === 'object' && !Array.isArray(a) ? (a as Record<string, unknown>) : undefined;
  };
  const out: [Record<string, unknown>, Record<string, unknown>][] = [];
  models(mine).forEach((model, i) => {
    const [m, t] = [args(model), args(models(theirs)[i])];
    if (m && t) out.push([m, t]);
  });
  return out;
}
