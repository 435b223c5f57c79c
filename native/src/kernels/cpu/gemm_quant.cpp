// Kernels of the quantized formats, compiled once per instruction-set level (see quant_kernels.h).
// Weight-only formats decode a block of rows to fp32 in cache and multiply it with an fp32 tile
// kernel; int8_sq multiplies int8 activations with int8 weights exactly in int32 (VNNI on AVX-512).
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

/** fp32 value of each e4m3 byte (scalar paths). */
struct E4m3Table {
  float v[256];
  E4m3Table() {
    for (int b = 0; b < 256; b++) {
      const int e = (b >> 3) & 0xf, m = b & 7;
      float mag = e == 0 ? float(m) * (1.0f / 512) : (1.0f + float(m) / 8) * std::ldexp(1.0f, e - 7);
      if (e == 15 && m == 7) mag = 0;  // NaN codes never appear in engines (quantizers saturate)
      v[b] = (b & 0x80) ? -mag : mag;
    }
  }
};
const E4m3Table kE4m3;

constexpr int kMR = kTileRows, kNR = kTileCols;  // the register tile (simd.h), as the bf16 GEMM's

// An MR x NR register tile along K, the weights as decoded fp32 rows or as one-byte weights widened
// where they are loaded (int8_wo's int8, fp8's e4m3 bytes: simd.h's load_elem, exact). Whatever
// the weights' type, the products and their order are the same (so are the bits). One-byte weights
// stream from memory (decode rows): each pass asks for the rows two passes ahead, a cache line per
// row per 64 bytes consumed, as the bf16 GEMV does (1-4 KB rows end before the hardware prefetcher
// has ramped up); decoded rows are in cache.
template <class T, int MR, int NR>
inline void tile(const float* x, int64_t ldx, const T* w, int64_t ldw, float* y, int64_t ldy, int K) {
  VF acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = vzero();
  [[maybe_unused]] const T* ahead = w + int64_t(2) * NR * ldw;
  int k = 0;
  for (; k + kWidth <= K; k += kWidth) {
#if defined(__AVX512F__) || defined(__AVX2__)
    if constexpr (sizeof(T) == 1 && NR > 1) {
      if ((k & 63) == 0)
        for (int j = 0; j < NR; j++) _mm_prefetch(reinterpret_cast<const char*>(ahead + j * ldw + k), _MM_HINT_T0);
    }
#endif
    VF wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load_elem(w + j * ldw + k);
    for (int i = 0; i < MR; i++) {
      VF xv = vload(x + i * ldx + k);
      for (int j = 0; j < NR; j++) acc[i][j] = vfma(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    const int rest = K - k;
    VF wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load_elem_n(w + j * ldw + k, rest);
    for (int i = 0; i < MR; i++) {
      VF xv = vload_n(x + i * ldx + k, rest);
      for (int j = 0; j < NR; j++) acc[i][j] = vfma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) y[i * ldy + j] = vsum(acc[i][j]);
}

// Up to 7 rows of x (the decode GEMVs' rows) as one tile, so each weight vector is widened once
// for all of them and their FMA chains overlap (as gemm_bf16.cpp's few-row tiles): 4 rows and then
// one at a time left a single chain in flight for the rest. Where the registers cannot hold the
// accumulators (kVectorRegs), 4 rows and the rest.
template <class T, int MR, int NR>
inline void few_rows_q(const float* x, int64_t ldx, const T* w, int64_t ldw, float* y, int64_t ldy, int K) {
  if constexpr (MR > 4 && !tile_fits(MR, NR, 1)) {
    tile<T, 4, NR>(x, ldx, w, ldw, y, ldy, K);
    tile<T, MR - 4, NR>(x + 4 * ldx, ldx, w, ldw, y + 4 * ldy, ldy, K);
  } else {
    tile<T, MR, NR>(x, ldx, w, ldw, y, ldy, K);
  }
}

template <class T, int NR>
inline void tile_rows(const float* x, int64_t ldx, const T* w, int64_t ldw, float* y, int64_t ldy, int M, int K) {
  if (M >= 1 && M <= 7)
    return with_rows(M, [&](auto rows) { few_rows_q<T, decltype(rows)::value, NR>(x, ldx, w, ldw, y, ldy, K); });
  // More rows: tiles of 4, then the rest as one tile.
  int m = 0;
  for (; m + 4 <= M; m += 4) few_rows_q<T, 4, NR>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, K);
  if (m < M) tile_rows<T, NR>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, M - m, K);
}

template <class T, int NR>
void gemv_q_by(const float* x, int64_t ldx, const T* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  int n = 0;
  if constexpr (NR > 1) {
    for (; n + NR <= N; n += NR) tile_rows<T, NR>(x, ldx, w + n * ldw, ldw, y + n, ldy, M, K);
  }
  for (; n < N; n++) tile_rows<T, 1>(x, ldx, w + n * ldw, ldw, y + n, ldy, M, K);
}

// Weight rows one row of x streams together. AMD's Zen 4 prefetcher follows one sequential
// stream of 1-byte weights at a core's full read rate, and interleaving two rows halves it (int8
// weights from DRAM, one core, a standalone loop: 36-42 GFLOP/s one row at a time against 18-21
// two at a time with software prefetch); Intel's Xeon, where kStreamColsQ = 2 was measured, needs
// the second FMA chain to keep up with its reads. AVX2's 8-wide chain needs two everywhere. The
// bits are the same either way.
inline bool one_stream_per_row() {
  static const bool amd = kWidth == 16 && __builtin_cpu_is("amd");
  return amd;
}

// One row of x streams kStreamColsQ weight rows at a time (one on AMD with AVX-512); 2-64 rows
// kFewRowColsQ (simd.h).
template <class T>
void gemv_q(const float* x, int64_t ldx, const T* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  if (M > 1) gemv_q_by<T, kFewRowColsQ>(x, ldx, w, ldw, y, ldy, M, N, K);
  else if (one_stream_per_row()) gemv_q_by<T, 1>(x, ldx, w, ldw, y, ldy, M, N, K);
  else gemv_q_by<T, kStreamColsQ>(x, ldx, w, ldw, y, ldy, M, N, K);
}

#if !defined(__AVX512F__)
// kWidth int4 values of a packed row from element k (k a multiple of kWidth; element 2j is the low
// nibble of byte j), as fp32 (exact). (AVX-512 looks the weights up instead: int4_values.)
inline VF widen_u4(const uint8_t* row, int k) {
#if defined(__AVX2__)
  int32_t four;
  std::memcpy(&four, row + k / 2, 4);
  const __m128i b = _mm_cvtsi32_si128(four);
  const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0f));
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f));
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
#else
  const uint8_t byte = row[k / 2];
  return float((k & 1) ? byte >> 4 : byte & 0x0f);
