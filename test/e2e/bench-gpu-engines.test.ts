// bench:gpu:engines runs only where there are GPUs, in sessions whose device time is short: a flow
// broken by a change elsewhere (the build's flags, the confs, the CLI) would be found there, too
// late. Here its --smoke pass runs the whole flow on the CPU with a tiny checkpoint: the real
// `grpst build --qformat` per format and `grpst serve`, requests through the HTTP API, the table.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-bench-engines-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Row { section: string; measure: string; value: string; target: string; note: string }

describe('bench:gpu:engines --smoke on the CPU', () => {
  it('builds each format with grpst build, serves it with grpst serve and sets it against bf16', async () => {
    const out = path.join(work, 'out');
    const loader = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
    const r = await execa(process.execPath, ['--import', loader, path.join(repoRoot, 'bench', 'gpu-engines.ts'),
      '--checkpoint', checkpoint('tiny-b'), '--work', path.join(work, 'work'), '--out', out, '--formats', 'bf16,int8_wo+lm_head,int4_awq',
      '--build-args=--calib_size 4 --calib_max_seq_length 32 --eval_tokens 32 --awq_block_size 16',
      '--smoke', '--device', 'cpu', '--copy-gbs', '20', '--grpst', path.join(repoRoot, 'src', 'cli', 'main.ts')],
    { cwd: repoRoot, reject: false, env: { ...process.env, GRPST_HOME: path.join(work, 'home') }, timeout: 240_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const { rows } = JSON.parse(fs.readFileSync(path.join(out, 'bench-gpu-engines.json'), 'utf8')) as { rows: Row[] };
    const row = (section: string, measure: RegExp) => rows.find((x) => x.section === section && measure.test(x.measure));

    // Each quantized format is a built engine: its phases, bytes and accuracy come from the build.
    for (const format of ['int8_wo+lm_head', 'int4_awq']) {
      const build = row('build', new RegExp(`^${format.replace('+', '\\+')} engine$`))!;
      expect(build.value).toMatch(/^\d+ s$/);
      expect(build.note).toMatch(/quantize [\d.]+s, .*GB read per step; top-1 [\d.]+%, KL/);
      const q = JSON.parse(fs.readFileSync(path.join(work, 'work', `engine-${format.replace('+', '-')}`, 'engine.json'), 'utf8')).quantization;
      expect(q.qformat).toBe(format.split('+')[0]);
      // --quantize_lm_head: the head is no longer left out of the format.
      expect(q.excluded ?? []).toEqual(format.endsWith('+lm_head') ? [] : ['lm_head']);
    }
    expect(row('build', /^int4_awq engine$/)!.note).toMatch(/calibrate [\d.]+s \(on CPU/);

    const bf16 = row('decode b1', /^bf16 checkpoint through the HTTP server$/)!;
    expect(Number.parseFloat(bf16.value)).toBeGreaterThan(0);
    expect(bf16.note).toMatch(/TPOT [\d.]+ ms; roofline \d+ tok\/s -> [\d.]+%$/);
    // A quantized engine reads fewer bytes per step, so its roofline is higher than bf16's.
    const int4 = row('decode b1', /^int4_awq engine through the HTTP server$/)!;
    expect(int4.target).toBe('>= 3x bf16');
    expect(int4.note).toMatch(/; [\d.]+x bf16$/);
    const roof = (r: Row) => Number(r.note.match(/roofline (\d+)/)![1]);
    expect(roof(int4)).toBeGreaterThan(roof(bf16));
    expect(fs.readFileSync(path.join(out, 'bench-gpu-engines.md'), 'utf8')).toMatch(/\| decode b1 \| int8_wo\+lm_head engine through the HTTP server \|/);
    // Every server it started is gone.
    for (const format of ['bf16', 'int8_wo+lm_head', 'int4_awq']) {
      const port = fs.readFileSync(path.join(work, 'work', `conf-${format.replace('+', '-')}`, 'port'), 'utf8').trim();
      await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
    }
  });
});
