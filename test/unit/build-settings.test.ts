import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSettings, resolveSettings, type BuildSettingsInput } from '../../src/build/options.js';
import { loadRecipe } from '../../src/build/recipe.js';
import { shellLine, shellQuote } from '../../src/util/shell.js';
import { calibrationSequences, findDataDir, loadTextSet } from '../../src/build/native/text-data.js';
import { GrpstError } from '../../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'grpst-build-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recipe(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function thrown(f: () => unknown): GrpstError {
  try {
    f();
  } catch (e) {
    return e as GrpstError;
  }
  throw new Error('did not throw');
}

describe('build settings', () => {
  it('fills the seed defaults and lets flags override the recipe', () => {
    const r = loadRecipe(recipe('a.yml', 'name: test\nmodel_dir: /m\noutput_dir: /o\nqformat: int4_awq\nawq_block_size: 64\n'));
    expect(r.name).toBe('test');
    const s = resolveSettings(r.settings, parseSettings({ awq_block_size: 32, force: true }, 'command line'));
    expect(s).toMatchObject({ model_dir: '/m', output_dir: '/o', qformat: 'int4_awq', awq_block_size: 32, force: true });
    expect(s).toMatchObject({ dtype: 'bfloat16', kv_cache_dtype: 'auto', max_batch_size: 16, max_input_len: 32256, max_seq_len: 32768, max_num_tokens: 32256, backend: 'native' });
  });

  it('names the key of a bad recipe value, an unknown key and bad YAML', () => {
    const bad = thrown(() => loadRecipe(recipe('b.yml', 'model_dir: /m\nqformat: int3\n')));
    expect(bad.exitCode).toBe(2);
    expect(bad.message).toMatch(/recipe .*b\.yml: qformat must be one of full_prec, int8_wo, int4_awq, fp8, int8_sq/);
    expect(thrown(() => loadRecipe(recipe('c.yml', 'model_dir: /m\nmax_batchsize: 4\n'))).message).toMatch(/unknown key "max_batchsize"; did you mean "max_batch_size"\?/);
    expect(thrown(() => loadRecipe(recipe('d.yml', 'awq_block_size: -4\n'))).message).toMatch(/awq_block_size/);
    expect(thrown(() => loadRecipe(recipe('e.yml', 'model_dir: [unclosed\n'))).message).toMatch(/not valid YAML \(line/);
    expect(thrown(() => loadRecipe(join(dir, 'missing.yml'))).message).toMatch(/does not exist/);
  });

  it('refuses a value outside the schema from a program calling it directly, naming the key', () => {
    const bad = { model_dir: '/m', output_dir: '/o', qformat: 'bf16' } as unknown as BuildSettingsInput;
    expect(() => resolveSettings({}, bad)).toThrow(/build settings: qformat must be one of full_prec, /);
    expect(() => resolveSettings({ calib_size: -1 } as BuildSettingsInput, { model_dir: '/m', output_dir: '/o' })).toThrow(/build settings: calib_size/);
    expect(() => resolveSettings({}, { model_dir: '/m', output_dir: '/o', colour: 'red' } as unknown as BuildSettingsInput)).toThrow(/build settings: unknown key "colour"/);
  });

  it('requires model_dir and output_dir and checks the limits together', () => {
    expect(thrown(() => resolveSettings({}, { output_dir: '/o' })).message).toMatch(/no --model_dir/);
    expect(thrown(() => resolveSettings({}, { model_dir: '/m' })).message).toMatch(/no --output_dir/);
    expect(thrown(() => resolveSettings({}, { model_dir: '/m', output_dir: '/o', max_input_len: 9000, max_seq_len: 8192 })).message).toMatch(/max_input_len 9000 is larger than max_seq_len 8192/);
  });

  it('ships a valid recipe for every seed flow', () => {
    const root = join(__dirname, '..', '..', 'recipes');
    const expected: Record<string, object> = {
      'qwen3-8b-bf16.yml': { qformat: 'full_prec' },
      'qwen3-8b-int8-wo.yml': { qformat: 'int8_wo' },
      'qwen3-8b-int4-awq.yml': { qformat: 'int4_awq', awq_block_size: 128 },
      'qwen3-8b-fp8.yml': { qformat: 'fp8', kv_cache_dtype: 'fp8' },
      'qwen3-8b-int8-sq.yml': { qformat: 'int8_sq', kv_cache_dtype: 'int8' },
      'qwen3-14b-awq.yml': { model_dir: '/tmp/Qwen3-14B-AWQ' },
    };
    for (const [file, want] of Object.entries(expected)) {
      const s = resolveSettings(loadRecipe(join(root, file)).settings, {});
      expect(s, file).toMatchObject(want);
    }
  });
});

describe('shell quoting', () => {
  it('leaves plain words alone and quotes the rest so sh reads them back', () => {
    expect(shellQuote('--max_seq_len')).toBe('--max_seq_len');
    expect(shellQuote('/tmp/a b')).toBe("'/tmp/a b'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('$TRTLLM_DIR/examples/qwen/convert_checkpoint.py')).toBe('"$TRTLLM_DIR"/examples/qwen/convert_checkpoint.py');
    expect(shellLine(['a', 'b c'])).toBe("a 'b c'");
  });
});

describe('calibration text', () => {
  it('splits the shipped set into passages and cuts samples to the token limit', () => {
    const set = loadTextSet(undefined, 'calibration');
    expect(set.name).toBe('builtin');
    expect(set.passages.length).toBeGreaterThanOrEqual(20);
    const seqs = calibrationSequences(set, (t) => Array.from(t, (c) => c.charCodeAt(0)), 5, 40);
    expect(seqs).toHaveLength(5);
    expect(seqs.every((s) => s.length === 40)).toBe(true);
  });
  it('finds the shipped set from a bundled CLI two levels down as from dist/ three levels down', () => {
    const root = join(dir, 'tree');
    mkdirSync(join(root, 'data'), { recursive: true });
    mkdirSync(join(root, '.carry', 'js'), { recursive: true });
    mkdirSync(join(root, 'dist', 'build', 'native'), { recursive: true });
    writeFileSync(join(root, 'data', 'calibration.txt'), 'one\n\ntwo\n');
    expect(findDataDir(join(root, '.carry', 'js'))).toBe(join(root, 'data'));
    expect(findDataDir(join(root, 'dist', 'build', 'native'))).toBe(join(root, 'data'));
  });
  it('reads jsonl with text fields and names the line of a bad one', () => {
    const ok = join(dir, 'ok.jsonl');
    writeFileSync(ok, '{"text": "one"}\n"two"\n{"article": "three"}\n');
    expect(loadTextSet(ok, 'calibration').passages).toEqual(['one', 'two', 'three']);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"text": "one"}\n{"title": 3}\n');
    expect(thrown(() => loadTextSet(bad, 'calibration')).message).toMatch(/bad\.jsonl:2 has no text/);
  });
});
