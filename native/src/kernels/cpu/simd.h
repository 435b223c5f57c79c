// A minimal vector type for the CPU kernels, one definition per instruction-set level. Every
// kernel source is compiled three times (see CMakeLists.txt): with AVX-512 flags, with
// AVX2+FMA flags, and with none; the compiler's own macros pick the matching definition here and
// GRPST_ISA names the namespace, so the three copies never collide.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "grpst/kv_quant.h"

#ifndef GRPST_ISA
#error "GRPST_ISA must name the instruction-set level (avx512, avx2, scalar)"
#endif

namespace grpst::cpu::GRPST_ISA {

#if defined(__AVX512F__)

constexpr int kWidth = 16;
// The GEMMs' register tile, rows x outputs (gemm_bf16.cpp, gemm_quant.cpp): 16 accumulators, 4
// weights and 1 input of 32 registers.
constexpr int kTileRows = 4, kTileCols = 4;
// Weight rows a decode GEMV (under 8 rows of x) streams together (gemm_bf16.cpp): one, strictly
// sequentially; interleaving several halved the bandwidth here.
constexpr int kStreamCols = 1;
// The same for 1-byte weights widened in registers (gemm_quant.cpp's gemv_q): two chains, as one
// 16-wide chain of 1-byte weights would be bound by the FMA latency below a core's read bandwidth.
constexpr int kStreamColsQ = 2;
// The same at 2-7 rows of x (gemm_quant.cpp's few-row tiles): four weight rows reuse each x
// vector four times (2 rows measured 1.0-1.6x, 7 rows 1.5-1.8x the speed of two on a Zen 4 core).
constexpr int kFewRowColsQ = 4;
// Weight rows interleaved in a 2-7-row tile (gemm_bf16.cpp's few_rows).
constexpr int kFewRowCols = 2;
using VF = __m512;
inline VF vzero() { return _mm512_setzero_ps(); }
inline VF vset1(float x) { return _mm512_set1_ps(x); }
inline VF vload(const float* p) { return _mm512_loadu_ps(p); }
inline VF vload_n(const float* p, int n) { return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p); }
inline void vstore(float* p, VF v) { _mm512_storeu_ps(p, v); }
inline void vstore_n(float* p, VF v, int n) { _mm512_mask_storeu_ps(p, __mmask16((1u << n) - 1), v); }
inline VF vfma(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }
inline VF vadd(VF a, VF b) { return _mm512_add_ps(a, b); }
inline VF vsub(VF a, VF b) { return _mm512_sub_ps(a, b); }
inline VF vmul(VF a, VF b) { return _mm512_mul_ps(a, b); }
inline VF vmax(VF a, VF b) { return _mm512_max_ps(a, b); }
inline VF vmin(VF a, VF b) { return _mm512_min_ps(a, b); }
inline VF vdiv(VF a, VF b) { return _mm512_div_ps(a, b); }
/** Sum of the 16 lanes by a fixed tree: lane i + lane i+8, then +4, +2, +1. */
inline float vsum(VF v) {
  __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  b = _mm_add_ss(b, _mm_movehdup_ps(b));
  return _mm_cvtss_f32(b);
}
/**
 * vsum of four vectors at once, stored to out[0..3]: the same additions in the same tree as
 * vsum (so a value does not depend on which of the two computed it), about half the shuffles.
 */