#endif
}
#endif

#if defined(__AVX512F__)
// The 16 values a group's weights can take, (q - zero) * scale for q = 0..15, rounded as
// decode_i4_rows rounds them (the same two operations), so that looking a weight up gives the bits
// widening it would: 5 operations per 16 weights instead of 9 (the lookup replaces the int-to-float
// conversion, the subtraction and the multiplication).
inline VF int4_values(VF zero, VF scale) {
  const VF q = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return vmul(vsub(q, zero), scale);
}
// The 16 weights of a packed row from element k as lookup indices: lane i holds the byte with
// element i in its low four bits (byte j for element 2j; byte j shifted right by 4 for 2j + 1).
// vpermps reads only an index's low four bits, so neither half needs masking.
inline __m512i u4_indices(const uint8_t* row, int k) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + k / 2));
  return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, _mm_srli_epi16(b, 4)));
}
#endif

// tile() for int4 groups: each weight (q - zero) * scale as decode_i4_rows makes it, group by
// group (group % kWidth == 0, so no vector straddles two), the same products in the same order.
template <int MR, int NR>
inline void tile_i4(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, const float* scales,
                    const uint8_t* zeros, int groups, int group, float* y, int64_t ldy) {
  VF acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = vzero();
  [[maybe_unused]] const uint8_t* ahead = w + int64_t(2) * NR * ldw;
  for (int g = 0; g < groups; g++) {
#if defined(__AVX512F__)
    VF lut[NR];
    for (int j = 0; j < NR; j++)
      lut[j] = int4_values(vset1(float(zeros[int64_t(j) * groups + g])), vset1(scales[int64_t(j) * groups + g]));
#else
    VF vs[NR], vz[NR];
    for (int j = 0; j < NR; j++) {
      vs[j] = vset1(scales[int64_t(j) * groups + g]);
      vz[j] = vset1(float(zeros[int64_t(j) * groups + g]));
    }
#endif
    for (int k = g * group, end = k + group; k < end; k += kWidth) {
#if defined(__AVX512F__) || defined(__AVX2__)
      if ((k & 127) == 0)
        for (int j = 0; j < NR; j++) _mm_prefetch(reinterpret_cast<const char*>(ahead + j * ldw + k / 2), _MM_HINT_T0);
#endif
      VF wv[NR];
#if defined(__AVX512F__)
      for (int j = 0; j < NR; j++) wv[j] = _mm512_permutexvar_ps(u4_indices(w + j * ldw, k), lut[j]);
#else
      for (int j = 0; j < NR; j++) wv[j] = vmul(vsub(widen_u4(w + j * ldw, k), vz[j]), vs[j]);
#endif
      for (int i = 0; i < MR; i++) {
        VF xv = vload(x + i * ldx + k);
        for (int j = 0; j < NR; j++) acc[i][j] = vfma(xv, wv[j], acc[i][j]);
      }
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) y[i * ldy + j] = vsum(acc[i][j]);
}

// few_rows_q for int4 groups.
template <int MR, int NR>
inline void few_rows_i4(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, const float* scales,
                        const uint8_t* zeros, int groups, int group, float* y, int64_t ldy) {
  if constexpr (MR > 4 && !tile_fits(MR, NR, 3)) {
    tile_i4<4, NR>(x, ldx, w, ldw, scales, zeros, groups, group, y, ldy);
    tile_i4<MR - 4, NR>(x + 4 * ldx, ldx, w, ldw, scales, zeros, groups, group, y + 4 * ldy, ldy);
  } else {
    tile_i4<MR, NR>(x, ldx, w, ldw, scales, zeros, groups, group, y, ldy);
  }
}

template <int NR>
inline void tile_rows_i4(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, const float* scales,
                         const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M) {
  if (M >= 1 && M <= 7)
    return with_rows(M, [&](auto rows) {
      few_rows_i4<decltype(rows)::value, NR>(x, ldx, w, ldw, scales, zeros, groups, group, y, ldy);
    });
  // More rows: tiles of 4, then the rest as one tile.
  int m = 0;
  for (; m + 4 <= M; m += 4) few_rows_i4<4, NR>(x + m * ldx, ldx, w, ldw, scales, zeros, groups, group, y + m * ldy, ldy);
  if (m < M) tile_rows_i4<NR>(x + m * ldx, ldx, w, ldw, scales, zeros, groups, group, y + m * ldy, ldy, M - m);
}

#if defined(__AVX2__)
// The sum of a vector's eight int32 lanes.
inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}
#endif

