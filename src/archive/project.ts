// Decides what goes into a .mar: the project folder (conf/, anything else it holds) minus what
// never belongs in a deploy (VCS data, caches, logs, other archives), engines only with
// --include_engine. Engines outside the project are copied in and the inference confs that point
// at them are rewritten to the copy, so the archive deploys anywhere.
import fs from 'node:fs';
import path from 'node:path';
import { isMap, isSeq, parseDocument } from 'yaml';
import { engineBackendOf } from '../config/engine-folder.js';
import { isInside } from '../config/paths.js';
import { badInput } from '../util/errors.js';
import { namesHubModelFrom } from '../hub/conf-paths.js';

/** One file of the archive: read from disk, or generated (a rewritten conf). */
export interface PlannedFile {
  /** Path inside the archive, "/"-separated. */
  name: string;
  source: { real: string } | { data: Buffer };
  size: number;
  executable: boolean;
}

export interface ArchivePlan {
  files: PlannedFile[];
  /** One line each: skipped symlinks, engines left out, confs that could not be read. */
  notes: string[];
  includesEngine: boolean;
}

const skippedNames = new Set(['.git', '.hg', '.svn', 'node_modules', '.cache', '__pycache__', '.DS_Store', '.pytest_cache']);
// Large binaries do not shrink under deflate; storing them keeps archive and extract fast.
const storedExtensions = new Set(['.safetensors', '.bin', '.engine', '.gguf', '.pt', '.pth', '.npy', '.onnx', '.plan']);
const weightExtensions = storedExtensions;

export function shouldCompress(name: string, size: number): boolean {
  return size < 64 * 1024 * 1024 && !storedExtensions.has(path.extname(name).toLowerCase());
}

export function planArchive(projectDir: string, opts: { includeEngine: boolean; exclude: string[] }): ArchivePlan {
  const root = path.resolve(projectDir);
  const excluded = new Set(opts.exclude.map((p) => path.resolve(p)));
  const plan: ArchivePlan = { files: [], notes: [], includesEngine: opts.includeEngine };
  const taken = new Set<string>();
  const add = (file: PlannedFile) => {
    taken.add(file.name);
    plan.files.push(file);
  };

  walk(root, '', (real, name, stat) => {
    if (excluded.has(real)) return;
    add({ name, source: { real }, size: stat.size, executable: (stat.mode & 0o111) !== 0 });
  }, (dir, name) => {
    if (!opts.includeEngine && engineBackendOf(dir)) {
      plan.notes.push(`${name}/: engine or model folder left out (pass --include_engine to pack it)`);
      return false;
    }
    return true;
  }, plan.notes);

  if (opts.includeEngine) copyOutsideEngines(root, plan, add, taken);
  else noteEnginesLeavingProject(root, plan);
  plan.files.sort((a, b) => a.name.localeCompare(b.name));
  return plan;
}

type OnFile = (real: string, name: string, stat: fs.Stats) => void;
type OnDir = (real: string, name: string) => boolean;

/**
 * A project folder or file this user may not read, refused before anything is written: as bad
 * input naming it and the fix, not a stack (a folder) or an exit 4 halfway through the write (a file).
 */
function unreadable(e: unknown, real: string, name: string, isDir: boolean): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code !== 'EACCES' && code !== 'EPERM') return e;
  return badInput(
    `cannot read ${name === '' ? 'the project folder' : `${name}${isDir ? '/' : ''} in the project`} (${real}, ${code})`,
    `make it readable (chmod ${isDir ? '-R u+rX' : 'u+r'} ${real}), or move it out of the project folder`,
  );
}

function walk(dir: string, prefix: string, onFile: OnFile, onDir: OnDir, notes: string[]): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  } catch (e) {
    throw unreadable(e, dir, prefix, true);
  }
  for (const entry of entries) {
    const real = path.join(dir, entry.name);
    const name = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (skippedNames.has(entry.name)) continue;
    if (prefix === '' && entry.name === 'logs') continue;
    if (entry.isSymbolicLink()) {
      notes.push(`${name}: symbolic link left out (archives hold plain files only; copy the target in)`);
      continue;
    }
    if (entry.isDirectory()) {
      if (onDir(real, name)) walk(real, name, onFile, onDir, notes);
    } else if (entry.isFile()) {
      if (entry.name.endsWith('.mar')) continue;
      try {
        fs.accessSync(real, fs.constants.R_OK);
      } catch (e) {
        throw unreadable(e, real, name, false);
      }
      onFile(real, name, fs.statSync(real));
    }
  }
}