inline void vsum4(VF a, VF b, VF c, VF d, float* out) {
  // lanes i + (i + 8): [a | b] and [c | d], eight lanes each
  VF ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
  VF cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, 0x44), _mm512_shuffle_f32x4(c, d, 0xEE));
  // + (i + 4): four lanes per vector, [a | b | c | d]
  VF t = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, 0x88), _mm512_shuffle_f32x4(ab, cd, 0xDD));
  // + (i + 2), then + (i + 1), within each 128-bit group
  t = _mm512_add_ps(t, _mm512_permute_ps(t, 0x4E));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, 0xB1));
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  _mm_storeu_ps(out, _mm512_castps512_ps128(_mm512_permutexvar_ps(pick, t)));
}
inline float vhmax(VF v) { return _mm512_reduce_max_ps(v); }
/** Bit i set where lane i of a equals lane i of b (NaN equals nothing). */
inline unsigned veq_mask(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
/** 16 bf16 values widened to fp32 (exact: bf16 is the top half of an fp32). */
inline VF vload_bf16(const uint16_t* p) {
  __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
inline VF vload_bf16_n(const uint16_t* p, int n) {
  __m256i h = _mm256_maskz_loadu_epi16(__mmask16((1u << n) - 1), p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
/** 16 int8 values widened to fp32 (exact). */
inline VF vload_i8(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
inline VF vload_i8_n(const int8_t* p, int n) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(__mmask16((1u << n) - 1), p)));
}
/**
 * 16 e4m3 codes as fp32, exact: the code's bits moved into an fp16 (sign, then exponent and
 * mantissa shifted by 7) give the value times 2^-8, fp16 subnormals covering e4m3's.
 */
inline VF e4m3_widen(__m128i bytes) {
  // Sign-extended to 16 bits and shifted left by 7: the exponent and mantissa land in bits 7-13,
  // the sign in bit 15 (from the extension) and in bit 14 (the code's own top bit), which the
  // mask clears. Two operations where masking and shifting each half took five.
  const __m256i b = _mm256_cvtepi8_epi16(bytes);
  const __m256i h = _mm256_and_si256(_mm256_slli_epi16(b, 7), _mm256_set1_epi16(int16_t(0xbfff)));
  return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
}
inline VF vload_e4m3(const uint8_t* p) { return e4m3_widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline VF vload_e4m3_n(const uint8_t* p, int n) { return e4m3_widen(_mm_maskz_loadu_epi8(__mmask16((1u << n) - 1), p)); }
inline VF vfloor(VF x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); }
inline VF vscale_pow2(VF r, VF n) { return _mm512_scalef_ps(r, n); }

#elif defined(__AVX2__)

constexpr int kWidth = 8;
// The GEMMs' register tile: 12 accumulators, 3 weights and 1 input of 16 registers (2 x 4 left
// half the FMA pipes idle on their latency: the bf16 GEMM measured 1.5x faster at 4 x 3).
constexpr int kTileRows = 4, kTileCols = 3;
// Two weight rows per pass of a decode GEMV: with one, each output's single chain of 8-wide FMAs
// bounds a thread by the FMA latency (7.7 GB/s of bf16 weights on one Zen 4 core against 11.6
// with two rows' chains interleaved; three or four rows no better). Each output still sums in
// the same order, so the bits do not change.
constexpr int kStreamCols = 2;
constexpr int kStreamColsQ = 2;  // the same for 1-byte weights (gemm_quant.cpp's gemv_q)
constexpr int kFewRowColsQ = 2;  // and at 2-7 rows of x
constexpr int kFewRowCols = 2;   // weight rows interleaved in a 2-7-row tile (gemm_bf16.cpp's few_rows)
using VF = __m256;
inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline VF vzero() { return _mm256_setzero_ps(); }
inline VF vset1(float x) { return _mm256_set1_ps(x); }
inline VF vload(const float* p) { return _mm256_loadu_ps(p); }
// Whole vectors go through plain loads and stores: AVX2's masked ones are microcoded and slow on
// AMD cores (the CPU attention's 4,096-token prompt took 23% longer with them). Same values.
inline VF vload_n(const float* p, int n) { return n >= kWidth ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask(n)); }
inline void vstore(float* p, VF v) { _mm256_storeu_ps(p, v); }
inline void vstore_n(float* p, VF v, int n) {
  if (n >= kWidth) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, tail_mask(n), v);
}
inline VF vfma(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
inline VF vadd(VF a, VF b) { return _mm256_add_ps(a, b); }
inline VF vsub(VF a, VF b) { return _mm256_sub_ps(a, b); }
inline VF vmul(VF a, VF b) { return _mm256_mul_ps(a, b); }
inline VF vmax(VF a, VF b) { return _mm256_max_ps(a, b); }
inline VF vmin(VF a, VF b) { return _mm256_min_ps(a, b); }
inline VF vdiv(VF a, VF b) { return _mm256_div_ps(a, b); }
inline float vsum(VF v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline void vsum4(VF a, VF b, VF c, VF d, float* out) {
  out[0] = vsum(a);
  out[1] = vsum(b);
  out[2] = vsum(c);
  out[3] = vsum(d);
}
inline float vhmax(VF v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline unsigned veq_mask(VF a, VF b) { return unsigned(_mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_EQ_OQ))); }
inline VF vload_bf16(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline VF vload_bf16_n(const uint16_t* p, int n) {
  uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, size_t(n) * 2);
  return vload_bf16(tmp);
}
inline VF vload_i8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline VF vload_i8_n(const int8_t* p, int n) {
  int8_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, size_t(n));
  return vload_i8(tmp);
}
/** 8 e4m3 codes as fp32, exact (see the AVX-512 version). */
inline VF vload_e4m3(const uint8_t* p) {
  const __m128i b = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m128i h = _mm_and_si128(_mm_slli_epi16(b, 7), _mm_set1_epi16(int16_t(0xbfff)));
  return _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
}
inline VF vload_e4m3_n(const uint8_t* p, int n) {
  uint8_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::memcpy(tmp, p, size_t(n));
  return vload_e4m3(tmp);
}
inline VF vfloor(VF x) { return _mm256_floor_ps(x); }
inline VF vscale_pow2(VF r, VF n) {
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(r, _mm256_castsi256_ps(e));
}

#else

