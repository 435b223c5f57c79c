// fp8 (e4m3) linears through AVX-512 BF16 dot products, where the level has them. Both operands
// are exact in bf16 (fp8's activations are rounded to e4m3 before the product, its weights are
// e4m3), and so is their product (4 + 4 significant bits), so `vdpbf16ps` forms the same
// products as fp32 FMAs, two per lane per instruction: twice the FMA's rate on Zen 4 (3.56 against
// 3.65 instructions per ns, each of 32 products against 16).
//
// Widening: 64 weight bytes at a time, two `vpermi2b` lookups (AVX-512 VBMI) give the low and
// high bytes of their bf16 values (128-entry tables indexed by the magnitude, subnormals
// included; the sign ORed into the high byte) and two byte unpacks interleave them into 2 x 32
// bf16 values: six instructions for 64 weights, where shifting and rebiasing each 32 took about
// nine and bound one row at 28 GFLOP/s a core. The unpacks leave the values in "pair order" (each
// 128-bit lane's first eight bytes in the first vector, its last eight in the second), so the
// activations are stored in that order once per call (e4m3_bf16_pair_slot) instead of the
// weights being shuffled back on every pass.
//
// Sums: every output's 16 lanes accumulate along K, the two halves of each 64-value chunk in turn,
// and one fixed tree adds them, whatever the tile: so a row gives the same bits alone or batched
// (the kernel self-test's quantDecodeRowsInvariant) on every path: one row streams a weight row at
// a time (one sum per output: two or four rows interleaved measured 17-31 GFLOP/s a core against
// 44-48, the prefetcher following one stream best), 2-24 rows go in tiles of up to 4 rows by 4
// weight rows widened in registers, more through a block widened once into bf16 (pair order).
#include "kernels/cpu/gemm_fp8_bf16.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VBMI__)
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <vector>

namespace grpst::cpu::GRPST_ISA {

namespace {

// bf16 bits of the e4m3 magnitude code m (0..127: the code without its sign). Normal codes shift
// into bf16's place with the exponent rebiased (7 -> 127); the seven subnormals (m * 2^-9) are
// listed. The NaN code (never in an engine: the quantizers saturate) reads as 480.
constexpr uint16_t e4m3_magnitude_bf16(int m) {
  constexpr uint16_t subnormal[8] = {0, 0x3b00, 0x3b80, 0x3bc0, 0x3c00, 0x3c20, 0x3c40, 0x3c60};
  return m < 8 ? subnormal[m] : uint16_t((m << 4) + 0x3c00);
}

struct ByteTables {
  alignas(64) std::array<uint8_t, 128> low{}, high{};
};
constexpr ByteTables make_byte_tables() {
  ByteTables t;
  for (int m = 0; m < 128; m++) {
    t.low[m] = uint8_t(e4m3_magnitude_bf16(m) & 0xff);
    t.high[m] = uint8_t(e4m3_magnitude_bf16(m) >> 8);
  }
  return t;
}
constexpr ByteTables kByteTables = make_byte_tables();

// The four table registers, loaded once per tile.
struct Widen {
  __m512i low0, low1, high0, high1;
  Widen()
      : low0(_mm512_load_si512(kByteTables.low.data())), low1(_mm512_load_si512(kByteTables.low.data() + 64)),
        high0(_mm512_load_si512(kByteTables.high.data())), high1(_mm512_load_si512(kByteTables.high.data() + 64)) {}
  // 64 e4m3 bytes as 2 x 32 bf16 values in pair order (vpermi2b reads the index's low 7 bits:
  // the magnitude; the sign bit is taken from the byte itself).
  inline void pair(const uint8_t* p, __m512i& first, __m512i& second) const {
    const __m512i b = _mm512_loadu_si512(p);
    const __m512i lo = _mm512_permutex2var_epi8(low0, b, low1);
    const __m512i hi = _mm512_ternarylogic_epi32(_mm512_permutex2var_epi8(high0, b, high1), b,
                                                 _mm512_set1_epi8(char(0x80)), 0xf8);  // hi | (b & 0x80)
    first = _mm512_unpacklo_epi8(lo, hi);
    second = _mm512_unpackhi_epi8(lo, hi);
  }
};

// Up to 63 values past the last whole chunk, in natural order: 32 e4m3 bytes widened one by one
// through the magnitude table as words.
inline __m512i tail_weights(const uint8_t* p, __mmask32 mask) {
  const __m512i b = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask, p));
  const __m512i mag = _mm512_and_si512(b, _mm512_set1_epi16(0x7f));
  alignas(64) static constexpr std::array<uint16_t, 128> words = [] {
    std::array<uint16_t, 128> t{};
    for (int m = 0; m < 128; m++) t[m] = e4m3_magnitude_bf16(m);
    return t;
  }();
  const __m512i lo = _mm512_load_si512(words.data()), hi = _mm512_load_si512(words.data() + 32);
  const __m512i lo2 = _mm512_load_si512(words.data() + 64), hi2 = _mm512_load_si512(words.data() + 96);
  const __m512i first = _mm512_permutex2var_epi16(lo, mag, hi);     // magnitudes 0..63
  const __m512i second = _mm512_permutex2var_epi16(lo2, mag, hi2);  // 64..127
  const __m512i value = _mm512_mask_blend_epi16(_mm512_cmpge_epu16_mask(mag, _mm512_set1_epi16(64)), first, second);
  return _mm512_or_si512(value, _mm512_slli_epi16(_mm512_and_si512(b, _mm512_set1_epi16(0x80)), 8));
}

