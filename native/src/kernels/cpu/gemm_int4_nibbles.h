// int4 groups multiplied in their packed nibbles' order (gemm_int4_nibbles.cpp): the avx512 level
// only, for groups of whole 128-weight units.
#pragma once
#include <cstdint>

namespace grpst::cpu::avx512 {
/**
 * The activations in the weights' nibble order, unit by unit: out[m, 128u + 16n + d] =
 * x[m, 128u + 8d + n] for n < 8, d < 16 (K a multiple of 128; out is [M, K]).
 */
void permute_i4_x(const float* x, int64_t ldx, int M, int K, float* out);
/**
 * decode_i4_rows' y for x permuted by permute_i4_x (xp: [M, K], row stride ldx), weights widened in
 * registers; false, nothing done, where a group is not a whole number of 128-weight units.
 */
bool gemv_i4_nibbles(const float* xp, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
                     const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N);
/** decode_i4_rows' weights in the order permute_i4_x gives the activations (group a multiple of 128). */
void decode_i4_rows_nibbles(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups,
                            int group, int rows, int K, float* out);
}  // namespace grpst::cpu::avx512
