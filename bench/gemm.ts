// npm run bench:gemm — one thread's CPU GEMM (one linear call: y[M,N] = x[M,K] w[N,K]^T) per weight
// format (bf16, int8_sq, int8_wo, fp8, int4_awq) at prefill and decode shapes of the Qwen3-0.6B model, each format
// against bf16 in the same run (the native addon's benchGemm: weights cycled through buffers larger
// than the caches). Then 1-8 rows of x, the decode batches and speculative steps (the few-row
// tiles of gemm_bf16.cpp and gemm_quant.cpp below 8 rows), for both projection shapes.
//
//   npm run bench:gemm [-- --level avx2|avx512|scalar --iterations N]
import { kernelBenchSetup } from './kernel-bench.js';

const { addon, level, iterations } = kernelBenchSetup(8);
console.log(`CPU GEMM, one thread, ${level} kernels (GFLOP/s = 2 M N K / seconds, best of ${iterations})`);
for (const [M, N, K] of [
  [512, 3072, 1024],
  [512, 1024, 3072],
  [64, 3072, 1024],
  [4, 3072, 1024],
  [1, 3072, 1024],
]) {
  const rate = (format: string) => {
    const seconds = addon.benchGemm(level, M, N, K, 1, M === 1 ? iterations * 8 : iterations, format);
    return (2 * M * N * K) / seconds / 1e9;
  };
  const bf16 = rate('bf16');
  const others = ['int8_sq', 'int8_wo', 'fp8', 'int4_awq'].map((f) => {
    const r = rate(f);
    return `${f} ${r.toFixed(1)} (${(r / bf16).toFixed(2)}x bf16)`;
  });
  console.log(`M=${M} N=${N} K=${K}: bf16 ${bf16.toFixed(1)} GFLOP/s, ${others.join(', ')}`);
}

console.log('1-8 rows of x, GFLOP/s for N x K = 3072 x 1024 / 1024 x 3072 (decode batches and speculative steps: few-row tiles below 8 rows)');
for (let M = 1; M <= 8; M++) {
  const cells = ['bf16', 'int8_sq', 'int8_wo', 'fp8', 'int4_awq'].map((format) => {
    const rates = [
      [3072, 1024],
      [1024, 3072],
    ].map(([N, K]) => (2 * M * N * K) / addon.benchGemm(level, M, N, K, 1, iterations * 8, format) / 1e9);
    return `${format} ${rates.map((r) => r.toFixed(1)).join(' / ')}`;
  });
  console.log(`M=${M}: ${cells.join(', ')}`);
}
