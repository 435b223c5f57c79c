// Which conf `grpst start` deploys, said and chosen as docs/cli.md says: a path written as a file
// here (./, ../, absolute) is the file here, a bare one the archive's; when both exist and differ
// the other is named with the flag that picks it, and the confs --include_engine rewrote are no
// difference while the file here points at the model that was packed (another model is). Two
// files here of one name are both deployed. An archive with several confs or none is answered
// with its own files, and the two confs swapped are said to be. For a stopped server, `grpst
// stop` says it is not running, not that it never existed. And the environment's numbers are
// refused by name before anything is deployed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/daemon/ports.js';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';
import { makeCli, type Cli } from '../helpers/grpst-cli.js';

let work: string;
let cli: Cli;
let port: number;
let tinyConf: string;

/**
 * A project with conf/ files {name: text} and copies of model folders {path in the project: folder},
 * archived (self-contained) to <dir>.mar; returns the archive.
 */
async function archived(name: string, confs: Record<string, string>, models: Record<string, string> = {}): Promise<string> {
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'conf'), { recursive: true });
  for (const [file, text] of Object.entries(confs)) fs.writeFileSync(path.join(dir, 'conf', file), text);
  for (const [at, folder] of Object.entries(models)) fs.cpSync(folder, path.join(dir, at), { recursive: true });
  const mar = path.join(work, `${name}.mar`);
  const r = await cli.run(['archive', dir, '-o', mar, '--include_engine']);
  expect(r.code, r.stderr).toBe(0);
  return mar;
}

const named = (id: string) => tinyConf.replace('served_model_name: qwen3', `served_model_name: ${id}`);
const serverOn = (p: number) => `interface:\n  host: 127.0.0.1\n  port: ${p}\n`;
const served = async () => ((await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json()) as { data: { id: string }[] }).data.map((m) => m.id);
const nothingDeployed = (name: string) => {
  expect(fs.existsSync(path.join(cli.home, name)), name).toBe(false);
  expect(fs.existsSync(path.join(cli.home, '.run', `${name}.json`)), name).toBe(false);
};

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-lifecycle-confs-'));
  cli = makeCli();
  port = await freePort('127.0.0.1');
  tinyConf = fs.readFileSync(path.join(repoRoot, 'conf', 'inference_tiny.yml'), 'utf8').replaceAll('./models/qwen3-tiny/engine', checkpoint('tiny-a'));
});

// A test that fails leaves no server behind for the next one (a name or port still taken).
afterEach(async () => {
  for (const name of ['conf-pick', 'stopped']) await cli.run(['stop', name, '--timeout', '5']);
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(cli.home, { recursive: true, force: true });
});

