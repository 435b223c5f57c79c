// Whether a folder on this machine holds the model (engine, checkpoint or tokenizer) an archive
// packed, so a conf here that points at the folder and the archive's conf that points at the
// packed copy (`grpst archive --include_engine` rewrote the path) name the same model. A conf
// pointing at any other folder is a different conf, however alike the rest of it reads.
import fs from 'node:fs';
import path from 'node:path';

/** Files up to this size are compared whole; larger ones (weights) at spread-out windows. */
const wholeFileBytes = 4 * 1024 * 1024;
const windowBytes = 64 * 1024;
const windows = 16;

/**
 * An engine folder's engine.json records the size and sha256 of every other file, so equal
 * engine.json files are equal engines. Other folders (checkpoints, tokenizers, TensorRT-LLM
 * engines) list nothing: each file of the packed copy must be in the folder here with the same
 * bytes. The copy may hold fewer files (a tokenizer is packed without the weights beside it).
 */
export function holdsPackedModel(here: string, packed: string): boolean {
  const [mine, theirs] = [folderOf(here), folderOf(packed)];
  if (mine === undefined || theirs === undefined) return false;
  const manifest = 'engine.json';
  if (isFile(path.join(theirs, manifest))) return sameBytes(path.join(mine, manifest), path.join(theirs, manifest));
  const files = filesUnder(theirs);
  return files.length > 0 && files.every((f) => sameBytes(path.join(mine, f), path.join(theirs, f)));
}

/** The folder a model path names: a tokenizer path may name tokenizer.json itself. */
function folderOf(p: string): string | undefined {
  const stat = fs.statSync(p, { throwIfNoEntry: false });
  if (stat?.isDirectory()) return p;
  return stat?.isFile() ? path.dirname(p) : undefined;
}

function filesUnder(dir: string, prefix = ''): string[] {
  return fs.readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((e) => {
    const rel = path.join(prefix, e.name);
    return e.isDirectory() ? filesUnder(dir, rel) : e.isFile() ? [rel] : [];
  });
}

/**
 * Same size and same bytes. Weight files of gigabytes are compared at windows spread over the
 * whole file rather than read twice in full at every start: two checkpoints of one architecture
 * share sizes and safetensors headers, but not the weights the windows fall on.
 */
function sameBytes(a: string, b: string): boolean {
  const [sa, sb] = [fs.statSync(a, { throwIfNoEntry: false }), fs.statSync(b, { throwIfNoEntry: false })];
  if (!sa?.isFile() || !sb?.isFile() || sa.size !== sb.size) return false;
  if (sa.size <= wholeFileBytes) return fs.readFileSync(a).equals(fs.readFileSync(b));
  const [fa, fb] = [fs.openSync(a, 'r'), fs.openSync(b, 'r')];
  try {
    const [ba, bb] = [Buffer.alloc(windowBytes), Buffer.alloc(windowBytes)];
    for (let i = 0; i < windows; i++) {
      const at = Math.floor(((sa.size - windowBytes) * i) / (windows - 1));
      fs.readSync(fa, ba, 0, windowBytes, at);
      fs.readSync(fb, bb, 0, windowBytes, at);
      if (!ba.equals(bb)) return false;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() === true;
}
