// Hostile archives and confs beyond the unit tests of src/archive and src/config: archives whose
// sizes lie, bombs built from many small entries, entry names from other systems, conf paths
// that climb out of the deploy folder through every path key, and YAML bombs shipped inside a
// .mar and refused by `grpst start` before anything is deployed.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyEngine } from '../../bench/soak-daemon.js';
import { defaultLimits, extractArchive } from '../../src/archive/extract.js';
import { manifestName } from '../../src/archive/manifest.js';
import { loadDeployment } from '../../src/config/resolve.js';
import { GrpstError } from '../../src/util/errors.js';
import { repoRoot } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';
import { rawZip, type RawEntry } from '../helpers/raw-zip.js';

let tmp: string;
let engine: string;
let cli: Cli;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-hostile-'));
  cli = makeCli();
  engine = await tinyEngine(cli);
}, 600_000);

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A .mar whose manifest vouches for every entry as given (sizes as declared). */
function marOf(entries: RawEntry[], sizes: Record<string, number> = {}): Buffer {
  const files = entries.map((e) => ({ path: e.name, size: sizes[e.name] ?? (e.data ?? Buffer.alloc(0)).length, sha256: sha(e.data ?? Buffer.alloc(0)), mode: 0o644 }));
  const manifest = { format: 'grpst-mar', version: 1, created: new Date().toISOString(), includesEngine: false, files };
  return rawZip([...entries, { name: manifestName, data: Buffer.from(JSON.stringify(manifest)) }]);
}

/** Sets the uncompressed size of `name` in its local and central headers: an archive that lies. */
function lieAboutSize(zip: Buffer, name: string, size: number): Buffer {
  const out = Buffer.from(zip);
  const raw = Buffer.from(name);
  for (let i = 0; i + 4 <= out.length; i++) {
    const sig = out.readUInt32LE(i);
    if (sig === 0x04034b50 && out.subarray(i + 30, i + 30 + raw.length).equals(raw)) out.writeUInt32LE(size, i + 22);
    if (sig === 0x02014b50 && out.subarray(i + 46, i + 46 + raw.length).equals(raw)) out.writeUInt32LE(size, i + 24);
  }
  return out;
}

async function refused(mar: Buffer): Promise<string> {
  const root = fs.mkdtempSync(path.join(tmp, 'case-'));
  fs.writeFileSync(path.join(root, 'server.mar'), mar);
  const dest = path.join(root, 'deploy');
  const err = await extractArchive(path.join(root, 'server.mar'), dest, defaultLimits()).then(
    () => new Error('the archive was extracted'),
    (e: unknown) => e as Error,
  );
  expect(err).toBeInstanceOf(GrpstError);
  expect(fs.readdirSync(root)).toEqual(['server.mar']);
  return err.message;
}

describe('hostile archives', () => {
  it('an entry that inflates far past the size it declares is cut off at that size and refused', async () => {
    const zeros = Buffer.alloc(64 * 1024 * 1024);
    const mar = lieAboutSize(marOf([{ name: 'conf/a.yml', data: zeros, deflate: true }], { 'conf/a.yml': 1000 }), 'conf/a.yml', 1000);
    expect(mar.length).toBeLessThan(200_000);
    const t0 = performance.now();
    expect(await refused(mar)).toMatch(/entry "conf\/a\.yml" is damaged: .*(too many bytes|byte count)/i);
    expect(performance.now() - t0).toBeLessThan(30_000);
  });

  it('a bomb of many entries, each under the per-entry ratio floor: refused by the overall ratio', async () => {
    const mib = Buffer.alloc(1024 * 1024);
    const mar = marOf(Array.from({ length: 300 }, (_, i) => ({ name: `blob/${i}.bin`, data: mib, deflate: true })));
    expect(mar.length).toBeLessThan(1024 * 1024);
    expect(await refused(mar)).toMatch(/inflates \d+:1 overall \(3\d{8} bytes from \d+\), more than 200:1: a zip bomb/);
    // A real archive with compressible text (an 11 MB tokenizer.json) stays well under it.
    const tokenizer = fs.readFileSync(path.join(engine, 'tokenizer.json'));
    const root = fs.mkdtempSync(path.join(tmp, 'ok-'));
    fs.writeFileSync(path.join(root, 'server.mar'), marOf([{ name: 'engine/tokenizer.json', data: tokenizer, deflate: true }]));
    await extractArchive(path.join(root, 'server.mar'), path.join(root, 'deploy'));
    expect(fs.readFileSync(path.join(root, 'deploy', 'engine', 'tokenizer.json')).equals(tokenizer)).toBe(true);
  });

  it('entry names from other systems that could leave the deploy folder', async () => {
    const cases: [string, RegExp][] = [
      // Backslashes are read as separators (as the zip reader normalizes them), so these climb.
      ['..\\..\\evil.txt', /backslash in name|climbs out/],
      ['conf\\..\\..\\evil', /backslash in name|climbs out/],
      ['C:/Windows/evil', /absolute path/],
      ['./conf/a.yml', /empty or "\." path segment/],
      ['conf//a.yml', /empty or "\." path segment/],
      ['conf/a.yml\0.txt', /NUL character/],
      [`${'x'.repeat(300)}/a`, /longer than 255 bytes/],
    ];
    for (const [name, why] of cases) expect(await refused(marOf([{ name, data: Buffer.from('x') }]))).toMatch(why);
  });
});

