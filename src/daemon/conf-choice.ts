// Which conf files `grpst start` deploys. --inference_conf / --server_conf name a file inside the
// archive (what was archived is what is deployed, with the paths --include_engine rewrote) or a
// file on this machine. A path written as a file here (absolute, or starting with ./ or ../)
// means the file here when it exists; a bare path (conf/x.yml) means the archive's when it holds
// one. When both exist and say different things, the one not deployed is named, with the flag
// that picks it. A file from here is copied into the deploy's conf/, so the server depends on no
// file outside the deploy folder.
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { isInside } from '../config/paths.js';
import { badInput } from '../util/errors.js';

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
  const archived = confsIn(staging, 'inference');
  const inference =
    input.inferenceConf !== undefined
      ? pick(input.inferenceConf, '--inference_conf', 'inference', { input, staging, cwd, warn })
      : fallback(staging, ['conf/inference.yml', ...(archived.length === 1 ? [archived[0]] : [])]);
  if (!inference) {
    throw badInput(
      archived.length === 0 ? `no inference conf given and ${input.mar} has no conf/inference*.yml` : `no inference conf given and ${input.mar} has several (${archived.map((f) => path.basename(f)).join(', ')})`,
      archived.length === 0
        ? 'pass one of your own (--inference_conf=./my-inference.yml), or put conf/inference.yml in the project folder and archive it again'
        : `pick one: ${archived.map((f) => `--inference_conf=${f}`).join(', ')}`,
    );
  }
  const server = input.serverConf !== undefined ? pick(input.serverConf, '--server_conf', 'server', { input, staging, cwd, warn }) : fallback(staging, ['conf/server.yml']);
  return { inference, server };
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

function pick(given: string, flag: string, kind: ConfKind, ctx: PickContext): ChosenConf {
  const { staging, cwd } = ctx;
  const candidate = path.resolve(staging, given);
  const inArchive = !path.isAbsolute(given) && isInside(staging, candidate) && isFile(candidate) ? candidate : undefined;
  const archiveName = inArchive && path.relative(staging, inArchive).split(path.sep).join('/');
  const local = path.resolve(cwd, given);
  const here = isFile(local) ? local : undefined;
  const writtenAsHere = path.isAbsolute(given) || /^\.\.?[\\/]/.test(given);

  if (here && writtenAsHere) {
    if (!inArchive || sameConf(here, inArchive, kind, staging)) return inArchive ? fromArchive(staging, inArchive, given) : copyIn(staging, here, given);
    ctx.warn(`${flag}=${given}: deploying ${here}; the archive's ${archiveName} differs and is not used (${flag}=${archiveName} deploys that one)`);
    return copyIn(staging, here, given);
  }
  if (inArchive) {
    if (here && !sameConf(here, inArchive, kind, staging)) {
      ctx.warn(`${flag}=${given}: deploying the archive's ${archiveName}; ${here} differs and is not used (${flag}=./${given.replace(/^[\\/]+/, '')} deploys that one)`);
    }
    return fromArchive(staging, inArchive, given);
  }
  if (here) return copyIn(staging, here, given);
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

function copyIn(staging: string, local: string, shown: string): ChosenConf {
  const relative = path.join('conf', path.basename(local));
  fs.mkdirSync(path.join(staging, 'conf'), { recursive: true });
  fs.copyFileSync(local, path.join(staging, relative));
  return { staged: path.join(staging, relative), relative, shown, origin: `${local}, a file here` };
}

function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() === true;
}

/**
 * Whether the file here and the archive's say the same. An inference conf whose only differences
 * are engine and tokenizer paths that, in the archive, point at folders packed in it is the same
 * conf: the one `grpst archive --include_engine` rewrote to the copies.
 */
function sameConf(here: string, archived: string, kind: ConfKind, staging: string): boolean {
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
        const packed = t[key];
        if (typeof packed === 'string' && !path.isAbsolute(packed) && isInside(staging, path.resolve(staging, packed)) && fs.existsSync(path.resolve(staging, packed))) {
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
