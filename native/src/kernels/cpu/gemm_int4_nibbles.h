// int4 groups multiplied in their packed nibbles' order (gemm_int4_nibbles.cpp): the avx512 level
// only, for groups of whole 128- or 64-weight units.
#pragma once
#include <cstdint>

namespace grpst::cpu {
/** The unit of the nibbles' order for int4 groups of `group` weights: 128, 64, or 0 (none). */
constexpr int i4_nibble_unit(int group) { return group % 128 == 0 ? 128 : group % 64 == 0 ? 64 : 0; }
}  // namespace grpst::cpu

namespace grpst::cpu::avx512 {
/**
 * The activations in the weights' nibble order, unit by unit (unit U = i4_nibble_unit(group), S =
 * U / 16): out[m, u + 16n + d] = x[m, u + S d + n] for n < S, d < 16 (K a multiple of U; out is
 * [M, K]).
 */
void permute_i4_x(const float* x, int64_t ldx, int M, int K, int unit, float* out);
/**
 * decode_i4_rows' y for x permuted by permute_i4_x (xp: [M, K], row stride ldx), weights widened in
 * registers; false, nothing done, where the group has no unit.
 */
bool gemv_i4_nibbles(const float* xp, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
                     const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N);
/** decode_i4_rows' weights in the order permute_i4_x gives the activations (a group with a unit). */
void decode_i4_rows_nibbles(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups,
                            int group, int rows, int K, float* out);
}  // namespace grpst::cpu::avx512