describe('grpst start picks the conf', () => {
  it('an archive with several inference confs, or none: the fix names its own files', async () => {
    const server = serverOn(port);
    const several = await archived('several', { 'inference_a.yml': tinyConf, 'inference_b.yml': tinyConf, 'server.yml': server });
    const r = await cli.run(['start', several, '--name', 'several'], { cwd: work });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has several (inference_a.yml, inference_b.yml)');
    expect(r.stderr).toContain('fix: pick one: --inference_conf=conf/inference_a.yml, --inference_conf=conf/inference_b.yml');
    expect(r.stderr).not.toContain('inference_qwen3');
    const none = await archived('none', { 'server.yml': server });
    const bare = await cli.run(['start', none, '--name', 'none'], { cwd: work });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('has no conf/inference*.yml');
    expect(bare.stderr).toContain('fix: pass one of your own (--inference_conf=./my-inference.yml), or put conf/inference.yml in the project folder and archive it again');
    for (const name of ['several', 'none']) nothingDeployed(name);
  });

  it('the two confs swapped, or one given to both flags: said as that, with the flag each belongs to', async () => {
    const mar = await archived('swapped', { 'inference.yml': tinyConf, 'server.yml': serverOn(port) });
    const swapped = await cli.run(['start', mar, '--name', 'swapped', '--inference_conf', 'conf/server.yml', '--server_conf', 'conf/inference.yml'], { cwd: work });
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toContain('error: conf/server.yml is a server conf (interface:, no models:), given as the inference conf\n  fix: pass it as --server_conf, and an inference conf (models:) as --inference_conf');
    expect(swapped.stderr).not.toContain('unknown key');
    const twice = await cli.run(['start', mar, '--name', 'swapped', '--server_conf', 'conf/inference.yml'], { cwd: work });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('error: conf/inference.yml is an inference conf (models:), given as the server conf\n  fix: pass it as --inference_conf, and a server conf (interface:) as --server_conf');
    nothingDeployed('swapped');
  });

  it('./conf/x.yml deploys the file here, conf/x.yml the archive\'s; each run says which, and names the one not used', async () => {
    const mar = await archived('ambiguous', { 'inference.yml': named('from-archive'), 'server.yml': serverOn(port) });
    const here = path.join(work, 'here');
    fs.mkdirSync(path.join(here, 'conf'), { recursive: true });
    fs.writeFileSync(path.join(here, 'conf', 'inference.yml'), named('from-here'));

    const local = await cli.run(['start', mar, '--inference_conf=./conf/inference.yml', '--name', 'conf-pick'], { cwd: here });
    expect(local.code, local.stderr).toBe(0);
    expect(await served()).toEqual(['from-here']);
    expect(local.stderr).toContain(`validating the confs (inference: ${path.join(here, 'conf', 'inference.yml')}, a file here; server: conf/server.yml of the archive)`);
    expect(local.stderr).toContain("the archive's conf/inference.yml differs and is not used (--inference_conf=conf/inference.yml deploys that one)");
    expect((await cli.run(['stop', 'conf-pick'])).code).toBe(0);

    const packed = await cli.run(['start', mar, '--inference_conf=conf/inference.yml', '--name', 'conf-pick'], { cwd: here });
    expect(packed.code, packed.stderr).toBe(0);
    expect(await served()).toEqual(['from-archive']);
    expect(packed.stderr).toContain('validating the confs (inference: conf/inference.yml of the archive;');
    expect(packed.stderr).toContain(`${path.join(here, 'conf', 'inference.yml')} differs and is not used (--inference_conf=./conf/inference.yml deploys that one)`);
    expect((await cli.run(['stop', 'conf-pick'])).code).toBe(0);

    // In the project folder, the conf --include_engine rewrote is the same conf: no word about it.
    const project = await cli.run(['start', mar, '--inference_conf=./conf/inference.yml', '--name', 'conf-pick'], { cwd: path.join(work, 'ambiguous') });
    expect(project.code, project.stderr).toBe(0);
    expect(project.stderr).toContain('validating the confs (inference: conf/inference.yml of the archive;');
    expect(project.stderr).not.toContain('warning');
    expect((await cli.run(['stop', 'conf-pick'])).code).toBe(0);
  }, 120_000);

  it('a conf here pointing at another model than the one packed differs: said, and the file here deployed', async () => {
    // The project's conf serves models/packed; after archiving, it is pointed at models/other.
    const packedConf = named('repointed').replaceAll(checkpoint('tiny-a'), './models/packed');
    const mar = await archived('repointed', { 'inference.yml': packedConf, 'server.yml': serverOn(port) }, { 'models/packed': checkpoint('tiny-a'), 'models/other': checkpoint('tiny-b') });
    const project = path.join(work, 'repointed');
    fs.writeFileSync(path.join(project, 'conf', 'inference.yml'), packedConf.replaceAll('./models/packed', './models/other'));

    const r = await cli.run(['start', mar, '--inference_conf=./conf/inference.yml', '--name', 'conf-pick'], { cwd: project });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`--inference_conf=./conf/inference.yml: deploying ${path.join(project, 'conf', 'inference.yml')}; the archive's conf/inference.yml differs and is not used`);
    expect((await cli.run(['logs', 'conf-pick'])).stdout).toContain(`loading ${path.join(cli.home, 'conf-pick', 'models', 'other')} `);
    expect((await cli.run(['stop', 'conf-pick'])).code).toBe(0);
  }, 120_000);

  it('two files here of one name (./a/my.yml, ./b/my.yml) are both deployed', async () => {
    const mar = await archived('one-name', { 'inference.yml': named('from-archive') });
    for (const [dir, text] of [['a', named('from-a')], ['b', serverOn(port)]]) {
      fs.mkdirSync(path.join(work, dir), { recursive: true });
      fs.writeFileSync(path.join(work, dir, 'my.yml'), text);
    }
    const r = await cli.run(['start', mar, '--inference_conf=./a/my.yml', '--server_conf=./b/my.yml', '--name', 'conf-pick'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`validating the confs (inference: ${path.join(work, 'a', 'my.yml')}, a file here; server: ${path.join(work, 'b', 'my.yml')}, a file here)`);
    expect(await served()).toEqual(['from-a']); // on the port of b/my.yml
    expect((await cli.run(['stop', 'conf-pick'])).code).toBe(0);
  }, 120_000);

  it('grpst stop of a stopped server: exit 0 (nothing to stop), since when, and where its log is; an unknown name exits 1', async () => {
    const mar = await archived('stop-twice', { 'inference.yml': tinyConf, 'server.yml': serverOn(port) });
    const started = await cli.run(['start', mar, '--name', 'stopped'], { cwd: work });
    expect(started.code, started.stderr).toBe(0);
    expect((await cli.run(['stop', 'stopped'])).code).toBe(0);

    const r = await cli.run(['stop', 'stopped']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopped is not running \(it stopped at \d{4}-\d\d-\d\dT[\d:.]+Z; `grpst logs stopped` shows why\); nothing to stop/);
    expect(r.stderr).not.toContain('error:');
    expect(r.stderr).not.toContain('no server named');
    expect((await cli.run(['logs', 'stopped'])).stdout).toContain('drained; exiting');
    const never = await cli.run(['stop', 'never-started']);
    expect(never.code).toBe(1);
    expect(never.stderr).toContain('no server named never-started');
  }, 120_000);
});

describe('grpst start and the environment', () => {
  it('GRPST_DRAIN_TIMEOUT_S and GRPST_MAX_MAR_BYTES that are not numbers they take: exit 2 naming each, nothing deployed', async () => {
    const mar = path.join(work, 'ambiguous.mar');
    const cases: [NodeJS.ProcessEnv, string][] = [
      [{ GRPST_DRAIN_TIMEOUT_S: 'abc' }, 'GRPST_DRAIN_TIMEOUT_S is set to "abc", which is not a number of seconds above 0'],
      [{ GRPST_DRAIN_TIMEOUT_S: '-5' }, 'GRPST_DRAIN_TIMEOUT_S is set to "-5", which is not a number of seconds above 0'],
      [{ GRPST_MAX_MAR_BYTES: 'abc' }, 'GRPST_MAX_MAR_BYTES is set to "abc", which is not a whole number of bytes above 0'],
      [{ GRPST_MAX_MAR_BYTES: '1.5' }, 'GRPST_MAX_MAR_BYTES is set to "1.5", which is not a whole number of bytes above 0'],
    ];
    for (const [env, message] of cases) {
      const r = await cli.run(['start', mar, '--name', 'env-typo'], { cwd: work, env });
      expect(r.code, message).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).toMatch(/fix: set GRPST_\w+ to .*, or unset it for the default/);
      nothingDeployed('env-typo');
    }
  });
});
