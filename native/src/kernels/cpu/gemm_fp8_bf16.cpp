// fp8 (e4m3) linears through AVX-512 BF16 dot products, where the level has them. Both operands
// are exact in bf16 (fp8's activations are rounded to e4m3 before the product, its weights are
// e4m3), and so is their product (4 + 4 significant bits), so `vdpbf16ps` forms the same
// products as fp32 FMAs, two per lane per instruction: twice the FMA's rate on Zen 4 (3.56 against
// 3.65 instructions per ns, each of 32 products against 16). Every output is computed the same
// way whatever the number of rows or the path: its 16 lanes accumulate along K in steps of 32 and
// one fixed tree adds them, so a row gives the same bits alone or in a batch.
#include "kernels/cpu/gemm_fp8_bf16.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace grpst::cpu::GRPST_ISA {

namespace {

// out[i] = the sum of v[i]'s 16 lanes for 16 vectors, each output's lanes added in one fixed
// order (a transpose-add tree: lanes of one vector only ever meet lanes of the same vector).
inline __m512 sum_lanes16(const __m512 v[16]) {
  __m512 pairs[8], quads[4];
  for (int i = 0; i < 8; i++)
    pairs[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; i++) {
    const __m512d a = _mm512_castps_pd(pairs[2 * i]), b = _mm512_castps_pd(pairs[2 * i + 1]);
    quads[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
  }
  const __m512 h01 = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x44), _mm512_shuffle_f32x4(quads[0], quads[1], 0xee));
  const __m512 h23 = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], 0x44), _mm512_shuffle_f32x4(quads[2], quads[3], 0xee));
  return _mm512_add_ps(_mm512_shuffle_f32x4(h01, h23, 0x88), _mm512_shuffle_f32x4(h01, h23, 0xdd));
}

// 32 e4m3 bytes as 32 bf16 values (exact). A normal code's magnitude bits shift into bf16's
// place with the exponent rebiased (7 -> 127); the seven subnormal magnitudes (m * 2^-9) come
// from a table. The NaN code (never in an engine: the quantizers saturate) reads as 480.
inline __m512i e4m3_to_bf16(const uint8_t* p, __mmask32 mask) {
  const __m512i b = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask, p));
  const __m512i mag = _mm512_and_si512(b, _mm512_set1_epi16(0x7f));
  const __m512i normal = _mm512_add_epi16(_mm512_slli_epi16(mag, 4), _mm512_set1_epi16(0x3c00));
  // bf16 of m * 2^-9 for m = 0..7 (index 0: zero)
  const __m512i sub_table = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                             0x3c60, 0x3c40, 0x3c20, 0x3c00, 0x3bc0, 0x3b80, 0x3b00, 0);
  const __mmask32 subnormal = _mm512_cmplt_epu16_mask(mag, _mm512_set1_epi16(8));
  const __m512i value = _mm512_mask_permutexvar_epi16(normal, subnormal, mag, sub_table);
  return _mm512_or_si512(value, _mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x80)), 8));
}

// A weight row's next 32 values as bf16: from e4m3 bytes, or from a block already widened.
inline __m512i weights32(const uint8_t* w, int k, __mmask32 mask) { return e4m3_to_bf16(w + k, mask); }
inline __m512i weights32(const uint16_t* w, int k, __mmask32 mask) { return _mm512_maskz_loadu_epi16(mask, w + k); }