inline int32_t dot_i8(const int8_t* a, const int8_t* b, int K) {
  int k = 0;
  int32_t total = 0;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  // |a| as unsigned times b with a's sign: dpbusd multiplies u8 by s8 exactly.
  __m512i acc = _mm512_setzero_si512();
  for (; k < K; k += 64) {
    const int rest = std::min(64, K - k);
    const __mmask64 mask = rest == 64 ? ~__mmask64(0) : ((__mmask64(1) << rest) - 1);
    const __m512i av = _mm512_maskz_loadu_epi8(mask, a + k);
    const __m512i bv = _mm512_maskz_loadu_epi8(mask, b + k);
    const __m512i sb = _mm512_mask_sub_epi8(bv, _mm512_movepi8_mask(av), _mm512_setzero_si512(), bv);
    acc = _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(av), sb);
  }
  return _mm512_reduce_add_epi32(acc);
#elif defined(__AVX2__)
  __m256i acc = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  for (; k + 32 <= K; k += 32) {
    const __m256i av = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + k));
    const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + k));
    // |a| * sign(a) b: pairs sum to at most 2 * 127 * 127, inside int16.
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(av, av), _mm256_sign_epi8(bv, av));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p16, ones));
  }
  total = hsum_epi32(acc);
#endif
  for (; k < K; k++) total += int32_t(a[k]) * int32_t(b[k]);
  return total;
}

}  // namespace

