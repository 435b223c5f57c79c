// fp8 linears on AVX-512 BF16 dot products (gemm_fp8_bf16.cpp): the avx512 level only.
#pragma once
#include <cstdint>

namespace grpst::cpu::avx512 {
/**
 * y[m, n] = sum_k x[m, k] * w[n, k], x as bf16 bits [M, K] (values exact in bf16: rounded e4m3),
 * w e4m3 bytes [N, K]; each output's bits do not depend on M or N.
 */
void gemm_e4m3_bf16(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K);
}  // namespace grpst::cpu::avx512