// y[r, c] for R rows of x (bf16) by C weight rows, R * C <= 16. One loop without a lambda, the
// accumulators copied out before the reduction, the copy indexed by plain constants: so GCC keeps
// them in registers (the int8 tile measured 149 against 283 GFLOP/s with them on the stack).
template <int R, int C, class W>
inline void tile(const uint16_t* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int K) {
  static_assert(R * C <= 16, "one reduction tree: at most 16 outputs");
  __m512 s[R * C];
#pragma GCC unroll 16
  for (int i = 0; i < R * C; i++) s[i] = _mm512_setzero_ps();
  for (int k = 0; k < K; k += 32) {
    const __mmask32 mask = K - k >= 32 ? ~__mmask32(0) : (__mmask32(1) << (K - k)) - 1;
    __m512bh wv[C], xv[R];
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
      wv[c] = (__m512bh)weights32(w + c * ldw, k, mask);
      // The next C weight rows, a line at a time (past the last rows too: a prefetch never faults);
      // one row at a time streams alone, the pattern the prefetcher follows best.
      if constexpr (C > 1) _mm_prefetch(reinterpret_cast<const char*>(w + (C + c) * ldw + k), _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) xv[r] = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + r * ldx + k);
#pragma GCC unroll 16
    for (int i = 0; i < R * C; i++) s[i] = _mm512_dpbf16_ps(s[i], xv[i / C], wv[i % C]);
  }
  __m512 done[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) done[i] = i < R * C ? s[i < R * C ? i : 0] : _mm512_setzero_ps();
  alignas(64) float sums[16];
  _mm512_store_ps(sums, sum_lanes16(done));
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) y[r * ldy + c] = sums[r * C + c];
}

template <int R, int C = 4, class W>
void rows_by(const uint16_t* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int N, int K) {
  int n = 0;
  for (; n + C <= N; n += C) tile<R, C>(x, ldx, w + n * ldw, ldw, y + n, ldy, K);
  for (; n < N; n++) tile<R, 1>(x, ldx, w + n * ldw, ldw, y + n, ldy, K);
}

template <class W>
void all_rows(const uint16_t* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  int m = 0;
  for (; m + 4 <= M; m += 4) rows_by<4>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, N, K);
  const int rest = M - m;
  if (rest == 3) rows_by<3>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, N, K);
  else if (rest == 2) rows_by<2>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, N, K);
  else if (rest == 1) rows_by<1>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, N, K);
}

// Up to 8 rows with the weights widened where they are loaded: 1-4 rows by 4 weight rows, 5-8 by
// two (each weight widened once per pass).
void few_rows(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  switch (M) {
    case 1: return rows_by<1>(x, ldx, w, ldw, y, ldy, N, K);
    case 2: return rows_by<2>(x, ldx, w, ldw, y, ldy, N, K);
    case 3: return rows_by<3>(x, ldx, w, ldw, y, ldy, N, K);
    case 4: return rows_by<4>(x, ldx, w, ldw, y, ldy, N, K);
    case 5: return rows_by<5, 2>(x, ldx, w, ldw, y, ldy, N, K);
    case 6: return rows_by<6, 2>(x, ldx, w, ldw, y, ldy, N, K);
    case 7: return rows_by<7, 2>(x, ldx, w, ldw, y, ldy, N, K);
    default: return rows_by<8, 2>(x, ldx, w, ldw, y, ldy, N, K);
  }
}

}  // namespace

void gemm_e4m3_bf16(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K) {
  // One row: a weight row at a time (one stream from memory is what Zen 4 prefetches best; four
  // interleaved measured 23-30 GFLOP/s against 28). Up to 24 rows: groups of 8 with the weights
  // widened in registers (`npm run bench:gemm`, one Zen 4 core, 3072 x 1024, GFLOP/s fp32 path ->
  // this: 4 rows 75-85 -> 92-95, 8 rows 76-87 -> 120-124). More: a block of weights widened once
  // into bf16 (at 9-16 rows that pass cost more than it saved: 64-89 against the groups' 100+).
  if (M == 1) {
    for (int n = 0; n < N; n++) tile<1, 1>(x, ldx, w + n * ldw, ldw, y + n, ldy, K);
    return;
  }
  if (M <= 24) {
    for (int m = 0; m < M; m += 8) few_rows(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, std::min(8, M - m), N, K);
    return;
  }
  thread_local std::vector<uint16_t> block;
  block.resize(size_t(N) * K);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k += 32) {
      const __mmask32 mask = K - k >= 32 ? ~__mmask32(0) : (__mmask32(1) << (K - k)) - 1;
      _mm512_mask_storeu_epi16(block.data() + size_t(n) * K + k, mask, e4m3_to_bf16(w + n * ldw + k, mask));
    }
  all_rows(x, ldx, block.data(), int64_t(K), y, ldy, M, N, K);
}

}  // namespace grpst::cpu::GRPST_ISA

#endif
