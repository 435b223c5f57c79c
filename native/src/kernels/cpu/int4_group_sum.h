// The one definition of how int4 groups' exact part sums become y on the amx level, shared by
// its tile kernels (gemm_amx_int4.cpp) and its register kernel for a few rows of x
// (gemm_int4_vnni.cpp): each output takes these fp32 steps in this order, group after group,
//   t = d0 * s0;  t = fma(d1, s1, t);  t = fma(d2, s2, t);  y = fma(t, scale[n, g], y)
// (d_p: the int32 sum of x's part p times q - zero over group g; s_p: the part's scale), so
// whichever kernel, lane layout or row count made an output, its bits are the same.
#pragma once
#include <immintrin.h>

namespace grpst::cpu::amx {

/** One group's three part sums into the running y, lane by lane (lanes: tokens or weight rows). */
inline __m512 int4_add_group(__m512i d0, __m512i d1, __m512i d2, __m512 s0, __m512 s1, __m512 s2, __m512 scale,
                             __m512 y) {
  __m512 t = _mm512_mul_ps(_mm512_cvtepi32_ps(d0), s0);
  t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d1), s1, t);
  t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d2), s2, t);
  return _mm512_fmadd_ps(t, scale, y);
}

}  // namespace grpst::cpu::amx
