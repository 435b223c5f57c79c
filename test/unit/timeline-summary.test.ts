// scripts/gpu/timeline_summary.py: a decode step's kernel timeline (CUPTI records of graph
// replays) turned into time per role. The GPU docs' per-layer breakdowns come from it, so its
// role naming and its exclusive-time accounting (overlaps under programmatic dependent launch
// count for the kernel that started first; gaps are idle) are checked on a made-up timeline.
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const script = join(import.meta.dirname, '../../scripts/gpu/timeline_summary.py');
const work = mkdtempSync(join(tmpdir(), 'grpst-timeline-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// [name, start us, end us] of one step: two layers, then the LM head. Overlaps: qkv starts 1 us
// before the embedding ends, o_proj 2 us before the attention ends, and so on; the attention of
// layer 0 starts 1 us after the q/k norm ends (idle).
const step: [string, number, number][] = [
  ['_Z16embedding_kernelPKi', 0, 2],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 1, 12],
  ['_ZN5grpst4cuda22qk_norm_rope_kv_kernelEv', 11, 14],
  ['_ZN5grpst4cuda27attention_decode_mma_kernelILi128EEEvv', 15, 20],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 18, 30],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 25, 60],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 55, 80],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 70, 90],
  ['_ZN5grpst4cuda22qk_norm_rope_kv_kernelEv', 90, 92],
  ['_ZN5grpst4cuda27attention_decode_mma_kernelILi128EEEvv', 92, 97],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 95, 105],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 104, 140],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 139, 160],
  ['_ZN5grpst4cuda20linear_stream_kernelILi1EEEvv', 150, 200],
];

function csv(): string {
  const lines = ['start_ns,end_ns,graph_id,correlation_id,stream_id,grid,block,name'];
  lines.push('0,5000,0,1,7,1,32,_Z11fill_kernelv'); // an eager kernel: not part of any step
  for (const [replay, t0] of [
    [11, 1_000_000],
    [12, 2_000_000],
  ]) {
    for (const [name, s, e] of step) lines.push(`${t0 + s * 1000},${t0 + e * 1000},3,${replay},7,264,256,${name}`);
  }
  return lines.join('\n') + '\n';
}

function row(out: string, role: string): number[] {
  const line = out.split('\n').find((l) => l.trimStart().startsWith(role + ' '));
  if (!line) throw new Error(`no row for ${role} in:\n${out}`);
  return line
    .slice(line.indexOf(role) + role.length)
    .trim()
    .split(/\s+/)
    .map((v) => Number.parseFloat(v));
}

describe('timeline_summary.py', () => {
  it('names each kernel by its role and splits the step into exclusive times and idle', async () => {
    const file = join(work, 'kernels.csv');
    writeFileSync(file, csv());
    const { stdout } = await execa('python3', [script, file, 'bf16 b1']);
    expect(stdout).toMatch(/^== bf16 b1: 14 kernels per step, step 200\.0 us \(median of 2 replays\), idle 1\.0 us/m);
    // count, mean us (start to end), exclusive us, per count, share of the step
    expect(row(stdout, 'embedding')).toEqual([1, 2, 2, 2, 1]);
    expect(row(stdout, 'qkv')).toEqual([2, 15.5, 20, 10, 10]);
    expect(row(stdout, 'q/k norm + RoPE + KV write')).toEqual([2, 2.5, 4, 2, 2]);
    expect(row(stdout, 'decode attention')).toEqual([2, 5, 10, 5, 5]);
    expect(row(stdout, 'o_proj')).toEqual([2, 11, 18, 9, 9]);
    expect(row(stdout, 'gate_up')).toEqual([2, 35.5, 65, 32.5, 32.5]);
    expect(row(stdout, 'down_proj')).toEqual([2, 23, 40, 20, 20]);
    expect(row(stdout, 'lm_head')).toEqual([1, 50, 40, 40, 20]);
    expect(row(stdout, 'idle (no kernel running)')).toEqual([1, 0.5]);
  });
});