describe('conf paths that leave the deploy folder', () => {
  const deploy = () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'deploy-'));
    fs.mkdirSync(path.join(dir, 'conf'));
    return dir;
  };
  const inference = (dir: string, edit: (t: string) => string = (t) => t) => {
    const file = path.join(dir, 'conf', 'inference.yml');
    fs.writeFileSync(file, edit(fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engine)));
    return file;
  };
  const errorOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(GrpstError);
      return (err as GrpstError).message;
    }
    throw new Error('accepted');
  };

  it('gpt_model_path, tokenizer_path, api_key_file and log_dir written with "../" are refused, naming the key', () => {
    const dir = deploy();
    for (const key of ['gpt_model_path', 'tokenizer_path']) {
      const file = inference(dir, (t) => t.replace(new RegExp(`${key}: .*`), `${key}: ../../../../etc`));
      expect(errorOf(() => loadDeployment({ inferenceConf: file, deployPath: dir, env: {} }))).toMatch(new RegExp(`${key}: "\\.\\./\\.\\./\\.\\./\\.\\./etc" leaves the deploy folder`));
    }
    const conf = inference(dir);
    for (const [yml, key] of [
      ['api_key_file: ../../../../etc/shadow\n', 'api_key_file'],
      ['log:\n  log_dir: conf/../../outside\n', 'log.log_dir'],
    ]) {
      const server = path.join(dir, 'conf', 'server.yml');
      fs.writeFileSync(server, yml);
      expect(errorOf(() => loadDeployment({ inferenceConf: conf, serverConf: server, deployPath: dir, env: {} }))).toContain(`${key}: "`);
    }
  });
});

describe('hostile confs inside a .mar', () => {
  async function startWith(name: string, serverYml: string) {
    const dir = path.join(tmp, name);
    fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'conf', 'inference_tiny.yml'), fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', engine));
    fs.writeFileSync(path.join(dir, 'conf', 'server.yml'), serverYml);
    expect((await cli.run(['archive', '.'], { cwd: dir })).code).toBe(0);
    const res = await cli.run(['start', './server.mar', '--inference_conf=conf/inference_tiny.yml', '--server_conf=conf/server.yml', '--name', name], { cwd: dir });
    // Refused before anything was deployed, registered or started.
    expect(res.code).toBe(2);
    expect(fs.existsSync(path.join(cli.home, name))).toBe(false);
    expect(fs.existsSync(path.join(cli.home, '.run', `${name}.json`))).toBe(false);
    return res.stderr;
  }

  it('an alias bomb, a nesting bomb and a log_dir climbing out: grpst start says which file and why', async () => {
    const bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 12; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`);
    expect(await startWith('aliases', `${bomb.join('\n')}\n`)).toMatch(/conf\/server\.yml: Excessive alias count/);
    expect(await startWith('nesting', `max_queue: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`)).toMatch(/conf\/server\.yml:\d+:\d+: YAML syntax error/);
    expect(await startWith('climber', 'log:\n  log_dir: ../../../../tmp/grpst-escape\n')).toMatch(/log\.log_dir: "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/grpst-escape" leaves the deploy folder/);
    expect(fs.existsSync('/tmp/grpst-escape')).toBe(false);
  });
});