// A weight row's next 64 values (a whole chunk) as bf16 in pair order, and the tail's next 32 in
// natural order: from e4m3 bytes, or from a block already widened the same way.
inline void chunk_weights(const Widen& wd, const uint8_t* w, int k, __m512i& a, __m512i& b) { wd.pair(w + k, a, b); }
inline void chunk_weights(const Widen&, const uint16_t* w, int k, __m512i& a, __m512i& b) {
  a = _mm512_loadu_si512(w + k);
  b = _mm512_loadu_si512(w + k + 32);
}
inline __m512i tail32(const uint8_t* w, int k, __mmask32 mask) { return tail_weights(w + k, mask); }
inline __m512i tail32(const uint16_t* w, int k, __mmask32 mask) { return _mm512_maskz_loadu_epi16(mask, w + k); }

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

// One vector's lanes in sum_lanes16's order, bit for bit (within each 128-bit lane (a0 + a2) +
// (a1 + a3), then lanes (L0 + L2) + (L1 + L3)): the one-row path's reduction, a quarter of the tree.
inline float sum_lanes1(__m512 v) {
  v = _mm512_add_ps(v, _mm512_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_ps(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(v);
}

// y[r, c] for R rows of x (bf16, pair order) by C weight rows, R <= 4 and C <= 4: both halves of
// the R activation chunks loaded first, then each weight row's chunk widened and used at once (16
// sums, 8 activation and 2 weight vectors, the 4 table registers: 31 of the 32). One loop without a
// lambda, the accumulators copied out before the reduction, the copy indexed by plain constants:
// so GCC keeps them in registers (the int8 tile measured 149 against 283 GFLOP/s with them on the stack).
template <int R, int C, class W>
inline void tile(const uint16_t* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int K, const Widen& wd) {
  static_assert(R * C <= 16 && C <= 4, "16 sums at most");
  __m512 s[R * C];
#pragma GCC unroll 16
  for (int i = 0; i < R * C; i++) s[i] = _mm512_setzero_ps();
  const int whole = K / 64 * 64;
  for (int k = 0; k < whole; k += 64) {
    if constexpr (R <= 4) {
      __m512bh xa[R], xb[R];
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) {
        xa[r] = (__m512bh)_mm512_loadu_si512(x + r * ldx + k);
        xb[r] = (__m512bh)_mm512_loadu_si512(x + r * ldx + k + 32);
      }
#pragma GCC unroll 4
      for (int c = 0; c < C; c++) {
        __m512i wa, wb;
        chunk_weights(wd, w + c * ldw, k, wa, wb);
        // The next C weight rows, a line at a time (past the last rows too: a prefetch never faults).
        if constexpr (C > 1) _mm_prefetch(reinterpret_cast<const char*>(w + (C + c) * ldw + k), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) s[r * C + c] = _mm512_dpbf16_ps(s[r * C + c], xa[r], (__m512bh)wa);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) s[r * C + c] = _mm512_dpbf16_ps(s[r * C + c], xb[r], (__m512bh)wb);
      }
    } else {
      // More rows than the registers hold both halves of: the C weight rows widened first, then
      // each half's R activation vectors (each sum still takes the first half, then the second).
      __m512i wa[C], wb[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; c++) {
        chunk_weights(wd, w + c * ldw, k, wa[c], wb[c]);
        if constexpr (C > 1) _mm_prefetch(reinterpret_cast<const char*>(w + (C + c) * ldw + k), _MM_HINT_T0);
      }
      __m512bh xv[R];
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) xv[r] = (__m512bh)_mm512_loadu_si512(x + r * ldx + k);
#pragma GCC unroll 16
      for (int i = 0; i < R * C; i++) s[i] = _mm512_dpbf16_ps(s[i], xv[i / C], (__m512bh)wa[i % C]);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) xv[r] = (__m512bh)_mm512_loadu_si512(x + r * ldx + k + 32);
#pragma GCC unroll 16
      for (int i = 0; i < R * C; i++) s[i] = _mm512_dpbf16_ps(s[i], xv[i / C], (__m512bh)wb[i % C]);
    }
  }
  for (int k = whole; k < K; k += 32) {  // the tail, natural order, in steps of 32
    const __mmask32 mask = K - k >= 32 ? ~__mmask32(0) : (__mmask32(1) << (K - k)) - 1;
    __m512bh xv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) xv[r] = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + r * ldx + k);
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
      const __m512bh wv = (__m512bh)tail32(w + c * ldw, k, mask);
