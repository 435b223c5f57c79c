// What the one-thread CPU kernel benches (bench:gemm, bench:attention) share: the native addon's
// timing entry points and the --level / --iterations options.
import { parseArgs } from 'node:util';
import { loadAddon } from '../src/engine/index.js';

export interface BenchAddon {
  probe(): { bestCpuKernels: string };
  benchGemm(level: string, M: number, N: number, K: number, threads: number, iterations: number, format: string): number;
  benchAttention(level: string, group: number, headDim: number, ctx: number, rows: number, iterations: number): number;
}

/** The addon, the kernel level (--level, default the best this CPU runs) and --iterations. */
export function kernelBenchSetup(defaultIterations: number): { addon: BenchAddon; level: string; iterations: number } {
  const { values: args } = parseArgs({
    args: process.argv.slice(2).filter((a) => a !== '--'),
    options: { level: { type: 'string' }, iterations: { type: 'string', default: String(defaultIterations) } },
  });
  const addon = loadAddon() as unknown as BenchAddon;
  return { addon, level: args.level ?? addon.probe().bestCpuKernels, iterations: Number(args.iterations) };
}