constexpr int kWidth = 1;
constexpr int kTileRows = 4, kTileCols = 4;  // the GEMMs' register tile
constexpr int kStreamCols = 1, kStreamColsQ = 1;  // decode GEMV rows per pass (gemm_bf16.cpp, gemm_quant.cpp)
constexpr int kFewRowCols = 1, kFewRowColsQ = 1;  // weight rows interleaved in a 2-7-row tile
using VF = float;
inline VF vzero() { return 0.0f; }
inline VF vset1(float x) { return x; }
inline VF vload(const float* p) { return *p; }
inline VF vload_n(const float* p, int n) { return n > 0 ? *p : 0.0f; }
inline void vstore(float* p, VF v) { *p = v; }
inline void vstore_n(float* p, VF v, int n) {
  if (n > 0) *p = v;
}
inline VF vfma(VF a, VF b, VF c) { return std::fma(a, b, c); }
inline VF vadd(VF a, VF b) { return a + b; }
inline VF vsub(VF a, VF b) { return a - b; }
inline VF vmul(VF a, VF b) { return a * b; }
inline VF vmax(VF a, VF b) { return a > b ? a : b; }
inline VF vmin(VF a, VF b) { return a < b ? a : b; }
inline VF vdiv(VF a, VF b) { return a / b; }
inline float vsum(VF v) { return v; }
inline void vsum4(VF a, VF b, VF c, VF d, float* out) {
  out[0] = a;
  out[1] = b;
  out[2] = c;
  out[3] = d;
}
inline float vhmax(VF v) { return v; }
inline unsigned veq_mask(VF a, VF b) { return a == b ? 1u : 0u; }
inline VF vload_bf16(const uint16_t* p) {
  uint32_t bits = uint32_t(*p) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline VF vload_bf16_n(const uint16_t* p, int n) { return n > 0 ? vload_bf16(p) : 0.0f; }
inline VF vload_i8(const int8_t* p) { return float(*p); }
inline VF vload_i8_n(const int8_t* p, int n) { return n > 0 ? float(*p) : 0.0f; }
inline VF vload_e4m3(const uint8_t* p) { return e4m3_to_f32(*p); }
inline VF vload_e4m3_n(const uint8_t* p, int n) { return n > 0 ? e4m3_to_f32(*p) : 0.0f; }

#endif

/**
 * e^x to about 2 ulp: x = n*ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r, then scaled
 * by 2^n. Arguments are clamped to [-87, 88] (e^-87 is the smallest normal float's order, e^88
 * the largest finite one's), which only matters where the exact result is ~0 or overflows.
 */
inline VF vexp(VF x) {
#if defined(__AVX512F__) || defined(__AVX2__)
  x = vmin(vmax(x, vset1(-87.0f)), vset1(88.0f));
  VF n = vfloor(vfma(x, vset1(1.44269504088896341f), vset1(0.5f)));
  // r = x - n*ln2 in two steps (Cody-Waite) so r keeps its low bits.
  VF r = vfma(n, vset1(-0.693359375f), x);
  r = vfma(n, vset1(2.12194440e-4f), r);
  VF p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
  return vscale_pow2(p, n);
#else
  return std::exp(x);
#endif
}

/** e^x for softmax arguments (x <= 0). */
inline VF vexp_neg(VF x) { return vexp(x); }

/** kWidth elements of any stored type as fp32, exact (bf16, e4m3 and int8 widen; fp32 loads); the
 * _n form reads n < kWidth of them and zeros the rest. For kernels templated on the element. */
inline VF load_elem(const float* p) { return vload(p); }
inline VF load_elem(const uint16_t* p) { return vload_bf16(p); }
inline VF load_elem(const uint8_t* p) { return vload_e4m3(p); }
inline VF load_elem(const int8_t* p) { return vload_i8(p); }
inline VF load_elem_n(const float* p, int n) { return vload_n(p, n); }
inline VF load_elem_n(const uint16_t* p, int n) { return vload_bf16_n(p, n); }
inline VF load_elem_n(const uint8_t* p, int n) { return vload_e4m3_n(p, n); }
inline VF load_elem_n(const int8_t* p, int n) { return vload_i8_n(p, n); }

/** Rows of an fp32 x [M, K] taken at a time by the tiled GEMMs (bf16's, the weight-only formats'
 * fp32 blocks): about 512 KB, so a chunk stays in the L2 while the weight tiles pass over it; a
 * multiple of the register tile's rows. */
// Vector registers of the level, for the few-row tiles (gemm_bf16.cpp, gemm_quant.cpp); the
// scalar build has no limit that matters.
constexpr int kVectorRegs = kWidth == 16 ? 32 : kWidth == 8 ? 16 : 64;

/** Whether a tile of MR rows x NR weight rows fits the registers: its accumulators, `per_col`
 * vectors per weight row (the widened weights and their constants) and one of x. */
constexpr bool tile_fits(int MR, int NR, int per_col) { return MR * NR + per_col * NR + 1 <= kVectorRegs; }

/** f(std::integral_constant<int, M>{}) for 1 <= M <= 7 (7 past it): the few-row tiles take their
 * row count as a compile-time constant. */
template <class F>
inline void with_rows(int M, F&& f) {
  switch (M) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    default: return f(std::integral_constant<int, 7>{});
  }
}

inline int l2_row_chunk(int K) { return std::max(kTileRows, int((512 * 1024) / (int64_t(K) * 4)) / kTileRows * kTileRows); }

}  // namespace grpst::cpu::GRPST_ISA
