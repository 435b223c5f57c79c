// The activation quantizers of fp8 and int8_sq linears, compiled once per instruction-set level:
// every activation of a prefill chunk passes through them once per linear, and one at a time
// (frexp, ldexp, a division and nearbyint per value) they took a quarter of an fp8 prefill GEMM's
// time. The vector bodies give quant_round.h's bits exactly: a power-of-two step from the
// value's exponent bits (the same step frexp gives, 2^-9 below 2^-6), divisions and products by
// it exact, the same round-to-nearest-even; the kernel self-test compares every level with the
// scalar one on ties, subnormals, saturation and signed zeros.
#include <algorithm>
#include <cmath>

#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_round.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

#if defined(__AVX512F__)
// e4m3(v) for 16 values: |v| capped at 448 (min's second operand is kept when one is NaN, as
// std::min keeps a NaN first argument), step = 2^(exponent - 3) or 2^-9 whichever is larger (an
// exponent field under 3 gives a negative number or -inf, which the max drops), round(a / step)
// * step, then v's sign.
inline __m512 round_e4m3_v(__m512 v) {
  const __m512 a = _mm512_min_ps(_mm512_set1_ps(448.0f), _mm512_abs_ps(v));
  const __m512i exp_bits = _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x7f800000));
  const __m512 step = _mm512_max_ps(_mm512_castsi512_ps(_mm512_sub_epi32(exp_bits, _mm512_set1_epi32(3 << 23))),
                                    _mm512_set1_ps(1.0f / 512.0f));
  const __m512 q = _mm512_roundscale_ps(_mm512_div_ps(a, step), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int32_t(0x80000000u)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_mul_ps(q, step)), sign));
}
#elif defined(__AVX2__)
inline __m256 round_e4m3_v(__m256 v) {
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(0x80000000u)));
  const __m256 a = _mm256_min_ps(_mm256_set1_ps(448.0f), _mm256_andnot_ps(sign_mask, v));
  const __m256i exp_bits = _mm256_and_si256(_mm256_castps_si256(a), _mm256_set1_epi32(0x7f800000));
  const __m256 step = _mm256_max_ps(_mm256_castsi256_ps(_mm256_sub_epi32(exp_bits, _mm256_set1_epi32(3 << 23))),
                                    _mm256_set1_ps(1.0f / 512.0f));
  const __m256 q = _mm256_round_ps(_mm256_div_ps(a, step), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm256_or_ps(_mm256_mul_ps(q, step), _mm256_and_ps(v, sign_mask));
}
#endif

}  // namespace

void round_rows_e4m3(const float* x, int64_t ldx, int M, int K, float scale, float* out) {
  const float inv = 1.0f / scale;
  for (int m = 0; m < M; m++) {
    const float* row = x + m * ldx;
    float* dst = out + int64_t(m) * K;
    int k = 0;
#if defined(__AVX512F__) || defined(__AVX2__)
    const VF vinv = vset1(inv);
    for (; k + kWidth <= K; k += kWidth) vstore(dst + k, round_e4m3_v(vmul(vload(row + k), vinv)));
#endif
    for (; k < K; k++) dst[k] = quant_round::e4m3(row[k] * inv);
  }
}

void quantize_rows_int8(const float* x, int64_t ldx, int M, int K, int8_t* xq, float* xs) {
  for (int m = 0; m < M; m++) {
    const float* row = x + m * ldx;
    // amax: a maximum is exact in any order (and, as std::max(amax, NaN) does, skips NaN: max's
    // second operand is kept when one is NaN)
    float amax = 0;
    int k = 0;
#if defined(__AVX512F__)
    __m512 vmax_abs = _mm512_setzero_ps();
    for (; k + 16 <= K; k += 16) vmax_abs = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(row + k)), vmax_abs);
    amax = _mm512_reduce_max_ps(vmax_abs);
#elif defined(__AVX2__)
    const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(int32_t(0x80000000u)));
    __m256 vmax_abs = _mm256_setzero_ps();
    for (; k + 8 <= K; k += 8) vmax_abs = _mm256_max_ps(_mm256_andnot_ps(sign_mask, _mm256_loadu_ps(row + k)), vmax_abs);
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmax_abs);
    for (float l : lanes) amax = std::max(amax, l);
#endif
    for (; k < K; k++) amax = std::max(amax, std::fabs(row[k]));
    const float scale = amax / 127.0f;
    xs[m] = scale;
    int8_t* dst = xq + int64_t(m) * K;
    if (scale == 0) {
      std::fill(dst, dst + K, int8_t(0));
      continue;
    }
    const float inv = 1.0f / scale;
    k = 0;
#if defined(__AVX512F__)
    const __m512 vinv = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    for (; k + 16 <= K; k += 16) {
      const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(row + k), vinv),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, lo), hi));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + k), _mm512_cvtsepi32_epi8(q));
    }
#elif defined(__AVX2__)
    const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    for (; k + 8 <= K; k += 8) {
      const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(row + k), vinv),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256i q = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
      // 8 int32 in [-127, 127] -> 8 bytes: pack within each 128-bit half, then take the halves' first words
      const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + k), _mm_packs_epi16(w16, w16));
    }
#endif
    for (; k < K; k++) dst[k] = quant_round::int8(row[k], inv);
  }
}

}  // namespace grpst::cpu::GRPST_ISA
