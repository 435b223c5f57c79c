// The one definition of how int4 groups' exact part sums become y on the amx level (and how their
// per-group scales are laid out for it), shared by
// its tile kernels (gemm_amx_int4.cpp) and its register kernel for a few rows of x
// (gemm_int4_vnni.cpp): each output takes these fp32 steps in this order, group after group,
//   t = d0 * s0;  t = fma(d1, s1, t);  t = fma(d2, s2, t);  y = fma(t, scale[n, g], y)
// (d_p: the int32 sum of x's part p times q - zero over group g; s_p: the part's scale), so
// whichever kernel, lane layout or row count made an output, its bits are the same.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace grpst::cpu::amx {

/** One group's three part sums into the running y, lane by lane (lanes: tokens or weight rows). */
inline __m512 int4_add_group(__m512i d0, __m512i d1, __m512i d2, __m512 s0, __m512 s1, __m512 s2, __m512 scale,
                             __m512 y) {
  __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(d0), s0);
  t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), s1, t);
  t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d2), s2, t);
  return _mm512_fmadd_ps(t, scale, y);
}

/**
 * Per-group values of `rows` weight rows (scales or zero points, [rows, groups]) as [16-row
 * block][groups][16], the last block's rows past `rows` zero: a group's values of a block as one
 * vector (lanes over weight rows) or one broadcast each (lanes over tokens). Both kernels read
 * their scales this way, and the register kernel its zero points (as int32).
 */
template <class From, class To>
void rows_by_group(const From* values, int groups, int rows, To* out) {
  for (int r0 = 0; r0 < rows; r0 += 16, out += size_t(groups) * 16, values += int64_t(16) * groups) {
    const int n = rows - r0 < 16 ? rows - r0 : 16;
    for (int g = 0; g < groups; g++)
      for (int r = 0; r < 16; r++) out[g * 16 + r] = r < n ? To(values[int64_t(r) * groups + g]) : To(0);
  }
}

}  // namespace grpst::cpu::amx