#pragma GCC unroll 4
      for (int r = 0; r < R; r++) s[r * C + c] = _mm512_dpbf16_ps(s[r * C + c], xv[r], wv);
    }
  }
  if constexpr (R * C == 1) {
    y[0] = sum_lanes1(s[0]);
  } else {
    __m512 done[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) done[i] = i < R * C ? s[i < R * C ? i : 0] : _mm512_setzero_ps();
    alignas(64) float sums[16];
    _mm512_store_ps(sums, sum_lanes16(done));
    for (int r = 0; r < R; r++)
      for (int c = 0; c < C; c++) y[r * ldy + c] = sums[r * C + c];
  }
}

template <int R, int C, class W>
void rows_by(const uint16_t* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int N, int K) {
  const Widen wd;
  int n = 0;
  for (; n + C <= N; n += C) tile<R, C>(x, ldx, w + n * ldw, ldw, y + n, ldy, K, wd);
  for (; n < N; n++) tile<R, 1>(x, ldx, w + n * ldw, ldw, y + n, ldy, K, wd);
}

// Up to 4 rows by 4 weight rows, 5-8 by 2, the weights widened where they are loaded.
template <class W>
void few_rows(const uint16_t* x, int64_t ldx, const W* w, int64_t ldw, float* y, int64_t ldy, int M, int N, int K) {
  switch (M) {
    case 1: return rows_by<1, 1>(x, ldx, w, ldw, y, ldy, N, K);
    case 2: return rows_by<2, 4>(x, ldx, w, ldw, y, ldy, N, K);
    case 3: return rows_by<3, 4>(x, ldx, w, ldw, y, ldy, N, K);
    case 4: return rows_by<4, 4>(x, ldx, w, ldw, y, ldy, N, K);
    case 5: return rows_by<5, 2>(x, ldx, w, ldw, y, ldy, N, K);
    case 6: return rows_by<6, 2>(x, ldx, w, ldw, y, ldy, N, K);
    case 7: return rows_by<7, 2>(x, ldx, w, ldw, y, ldy, N, K);
    default: return rows_by<8, 2>(x, ldx, w, ldw, y, ldy, N, K);
  }
}

}  // namespace

void gemm_e4m3_bf16(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K) {
  // Tiles of up to 4 rows with the weights widened in registers (each weight once per 4 rows: six
  // instructions per 64), or from 25 rows of short weight rows a block of weights widened once
  // into bf16 (pair order) and 4 x 4 tiles over it. One Zen 4 core, GFLOP/s in registers / block:
  // 32 x 1024 x 3072 173 / 137, 512 x 1024 x 3072 169 / 161, 512 x 1024 x 6144 167 / 152;
  // 64 x 3072 x 1024 170 / 184, 512 x 3072 x 1024 171 / 196, 512 x 2048 x 2048 164 / 181.
  if (M <= 24 || K > 2048) {
    // Up to 8 rows in one group (8 x 2 tiles: each weight widened once) while their activations
    // fit half the L1 (16 KB: every pair of weight rows reads them all), else groups of 4 (4 x 4
    // tiles). One core, GFLOP/s groups of 4 / one group: 8 x 2048 x 1024 121 / 150, 6 x 2048 x
    // 1024 94-98 / 114-120; 8 x 1024 x 2048 113-118 / 103-109, 16 x 2048 x 1024 145 / 131-136,
    // 8 x 1024 x 3072 148 / 132.
    const int group = M <= 8 && int64_t(M) * K <= 8192 ? 8 : 4;
    for (int m = 0; m < M; m += group)
      few_rows(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, std::min(group, M - m), N, K);
    return;
  }
  thread_local std::vector<uint16_t> block;
  block.resize(size_t(N) * K);
  const Widen wd;
  const int whole = K / 64 * 64;
  for (int n = 0; n < N; n++) {
    uint16_t* row = block.data() + size_t(n) * K;
    for (int k = 0; k < whole; k += 64) {
      __m512i a, b;
      wd.pair(w + n * ldw + k, a, b);
      _mm512_storeu_si512(row + k, a);
      _mm512_storeu_si512(row + k + 32, b);
    }
    for (int k = whole; k < K; k += 32) {
      const __mmask32 mask = K - k >= 32 ? ~__mmask32(0) : (__mmask32(1) << (K - k)) - 1;
      _mm512_mask_storeu_epi16(row + k, mask, tail_weights(w + n * ldw + k, mask));
    }
  }
  const uint16_t* wb = block.data();
  int m = 0;
  for (; m + 4 <= M; m += 4) rows_by<4, 4>(x + m * ldx, ldx, wb, int64_t(K), y + m * ldy, ldy, N, K);
  if (m < M) few_rows(x + m * ldx, ldx, wb, int64_t(K), y + m * ldy, ldy, M - m, N, K);
}

}  // namespace grpst::cpu::GRPST_ISA

#endif
