// fp8 linears on AVX-512 BF16 dot products (gemm_fp8_bf16.cpp): the avx512 level only.
#pragma once
#include <cstdint>

namespace grpst::cpu {

/**
 * The order of gemm_e4m3_bf16's activations: each whole 64-value chunk of a row in "pair order",
 * the values at 16l + 0..7 of its four 16-value quarters l first, then those at 16l + 8..15 (the
 * order in which byte unpacks lay out 64 widened weights), and a last partial chunk as it is.
 * The position of value k of a row of K: 64c + 8l + i for k = 64c + 16l + i, 64c + 32 + 8l + i
 * for k = 64c + 16l + 8 + i.
 */
inline int e4m3_bf16_pair_slot(int k, int K) {
  if (k >= K / 64 * 64) return k;
  const int o = k & 63;
  return (k & ~63) + ((o & 8) << 2) + ((o >> 4) << 3) + (o & 7);
}

}  // namespace grpst::cpu

namespace grpst::cpu::avx512 {
/**
 * y[m, n] = sum_k x[m, k] * w[n, k], x as bf16 bits [M, K] in e4m3_bf16_pair_slot's order (values exact
 * in bf16: rounded e4m3), w e4m3 bytes [N, K]; each output's bits do not depend on M or N.
 */
void gemm_e4m3_bf16(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K);
}  // namespace grpst::cpu::avx512
