// npm run bench:attention — one thread's CPU attention (one KV head and its query heads over a
// paged bf16 KV cache, as the runner calls it) for the Qwen3 shapes (head_dim 128; 2 query heads
// per KV head as in 0.6B-4B, 4 as in 8B and up), as a 16-row prefill chunk at the end of long
// prompts and as one decode row; each rate also as a ratio to the bf16 GEMM's (512 x 1024 x 3072)
// on the same thread in the same run, the roof the attention's FMAs could reach.
//
//   npm run bench:attention [-- --level avx2|avx512|scalar --iterations N]
import { kernelBenchSetup } from './kernel-bench.js';

const { addon, level, iterations } = kernelBenchSetup(5);
const gemm = (2 * 512 * 1024 * 3072) / addon.benchGemm(level, 512, 1024, 3072, 1, iterations, 'bf16') / 1e9;
console.log(`CPU attention, one thread, ${level} kernels, best of ${iterations} (bf16 GEMM on this thread: ${gemm.toFixed(1)} GFLOP/s)`);
for (const group of [2, 4]) {
  for (const [ctx, rows] of [
    [2048, 16],
    [8192, 16],
    [32768, 16],
    [8192, 1],
    [32768, 1],
  ]) {
    const seconds = addon.benchAttention(level, group, 128, ctx, rows, rows === 1 ? iterations * 8 : iterations);
    let flops = 0;
    for (let r = 0; r < rows; r++) flops += 4 * group * 128 * (ctx + r);  // q.k and p.v, 2 FLOPs per FMA each
    const rate = flops / seconds / 1e9;
    console.log(`group ${group}, ctx ${ctx}, ${rows === 1 ? 'decode (1 row)' : `prefill chunk (${rows} rows)`}: ` +
      `${(seconds * 1e3).toFixed(3)} ms, ${rate.toFixed(1)} GFLOP/s (${(rate / gemm).toFixed(2)}x the GEMM)`);
  }
}
