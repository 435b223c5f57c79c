// What `grpst build RECIPE` says when the recipe argument is not a recipe: the checkpoint folder
// given in its place, or a file with several unknown keys (an inference conf, a recipe of typos).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecipe } from '../../src/build/recipe.js';
import { GrpstError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'grpst-recipe-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function thrown(f: () => unknown): GrpstError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(GrpstError);
    return e as GrpstError;
  }
  throw new Error('did not throw');
}

describe('grpst build with a bad recipe argument', () => {
  it('a folder in place of the recipe says so and points at --model_dir', () => {
    const ckpt = join(dir, 'Qwen3-8B');
    mkdirSync(ckpt);
    writeFileSync(join(ckpt, 'config.json'), '{}');
    const err = thrown(() => loadRecipe(ckpt));
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(`${ckpt} is a folder, not a recipe file`);
    expect(err.hint).toContain(`--model_dir ${ckpt}`);
    expect(err.message).not.toMatch(/EISDIR/);
  });

  it('several unknown keys: each named once, the valid keys listed once', () => {
    const file = join(dir, 'inference.yml');
    writeFileSync(file, 'models:\n  - name: m\ndag:\n  type: sequential\n');
    const err = thrown(() => loadRecipe(file));
    expect(err.message).toMatch(/unknown keys "models", "dag"; valid keys here: model_dir, /);
    expect(err.message.match(/valid keys here/g)).toHaveLength(1);
    expect(err.message.match(/model_dir/g)).toHaveLength(1);
  });

  it('a near miss among several keys keeps its suggestion beside it', () => {
    const file = join(dir, 'typos.yml');
    writeFileSync(file, 'model_dir: /m\nqformt: int8_wo\nwhatever: 1\n');
    const err = thrown(() => loadRecipe(file));
    expect(err.message).toMatch(/unknown keys "qformt" \(did you mean "qformat"\?\), "whatever"; valid keys here: /);
    expect(err.message.match(/valid keys here/g)).toHaveLength(1);
  });
});

describe('a recipe that is not a mapping of settings', () => {
  it('invalid YAML, an empty file, a list and a non-text name each come with a fix', () => {
    const cases: [string, string, RegExp][] = [
      ['broken.yml', 'model_dir: /tmp/x\n  qformat: [int4\n', /is not valid YAML \(line \d+\)/],
      ['empty.yml', '', /must be a mapping of settings/],
      ['list.yml', '- model_dir\n- qformat\n', /must be a mapping of settings/],
      ['name.yml', 'name: 12\n', /name must be text/],
    ];
    for (const [name, text, message] of cases) {
      const file = join(dir, name);
      writeFileSync(file, text);
      const err = thrown(() => loadRecipe(file));
      expect(err.exitCode, name).toBe(2);
      expect(err.message, name).toMatch(message);
      expect(err.hint, name).toMatch(/recipes\/qwen3-8b-int4-awq\.yml|quote it/);
    }
  });
});
