// fp8 linears on AVX-512 BF16 dot products (gemm_fp8_bf16.cpp): the avx512 level only.
#pragma once
#include <cstdint>

namespace grpst::cpu {

/**
 * The order of gemm_e4m3_bf16's activations: each whole 64-value chunk of a row in "pair order",
 * the values at 16l + 0..7 of its four 16-value quarters l first, then those at 16l + 8..15 (the
 * order in which byte unpacks lay out 64 widened weights), and a last partial chunk as it is.
 * out[64c + 8l + i] = in[64c + 16l + i], out[64c + 32 + 8l + i] = in[64c + 16l + 8 + i].
 */
inline void e4m3_bf16_pair_order(const uint16_t* in, uint16_t* out, int K) {
  int k = 0;
  for (; k + 64 <= K; k += 64)
    for (int l = 0; l < 4; l++)
      for (int i = 0; i < 8; i++) {
        out[k + 8 * l + i] = in[k + 16 * l + i];
        out[k + 32 + 8 * l + i] = in[k + 16 * l + 8 + i];
      }
  for (; k < K; k++) out[k] = in[k];
}

}  // namespace grpst::cpu

namespace grpst::cpu::avx512 {
/**
 * y[m, n] = sum_k x[m, k] * w[n, k], x as bf16 bits [M, K] in e4m3_bf16_pair_order (values exact
 * in bf16: rounded e4m3), w e4m3 bytes [N, K]; each output's bits do not depend on M or N.
 */
void gemm_e4m3_bf16(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K);
}  // namespace grpst::cpu::avx512