/** The inference confs of a project (conf/inference*.yml), parsed; unparsable ones noted and skipped. */
function inferenceConfs(root: string, plan: ArchivePlan): { confName: string; doc: ReturnType<typeof parseDocument> }[] {
  const confDir = path.join(root, 'conf');
  if (!fs.existsSync(confDir)) return [];
  const out = [];
  for (const confName of fs.readdirSync(confDir).filter((f) => /^inference.*\.ya?ml$/.test(f)).sort()) {
    const doc = parseDocument(fs.readFileSync(path.join(confDir, confName), 'utf8'));
    if (doc.errors.length > 0 || !isMap(doc.contents)) {
      plan.notes.push(`conf/${confName}: not valid YAML, its engine was not looked for`);
      continue;
    }
    out.push({ confName, doc });
  }
  return out;
}

const argsPath = ['models', 0, 'inferer_args'];

/** The LoRA adapter folders a conf's lora_modules names ("name=path" or {name, path}), each with how to rewrite it. */
function loraFolders(doc: ReturnType<typeof parseDocument>): { label: string; written: string; rewrite: (to: string) => void }[] {
  const list = doc.getIn([...argsPath, 'lora_modules']);
  if (!isSeq(list)) return [];
  const out = [];
  for (let i = 0; i < list.items.length; i++) {
    const item = doc.getIn([...argsPath, 'lora_modules', i]);
    const label = `lora_modules[${i}]`;
    if (typeof item === 'string' && item.includes('=')) {
      const name = item.slice(0, item.indexOf('='));
      out.push({ label, written: item.slice(item.indexOf('=') + 1), rewrite: (to: string) => doc.setIn([...argsPath, 'lora_modules', i], `${name}=${to}`) });
    } else if (isMap(item) && typeof item.get('path') === 'string') {
      out.push({ label, written: item.get('path') as string, rewrite: (to: string) => doc.setIn([...argsPath, 'lora_modules', i, 'path'], to) });
    }
  }
  return out;
}

// Without --include_engine, a relative gpt_model_path that leaves the project can never resolve
// where the archive is deployed (grpst start refuses "../" paths): said now, not at start.
function noteEnginesLeavingProject(root: string, plan: ArchivePlan): void {
  for (const { confName, doc } of inferenceConfs(root, plan)) {
    for (const key of modelFolderKeys) {
      const written = doc.getIn([...argsPath, ...key]);
      if (typeof written === 'string' && !path.isAbsolute(written) && !isInside(root, path.resolve(root, written))) {
        plan.notes.push(`conf/${confName}: ${key.join('.')} ${written} leaves the project, so grpst start will refuse it; pass --include_engine to pack it, or write the path absolute`);
      }
    }
    for (const { label, written } of loraFolders(doc)) {
      if (!path.isAbsolute(written) && !isInside(root, path.resolve(root, written)))
        plan.notes.push(`conf/${confName}: ${label} ${written} leaves the project, so grpst start will refuse it; pass --include_engine to pack it, or write the path absolute`);
    }
  }
}

/** A Hugging Face id in a conf is no folder to pack: the machine that starts the archive pulls it. */
function hubNote(confName: string, label: string, id: string): string {
  return `conf/${confName}: ${label} ${id} names a Hugging Face model: not packed; grpst start pulls it (or takes it from the Hugging Face cache) where the archive runs`;
}

// The inference conf keys (under inferer_args) that name an engine or model folder: the model's
// engine, and the draft model of speculative decoding.
const modelFolderKeys = [['gpt_model_path'], ['speculative_config', 'model']];