void decode_i8_rows(const int8_t* q, int64_t ldq, int rows, int K, float* out) {
  for (int r = 0; r < rows; r++) {
    const int8_t* src = q + r * ldq;
    float* dst = out + int64_t(r) * K;
    int k = 0;
#if defined(__AVX512F__)
    for (; k + 16 <= K; k += 16)
      _mm512_storeu_ps(dst + k, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k)))));
#elif defined(__AVX2__)
    for (; k + 8 <= K; k += 8)
      _mm256_storeu_ps(dst + k, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + k)))));
#endif
    for (; k < K; k++) dst[k] = float(src[k]);
  }
}

void decode_i4_rows(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups,
                    int group, int rows, int K, float* out) {
  for (int r = 0; r < rows; r++) {
    const uint8_t* src = packed + r * ldp;
    float* dst = out + int64_t(r) * K;
    for (int g = 0; g < groups; g++) {
      const float s = scales[int64_t(r) * groups + g];
      const float z = float(zeros[int64_t(r) * groups + g]);
      int k = g * group;
      const int end = k + group;
#if defined(__AVX512F__)
      if (group % 16 == 0) {
        const __m512 lut = int4_values(_mm512_set1_ps(z), _mm512_set1_ps(s));
        for (; k < end; k += 16) _mm512_storeu_ps(dst + k, _mm512_permutexvar_ps(u4_indices(src, k), lut));
      }
#elif defined(__AVX2__)
      if (group % 8 == 0) {
        const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z);
        for (; k < end; k += 8) {
          int32_t four;
          std::memcpy(&four, src + k / 2, 4);
          const __m128i b = _mm_cvtsi32_si128(four);
          const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0f));
          const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f));
          const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
          _mm256_storeu_ps(dst + k, _mm256_mul_ps(_mm256_sub_ps(v, vz), vs));
        }
      }
#endif
      for (; k < end; k++) {
        const uint8_t byte = src[k / 2];
        const int q = (k & 1) ? byte >> 4 : byte & 0x0f;
        dst[k] = (float(q) - z) * s;
      }
    }
  }
}

void decode_e4m3_rows(const uint8_t* w, int64_t ldw, int rows, int K, float* out) {
  for (int r = 0; r < rows; r++) {
    const uint8_t* src = w + r * ldw;
    float* dst = out + int64_t(r) * K;
    int k = 0;
    // simd.h's widening (vload_e4m3: the code's bits as an fp16, times 2^8), exact.
#if defined(__AVX512F__) || defined(__AVX2__)
    for (; k + kWidth <= K; k += kWidth) vstore(dst + k, vload_e4m3(src + k));
#endif
    for (; k < K; k++) dst[k] = kE4m3.v[src[k]];
  }
}

void gemv_i8(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  gemv_q(x, ldx, w, ldw, y, ldy, M, N, K);
}

void gemv_e4m3(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  gemv_q(x, ldx, w, ldw, y, ldy, M, N, K);
}

