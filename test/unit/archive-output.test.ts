// Where `grpst archive` writes: -o replaces an earlier archive, never another file, and a path
// that names a folder (existing or not) is refused before anything is written, with the message
// saying which it is (a folder, a missing folder) and the file path to pass.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeArchive } from '../../src/archive/write.js';
import { GrpstError } from '../../src/util/errors.js';

let tmp: string;
let project: string;
const conf = 'models:\n  - name: m\n';

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-archive-out-'));
  project = path.join(tmp, 'my project');
  fs.mkdirSync(path.join(project, 'conf'), { recursive: true });
  fs.writeFileSync(path.join(project, 'conf', 'inference.yml'), conf);
  fs.writeFileSync(path.join(project, 'conf', 'server.yml'), 'interface:\n  port: 9997\n');
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function refusal(output: string, projectDir = project): Promise<GrpstError> {
  const err = await writeArchive({ projectDir, output, includeEngine: false }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GrpstError);
  expect((err as GrpstError).exitCode).toBe(2);
  return err as GrpstError;
}

describe('grpst archive -o', () => {
  it('refuses to overwrite a file that is not an archive, and leaves it as it was', async () => {
    const target = path.join(project, 'conf', 'inference.yml');
    const err = await refusal(target);
    expect(err.message).toMatch(/exists and is not an archive/);
    expect(err.hint).toMatch(/new file path/);
    expect(fs.readFileSync(target, 'utf8')).toBe(conf);
    expect(fs.readdirSync(path.join(project, 'conf')).sort()).toEqual(['inference.yml', 'server.yml']);
  });

  it('replaces an earlier archive', async () => {
    const output = path.join(tmp, 'server.mar');
    await writeArchive({ projectDir: project, output, includeEngine: false });
    const first = fs.statSync(output).size;
    fs.appendFileSync(path.join(project, 'conf', 'server.yml'), 'max_queue: 8\n');
    const again = await writeArchive({ projectDir: project, output, includeEngine: false });
    expect(again.notes.join('\n')).toMatch(/existing archive .* was replaced/);
    expect(fs.statSync(output).size).toBeGreaterThan(first);
  });

  it('refuses a path ending in a separator (a folder) that does not exist as missing, with the file path to pass', async () => {
    const err = await refusal(path.join(tmp, 'out') + path.sep);
    expect(err.message).toMatch(/names a folder, and that folder does not exist/);
    expect(err.message).not.toMatch(/is a folder/);
    expect(err.hint).toMatch(/-o takes the archive's file path/);
    expect(err.hint).toContain(`mkdir -p ${path.join(tmp, 'out')}${path.sep}`);
    expect(err.hint).toContain(`-o ${path.join(tmp, 'out', 'server.mar')}`);
    expect(fs.existsSync(path.join(tmp, 'out'))).toBe(false);
  });

  it('refuses an existing folder, with or without the separator, as a folder', async () => {
    const dir = path.join(tmp, 'existing');
    fs.mkdirSync(dir);
    for (const output of [dir, dir + path.sep]) {
      const err = await refusal(output);
      expect(err.message).toMatch(/is a folder$/);
      expect(err.hint).toContain(`-o ${path.join(dir, 'server.mar')}`);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('a separator after the name of a file is not called a missing folder', async () => {
    const file = path.join(tmp, 'old.mar');
    fs.writeFileSync(file, 'PK\x05\x06');
    const err = await refusal(file + path.sep);
    expect(err.message).toMatch(/names a folder, but .* is a file/);
    expect(err.hint).toContain(`-o ${file} `);
  });

  it('names a project path that is a file as a file, not as missing', async () => {
    const err = await refusal(path.join(tmp, 'x.mar'), path.join(project, 'conf', 'server.yml'));
    expect(err.message).toMatch(/is a file, not a project folder/);
    expect(err.message).not.toMatch(/does not exist/);
    expect(fs.existsSync(path.join(tmp, 'x.mar'))).toBe(false);
  });
});