// For each conf/inference*.yml whose engine, draft model or tokenizer lives outside the project:
// copy it to engines/<name>/ and add a rewritten conf that points there (relative to the deploy
// folder).
function copyOutsideEngines(root: string, plan: ArchivePlan, add: (f: PlannedFile) => void, taken: Set<string>): void {
  const confDir = path.join(root, 'conf');
  if (!fs.existsSync(confDir)) return;
  // Compared by their real paths: an engine reached through a symbolic link (models/x -> /data/x)
  // is not in the walk's files (links are left out), wherever the link itself sits.
  const realRoot = fs.realpathSync(root);
  const packedAt = (real: string): string | undefined => {
    const resolved = fs.realpathSync(real);
    return isInside(realRoot, resolved) ? path.relative(realRoot, resolved) : undefined;
  };
  const copied = new Map<string, string>();
  const copyFolder = (real: string, wanted: string, filter: (f: string) => boolean, deep: boolean): string => {
    const known = copied.get(real);
    if (known) return known;
    let target = `engines/${wanted}`;
    for (let i = 2; [...taken].some((t) => t.startsWith(`${target}/`)); i++) target = `engines/${wanted}-${i}`;
    walk(real, target, (file, name, stat) => {
      if (filter(file)) add({ name, source: { real: file }, size: stat.size, executable: false });
    }, () => deep, plan.notes);
    copied.set(real, target);
    return target;
  };

  for (const { confName, doc } of inferenceConfs(root, plan)) {
    const tokenizerPath = doc.getIn([...argsPath, 'tokenizer_path']);
    let changed = false;
    for (const key of modelFolderKeys) {
      const written = doc.getIn([...argsPath, ...key]);
      if (typeof written !== 'string') continue;
      const label = key.join('.');
      if (namesHubModelFrom(root, written)) {
        plan.notes.push(hubNote(confName, label, written));
        continue;
      }
      const real = path.resolve(root, written);
      if (!engineBackendOf(real)) {
        // A relative path resolves inside the unpacked archive, so it can only fail there; an
        // absolute one may exist on the machine that runs the archive.
        if (!path.isAbsolute(written))
          throw badInput(
            `conf/${confName}: ${label} ${written} is not an engine or model folder (${fs.existsSync(real) ? 'no engine.json or config.json in it' : 'it does not exist'}), so --include_engine has nothing to pack`,
            `build the engine there first (grpst build --output_dir ${real}) or point ${label} at an engine folder`,
          );
        plan.notes.push(`conf/${confName}: ${label} ${written} is not an engine folder on this machine; it must exist where the archive runs`);
        continue;
      }
      const inside = packedAt(real);
      if (inside === undefined) {
        const target = copyFolder(fs.realpathSync(real), path.basename(real) || 'engine', () => true, true);
        doc.setIn([...argsPath, ...key], `./${target}`);
        changed = true;
      } else if (inside !== path.relative(root, real)) {
        // A link inside the project to a folder inside it: the archive holds the folder itself.
        doc.setIn([...argsPath, ...key], `./${inside}`);
        changed = true;
      }
    }
    // LoRA adapters: small folders of their own (adapter_config.json and the weights), packed whole.
    for (const { label, written, rewrite } of loraFolders(doc)) {
      if (namesHubModelFrom(root, written)) {
        plan.notes.push(hubNote(confName, label, written));
        continue;
      }
      const real = path.resolve(root, written);
      if (!fs.existsSync(path.join(real, 'adapter_config.json'))) {
        if (!path.isAbsolute(written))
          throw badInput(
            `conf/${confName}: ${label} ${written} is not a LoRA adapter folder (${fs.existsSync(real) ? 'no adapter_config.json in it' : 'it does not exist'}), so --include_engine has nothing to pack`,
            `point ${label} at a folder PEFT saved an adapter to (save_pretrained)`,
          );
        plan.notes.push(`conf/${confName}: ${label} ${written} is not a LoRA adapter folder on this machine; it must exist where the archive runs`);
        continue;
      }
      const inside = packedAt(real);
      if (inside === undefined) {
        rewrite(`./${copyFolder(fs.realpathSync(real), `lora-${path.basename(real) || 'adapter'}`, () => true, true)}`);
        changed = true;
      } else if (inside !== path.relative(root, real)) {
        rewrite(`./${inside}`);
        changed = true;
      }
    }
    if (typeof tokenizerPath === 'string') {
      const real = path.resolve(root, tokenizerPath);
      const dir = fs.existsSync(real) && fs.statSync(real).isFile() ? path.dirname(real) : real;
      const inside = fs.existsSync(path.join(dir, 'tokenizer.json')) ? packedAt(dir) : '';
      if (inside !== undefined && inside !== '' && inside !== path.relative(root, dir)) {
        // Reached through a link inside the project to a folder inside it (as for the engine).
        doc.setIn([...argsPath, 'tokenizer_path'], `./${inside}`);
        changed = true;
      } else if (inside === undefined) {
        // Only the tokenizer's own files (top level, no weights): a checkpoint folder also holds
        // gigabytes of weights and, often, the engine built from it.
        const isSmallFile = (f: string) => !weightExtensions.has(path.extname(f)) && fs.statSync(f).size < 64 * 1024 * 1024;
        const realDir = fs.realpathSync(dir);
        const target = copied.get(realDir) ?? copyFolder(realDir, `${path.basename(dir) || 'model'}-tokenizer`, isSmallFile, false);
        doc.setIn([...argsPath, 'tokenizer_path'], `./${target}`);
        changed = true;
      }
    }
    if (changed) {
      const data = Buffer.from(doc.toString());
      const name = `conf/${confName}`;
      plan.files = plan.files.filter((f) => f.name !== name);
      add({ name, source: { data }, size: data.length, executable: false });
      plan.notes.push(`${name}: engine copied in; paths rewritten to the copy`);
    }
  }
}