namespace {
template <int NR>
void gemv_i4_by(const float* x, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
                const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N) {
  int n = 0;
  if constexpr (NR > 1) {
    for (; n + NR <= N; n += NR)
      tile_rows_i4<NR>(x, ldx, packed + n * ldp, ldp, scales + int64_t(n) * groups, zeros + int64_t(n) * groups, groups,
                       group, y + n, ldy, M);
  }
  for (; n < N; n++)
    tile_rows_i4<1>(x, ldx, packed + n * ldp, ldp, scales + int64_t(n) * groups, zeros + int64_t(n) * groups, groups,
                    group, y + n, ldy, M);
}
}  // namespace

bool gemv_i4(const float* x, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros,
             int groups, int group, float* y, int64_t ldy, int M, int N) {
  if (group % kWidth != 0) return false;
  if (M > 1) gemv_i4_by<kFewRowColsQ>(x, ldx, packed, ldp, scales, zeros, groups, group, y, ldy, M, N);
  else gemv_i4_by<kStreamColsQ>(x, ldx, packed, ldp, scales, zeros, groups, group, y, ldy, M, N);
  return true;
}

void gemm_f32w(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  // Rows of x in L2-sized chunks (as bf16's GEMM takes them) while the decoded weight block's
  // tiles pass over each; whole, every tile re-read all of x from memory once x outgrew the L2.
  // The same tiles, the same bits.
  const int chunk = l2_row_chunk(K);
  for (int mc = 0; mc < M; mc += chunk) {
    const int rows = std::min(chunk, M - mc);
    const float* xc = x + int64_t(mc) * ldx;
    float* yc = y + int64_t(mc) * ldy;
    int n = 0;
    for (; n + kNR <= N; n += kNR) tile_rows<float, kNR>(xc, ldx, w + n * ldw, ldw, yc + n, ldy, rows, K);
    for (; n < N; n++) tile_rows<float, 1>(xc, ldx, w + n * ldw, ldw, yc + n, ldy, rows, K);
  }
}

#if defined(__AVX2__) && !(defined(__AVX512VNNI__) && defined(__AVX512BW__))
namespace {
// acc[R][C] of R activation rows widened to int16 (xw: [R][K]) by C int8 weight rows, K a multiple
// of 16: vpmaddwd sums int16 pairs exactly into int32, so every sum is dot_i8's, bit for bit.
template <int R, int C>
inline void tile_i8(const int16_t* xw, int K, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc) {
  __m256i s[R][C];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) s[r][c] = _mm256_setzero_si256();
  for (int k = 0; k < K; k += 16) {
    __m256i wv[C];
    for (int c = 0; c < C; c++)
      wv[c] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c * ldw + k)));
    for (int r = 0; r < R; r++) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xw + int64_t(r) * K + k));
      for (int c = 0; c < C; c++) s[r][c] = _mm256_add_epi32(s[r][c], _mm256_madd_epi16(xv, wv[c]));
    }
  }
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) acc[r * ldacc + c] = hsum_epi32(s[r][c]);
}
}  // namespace
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
namespace {
// out[i] = the sum of v[i]'s 16 int32 lanes, for 16 vectors at once: a transpose-add tree (45
// instructions, where 16 separate reductions take about 130).
inline __m512i sum_lanes16(const __m512i v[16]) {
  __m512i pairs[8], quads[4];
  for (int i = 0; i < 8; i++)  // per 128-bit lane: [A0+A2, B0+B2, A1+A3, B1+B3] of v[2i], v[2i+1]
    pairs[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; i++)  // per 128-bit lane: that lane's sums of v[4i .. 4i+3]
    quads[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(pairs[2 * i], pairs[2 * i + 1]),
                                _mm512_unpackhi_epi64(pairs[2 * i], pairs[2 * i + 1]));
  // Then across the four 128-bit lanes: 128-bit lane g of the result holds v[4g .. 4g+3]'s sums.
  const __m512i h01 = _mm512_add_epi32(_mm512_shuffle_i32x4(quads[0], quads[1], 0x44), _mm512_shuffle_i32x4(quads[0], quads[1], 0xee));
  const __m512i h23 = _mm512_add_epi32(_mm512_shuffle_i32x4(quads[2], quads[3], 0x44), _mm512_shuffle_i32x4(quads[2], quads[3], 0xee));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(h01, h23, 0x88), _mm512_shuffle_i32x4(h01, h23, 0xdd));
}

