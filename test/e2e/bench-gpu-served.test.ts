// bench:gpu's served rows run only where there are GPUs, in sessions whose device time is short:
// a flow broken by a change elsewhere (the load generator, the server's options, the children's
// lifecycle) would be found there, too late. Here its --smoke pass runs them on the CPU with a
// tiny checkpoint: a server child per step token budget, one wave of 64 requests, then the
// sustained runs, each measured over the window where all 64 clients are busy.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpoint, repoRoot } from '../helpers/fixtures.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'grpst-bench-gpu-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

interface Row { section: string; measure: string; value: string; target: string; note: string }

describe('bench:gpu --smoke on the CPU', () => {
  it('serves one wave, then sustained load on a fresh server per step token budget', async () => {
    const out = path.join(work, 'out');
    const loader = path.join(repoRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
    // transformers' rates as its baseline script writes them (inputs here: only the ratios are checked)
    const baseline = path.join(work, 'transformers.json');
    fs.writeFileSync(baseline, JSON.stringify({ transformers: '5.x', attention: 'eager', runs: [
      { batch: 1, output_tok_s: 5 },
      { batch: 64, output_tok_s: 40 },
      { batch: 64, prompt_tokens: 1024, new_tokens: 512, output_tok_s: 20 },
    ] }));
    const r = await execa(process.execPath, ['--import', loader, path.join(repoRoot, 'bench', 'gpu.ts'),
      '--checkpoint', checkpoint('tiny-a'), '--out', out, '--smoke', '--device', 'cpu', '--copy-gbs', '20',
      '--sustained-requests', '96', '--sustained-budgets', '8192,128', '--baseline-json', baseline],
    { cwd: repoRoot, reject: false, timeout: 240_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const { rows } = JSON.parse(fs.readFileSync(path.join(out, 'bench-gpu.json'), 'utf8')) as { rows: Row[] };
    const serving = rows.filter((x) => x.section === 'serving');
    expect(serving.map((x) => x.measure)).toEqual([
      '64 concurrent, 64 in / 32 out, 64 requests',
      "64 concurrent, 32 in / 16 out (transformers' workload), 64 requests",
      // the budget each server's engine reports it took
      '64 concurrent, sustained: 96 requests, max_num_tokens 8192',
      '64 concurrent, sustained: 96 requests, max_num_tokens 128',
      // each served rate over transformers' at batch 64: the target's, the served workload's, the baseline's own
      'against transformers batch 64',
      'against transformers batch 64, 1024 in / 512 out',
      'against transformers batch 64, 32 in / 16 out',
    ]);
    expect(serving[0].note).toMatch(/^roofline \d+ tok\/s \(weights \+ KV at mean context 80\) -> [\d.]+%; TTFT p50\/p99 \d+\/\d+ ms; .*failed 0/);
    expect(serving[1].note).toMatch(/^roofline \d+ tok\/s \(weights \+ KV at mean context 40\) -> [\d.]+%; TTFT p50\/p99 \d+\/\d+ ms; .*failed 0/);
    const json = JSON.parse(fs.readFileSync(path.join(out, 'bench-gpu.json'), 'utf8')) as { serving: { outputTokensPerSecond: number } };
    const tokS = (row: Row) => Number(/^(\d+) output tok\/s$/.exec(row.value)![1]);
    const ratio = (row: Row) => Number(/^([\d.]+)x$/.exec(row.value)![1]);
    expect(ratio(serving[4])).toBeCloseTo(json.serving.outputTokensPerSecond / 40, 2);
    expect(ratio(serving[5])).toBeCloseTo(json.serving.outputTokensPerSecond / 20, 2);
    expect(ratio(serving[6])).toBeCloseTo(tokS(serving[1]) / 40, 1);
    for (const row of serving.slice(2, 4)) {
      expect(row.value).toMatch(/^\d+ output tok\/s$/);
      expect(row.note).toMatch(/^[\d.]+% of the roofline from [\d.]+ to [\d.]+ s; whole run \d+ tok\/s \([\d.]+%\); .*failed 0/);
    }
    // the prefill rows at the smoke's lengths, through the first server
    expect(rows.filter((x) => x.section === 'prefill').map((x) => x.measure)).toEqual(['bf16 64 tokens (HTTP server)', 'bf16 256 tokens (HTTP server)', 'bf16 1024 tokens (HTTP server)']);
  });
});
