// The CUDA kernels' programmatic-dependent-launch discipline (native/src/kernels/cuda/device_utils.cuh):
// every kernel that may be launched with PDL waits on its predecessor (griddep_wait) before it
// triggers its own dependents (griddep_launch_dependents). Kernels then read what was written two
// kernels back or earlier before their wait (qk_norm_rope_kv's positions, the streaming GEMV's
// residual under LinearOut::residual_settled); one kernel that triggered first would let its
// successor start before that data is final. This reads the sources, as the GPU cannot be run here.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../native/src');

// Kernels launched without PDL: the cooperative persistent step (its own launch config) and the
// tensor-parallel id remap (a plain <<<>>> launch).
const notPdl = new Set(['decode_persistent_kernel', 'local_ids_kernel']);

interface Kernel {
  file: string;
  name: string;
  body: string;
}

function cudaSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return cudaSources(p);
    return /\.(cu|cuh)$/.test(e.name) ? [p] : [];
  });
}

function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
}

// Each __global__ function's name and its text up to the next __global__ (or the file's end): a
// kernel's body and what follows it, enough to find its first wait and trigger.
export function kernelsOf(file: string, src: string): Kernel[] {
  const text = stripComments(src);
  const starts = [...text.matchAll(/__global__/g)].map((m) => m.index ?? 0);
  return starts.map((start, i) => {
    const chunk = text.slice(start, starts[i + 1] ?? text.length);
    const name = /(\w+)\s*\(/.exec(chunk.replace(/__launch_bounds__\s*\([^)]*\)/, ''))?.[1] ?? '?';
    const open = chunk.indexOf('{');
    return { file, name, body: open >= 0 ? chunk.slice(open) : '' };
  });
}

// What is wrong with a kernel's order of wait and trigger, or null.
export function dependentLaunchProblem(k: Kernel): string | null {
  const wait = k.body.search(/\bgriddep_wait\s*\(\s*\)\s*;/);
  const trigger = k.body.search(/\bgriddep_launch_dependents\s*\(\s*\)\s*;/);
  if (wait < 0) return `${k.name} (${k.file}) never calls griddep_wait()`;
  if (trigger >= 0 && trigger < wait) return `${k.name} (${k.file}) triggers its dependents before its wait`;
  return null;
}

describe('programmatic dependent launch in the CUDA kernels', () => {
  const kernels = cudaSources(root).flatMap((f) => kernelsOf(f.slice(root.length + 1), readFileSync(f, 'utf8')));

  it('finds the kernels', () => {
    const names = kernels.map((k) => k.name);
    for (const want of ['linear_stream_kernel', 'qk_norm_rope_kv_kernel', 'attention_decode_mma_kernel', 'dequant_int4_kernel'])
      expect(names).toContain(want);
    expect(kernels.length).toBeGreaterThan(20);
  });

  it('every kernel waits on its predecessor before it triggers its dependents', () => {
    const problems = kernels.filter((k) => !notPdl.has(k.name)).map(dependentLaunchProblem).filter((p) => p !== null);
    expect(problems).toEqual([]);
  });

  it('the check catches a trigger before the wait and a kernel without a wait', () => {
    const src = `
      __global__ void __launch_bounds__(128) early(int* y) { griddep_launch_dependents(); griddep_wait(); y[0] = 1; }
      __global__ void none(int* y) { y[0] = 1; }
      // griddep_wait(); in a comment does not count
      __global__ void fine(int* y) { griddep_wait(); griddep_launch_dependents(); }`;
    const found = kernelsOf('x.cu', src).map((k) => [k.name, dependentLaunchProblem(k)]);
    expect(found).toEqual([
      ['early', 'early (x.cu) triggers its dependents before its wait'],
      ['none', 'none (x.cu) never calls griddep_wait()'],
      ['fine', null],
    ]);
  });
});