// Largest K for which tile_i8_vnni's int32 sums cannot overflow: |(x + 128) w| <= 255 * 128.
constexpr int kVnniMaxK = 65536;

// sum_k w[n, k] for N weight rows (tile_i8_vnni's correction: 128 times it).
inline void weight_row_sums(const int8_t* w, int64_t ldw, int N, int K, int32_t* sums) {
  const __m512i ones = _mm512_set1_epi8(1);
  for (int n = 0; n < N; n++) {
    __m512i s = _mm512_setzero_si512();
    for (int k = 0; k < K; k += 64) {
      const __mmask64 mask = K - k >= 64 ? ~__mmask64(0) : (__mmask64(1) << (K - k)) - 1;
      s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(mask, w + n * ldw + k));
    }
    sums[n] = _mm512_reduce_add_epi32(s);
  }
}

// acc[R][4] of R (1-4) activation rows by 4 weight rows, exact. vpdpbusd multiplies unsigned by signed
// bytes, so the activations go in as x + 128 (their sign bit flipped) and 128 * sum_k w[c, k]
// (wsum) comes off at the end. Each 64-byte step loads 8 vectors for 16 products (dot_i8 loads 2
// for one, plus three sign fix-ups). While it runs, the next 4 weight rows are requested line by
// line (past the block's last rows too: a prefetch never faults): four interleaved rows from DRAM
// are a pattern Zen 4's prefetcher follows at a fraction of one stream's rate.
template <int R>
inline void tile_i8_vnni(const int8_t* xq, int64_t ldx, const int8_t* w, int64_t ldw, const int32_t* wsum,
                         int32_t* acc, int64_t ldacc, int K) {
  // (one loop, no lambda or escaping address: GCC keeps the accumulators in registers only so)
  __m512i s[R * 4];
#pragma GCC unroll 16
  for (int i = 0; i < R * 4; i++) s[i] = _mm512_setzero_si512();
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int k = 0; k < K; k += 64) {
    const __mmask64 mask = K - k >= 64 ? ~__mmask64(0) : (__mmask64(1) << (K - k)) - 1;
    __m512i wv[4], xv[R];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
      wv[c] = _mm512_maskz_loadu_epi8(mask, w + c * ldw + k);
      _mm_prefetch(reinterpret_cast<const char*>(w + (4 + c) * ldw + k), _MM_HINT_T0);
    }
    // (past K both are zero; x's flipped zero is 128, times a zero weight)
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) xv[r] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, xq + r * ldx + k), flip);
#pragma GCC unroll 16
    for (int i = 0; i < R * 4; i++) s[i] = _mm512_dpbusd_epi32(s[i], xv[i / 4], wv[i % 4]);
  }
  // The reduction takes a copy (s itself never has its address taken), zeros past R rows. The
  // index must stay a plain constant after unrolling: written as std::min(i, R * 4 - 1), GCC 12
  // put s back on the stack and the tile fell from 283 to 149 GFLOP/s (bench:gemm, 512 rows).
  __m512i done[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) done[i] = i < R * 4 ? s[i < R * 4 ? i : 0] : _mm512_setzero_si512();
  alignas(64) int32_t sums[16];
  _mm512_store_si512(sums, sum_lanes16(done));
  for (int r = 0; r < R; r++)
    for (int c = 0; c < 4; c++) acc[r * ldacc + c] = sums[r * 4 + c] - 128 * wsum[c];
}
}  // namespace
#endif

