// bench:gpu:tp runs only where there are GPUs, in sessions whose device time is short: a flow
// broken by a change elsewhere (confs, the CLI, the build's flags) would be found there, too late.
// Here its --smoke pass runs the whole flow on the CPU with a tiny checkpoint: the real `grpst
// build --tp_size 2` and `grpst serve`, requests through the HTTP API, the table; tp 2 cannot be
// served without GPUs, which the benchmark must report as a failed row (exit 1), not hide.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-bench-tp-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Row { section: string; measure: string; value: string; note: string }

describe('bench:gpu:tp --smoke on the CPU', () => {
  it('builds, serves and measures tp 1, builds tp 2 and reports that it cannot be served here', async () => {
    const out = path.join(work, 'out');
    const loader = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
    const r = await execa(process.execPath, ['--import', loader, path.join(repoRoot, 'bench', 'gpu-tp.ts'),
      '--checkpoint', checkpoint('tiny-b'), '--work', path.join(work, 'work'), '--out', out, '--tp', '1,2',
      '--smoke', '--device', 'cpu', '--requests', '3', '--copy-gbs', '20', '--grpst', path.join(repoRoot, 'src', 'cli', 'main.ts')],
    { cwd: repoRoot, reject: false, env: { ...process.env, GRPST_HOME: path.join(work, 'home') }, timeout: 240_000 });
    expect(r.exitCode, r.stderr).toBe(1);
    const { rows } = JSON.parse(fs.readFileSync(path.join(out, 'bench-gpu-tp.json'), 'utf8')) as { rows: Row[] };
    const row = (section: string, measure: RegExp) => rows.find((x) => x.section === section && measure.test(x.measure));

    const decode = row('decode b1', /^tp 1$/);
    expect(Number.parseFloat(decode!.value)).toBeGreaterThan(0);
    expect(decode!.note).toMatch(/TPOT [\d.]+ ms; roofline [\d.]+ tok\/s/);
    const serving = row('serving', /^tp 1, 3 concurrent/);
    expect(Number.parseFloat(serving!.value)).toBeGreaterThan(0);
    expect(serving!.note).toMatch(/failed 0$/);

    // tp 2: the engine is built by `grpst build --tp_size 2` (one shard per rank) ...
    expect(row('build', /^tp 2 engine$/)!.value).toMatch(/^\d+ s$/);
    const manifest = JSON.parse(fs.readFileSync(path.join(work, 'work', 'engine-tp2', 'engine.json'), 'utf8'));
    expect(manifest.mapping.tp_size).toBe(2);
    // ... and `grpst serve --mpi_np 2` refuses on a machine without GPUs, saying why.
    expect(row('error', /^tp 2$/)!.note).toMatch(/grpst serve exited before it was ready/);
    expect(fs.readFileSync(path.join(out, 'serve-tp2.log'), 'utf8')).toMatch(/the engine was built with --tp_size 2: it runs one process per GPU and needs 2 GPUs/);
    expect(fs.readFileSync(path.join(out, 'bench-gpu-tp.md'), 'utf8')).toMatch(/\| decode b1 \| tp 1 \|/);
    // The tp 1 server it started is gone: nothing answers on its port.
    const port = fs.readFileSync(path.join(work, 'work', 'conf-tp1', 'port'), 'utf8').trim();
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  });
});