void gemm_i8i8(const int8_t* xq, int64_t ldxq, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc, int M, int N,
               int K) {
  int m = 0;
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
  // Three rows or more (prefill, decode batches): register tiles of 4 rows (then 1-3) by 4
  // weight rows. npm run bench:gemm, one Zen 4 core, int8_sq GFLOP/s with dot_i8 per output ->
  // tiles: 512 x 3072 x 1024 93 -> 283, 512 x 1024 x 3072 98 -> 300, 3 / 4 / 7 x 3072 x 1024 90 /
  // 91 / 115 -> 107 / 126-132 / 170. Two rows stay on dot_i8 (86-94 against the tile's 78-79:
  // one weight row streamed at a time). The same int32 sums (the self-test's int8SqExact).
  if (M >= 3 && K <= kVnniMaxK) {
    thread_local std::vector<int32_t> wsum;
    wsum.resize(size_t(N));
    // Per call, not stored with the weights: this pass streams the block's rows from memory one
    // at a time into the L2, which the tiles then read, and pays for itself (without it, wrong
    // sums aside, 3 / 4 / 8 rows ran at 58-84 / 84-107 / 139-173 GFLOP/s against 94-103 /
    // 116-131 / 169-188; 512 rows the same).
    weight_row_sums(w, ldw, N, K, wsum.data());
    for (; m < M; m += 4) {
      const int rows = std::min(4, M - m);
      int n = 0;
      for (; n + 4 <= N; n += 4) {
        const int8_t* x = xq + m * ldxq;
        int32_t* a = acc + m * ldacc + n;
        if (rows == 4) tile_i8_vnni<4>(x, ldxq, w + n * ldw, ldw, wsum.data() + n, a, ldacc, K);
        else if (rows == 3) tile_i8_vnni<3>(x, ldxq, w + n * ldw, ldw, wsum.data() + n, a, ldacc, K);
        else if (rows == 2) tile_i8_vnni<2>(x, ldxq, w + n * ldw, ldw, wsum.data() + n, a, ldacc, K);
        else tile_i8_vnni<1>(x, ldxq, w + n * ldw, ldw, wsum.data() + n, a, ldacc, K);
      }
      for (; n < N; n++)
        for (int r = m; r < m + rows; r++) acc[r * ldacc + n] = dot_i8(xq + r * ldxq, w + n * ldw, K);
    }
  }
#endif
#if defined(__AVX2__) && !(defined(__AVX512VNNI__) && defined(__AVX512BW__))
  // Prefill on AVX2 (no VNNI): four rows at a time, widened to int16 once, against two weight rows
  // per pass, so each weight load serves four rows and each activation load two weight rows
  // (dot_i8 loads both for every sum). On an AVX2-only AMD EPYC core (npm run bench:gemm) int8_sq
  // at 64-512 rows 1.01-1.08x bf16's GEMM -> 1.24-1.29x (4 x 3 tiles measured 1.15x over dot_i8
  // on a standalone loop, 2 x 4 1.12x: every shape stops near vpmaddwd's throughput).
  if (K % 16 == 0 && M >= 4) {
    constexpr int R = 4, C = 2;
    thread_local std::vector<int16_t> xw;
    xw.resize(size_t(R) * K);
    for (; m + R <= M; m += R) {
      for (int r = 0; r < R; r++)
        for (int k = 0; k < K; k += 16)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(xw.data() + int64_t(r) * K + k),
                              _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xq + (m + r) * ldxq + k))));
      int n = 0;
      for (; n + C <= N; n += C) tile_i8<R, C>(xw.data(), K, w + n * ldw, ldw, acc + m * ldacc + n, ldacc);
      for (; n < N; n++) tile_i8<R, 1>(xw.data(), K, w + n * ldw, ldw, acc + m * ldacc + n, ldacc);
    }
  }
#endif
  for (int n = 0; n < N; n++)  // (rows past the last group of four, or every row)
    for (int r = m; r < M; r++) acc[r * ldacc + n] = dot_i8(xq + r * ldxq, w + n * ldw, K);
}

}  // namespace grpst::cpu::GRPST_ISA
