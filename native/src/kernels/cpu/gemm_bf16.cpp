// y = x * w^T with bf16 weights in Hugging Face's [out, in] layout and fp32 activations and
// accumulators. A register tile of MR rows x NR outputs walks along K; each output element
// accumulates its products lane by lane in K order and is reduced by one vsum, so its value does
// not depend on which tile (or thread, or batch) computed it.
#include <algorithm>

#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

constexpr int kMR = kTileRows, kNR = kTileCols;  // the register tile (simd.h)
constexpr int kStreamingRows = 8;

// Rows of 1-6 KB end before the hardware prefetcher has ramped up, so each tile asks for the
// weights of the tile kPrefetchTiles ahead, one cache line per row per 64 bytes consumed.
constexpr int kPrefetchTiles = 2;

inline void prefetch(const uint16_t* p) {
#if defined(__AVX512F__) || defined(__AVX2__)
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
#else
  (void)p;
#endif
}

template <int MR, int NR>
inline void tile(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int K) {
  VF acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = vzero();
  const uint16_t* ahead = w + int64_t(kPrefetchTiles) * NR * ldw;
  int k = 0;
  for (; k + kWidth <= K; k += kWidth) {
    if (NR > 1 && kWidth > 1 && (k & 31) == 0)
      for (int j = 0; j < NR; j++) prefetch(ahead + j * ldw + k);
    VF wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = vload_bf16(w + j * ldw + k);
    for (int i = 0; i < MR; i++) {
      VF xv = vload(x + i * ldx + k);
      for (int j = 0; j < NR; j++) acc[i][j] = vfma(xv, wv[j], acc[i][j]);
    }
  }
  if (k < K) {
    int rest = K - k;
    VF wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = vload_bf16_n(w + j * ldw + k, rest);
    for (int i = 0; i < MR; i++) {
      VF xv = vload_n(x + i * ldx + k, rest);
      for (int j = 0; j < NR; j++) acc[i][j] = vfma(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++) {
    if constexpr (NR == 4) {
      vsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3], y + i * ldy);
    } else {
      for (int j = 0; j < NR; j++) y[i * ldy + j] = vsum(acc[i][j]);
    }
  }
}

template <int NR>
inline void rows(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int m0, int m1,
                 int K) {
  int m = m0;
  for (; m + kMR <= m1; m += kMR) tile<kMR, NR>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, K);
  for (; m < m1; m++) tile<1, NR>(x + m * ldx, ldx, w, ldw, y + m * ldy, ldy, K);
}

// 2-7 rows of x (decode batches, speculative steps): every row in one register tile, so each
// weight vector is loaded once for all of them and the rows' FMA chains overlap each other's
// latency. Four rows and one at a time (the old way) left a single chain in flight for the rest
// and re-read the weight row per row of x: 5-7 rows ran at one row's rate or less. Two weight rows
// interleaved (kFewRowCols) reuse each x vector twice, which long rows need (x past the L1);
// short rows (K <= 2,048) at 2-4 rows of x stream faster one weight row at a time. `npm run
// bench:gemm`, one Zen 4 thread, GFLOP/s for 3072x1024 / 1024x3072, before -> after: 2 rows
// 29-38 / 19-20 -> 36-45 / 25-27, 4 rows 50-55 / 25-27 -> 43-52 / 44-47, 6 rows 38-41 / 29-30 ->
// 51-69 / 56-60, 7 rows 39-42 / 29-31 -> 42-61 / 56-66 (the machine's noise is about 10%).
// Every output sums lane by lane in K order and is reduced by one vsum whatever the tile, so the
// bits are those of the other paths (the kernel self-test's batch invariance).
template <int MR, int NR>
void few_rows_by(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int n0, int n1,
                 int K) {
  int n = n0;
  for (; n + NR <= n1; n += NR) tile<MR, NR>(x, ldx, w + int64_t(n) * ldw, ldw, y + n, ldy, K);
  for (; n < n1; n++) tile<MR, 1>(x, ldx, w + int64_t(n) * ldw, ldw, y + n, ldy, K);
}

template <int MR>
void few_rows(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int n0, int n1,
              int K) {
  if constexpr (!tile_fits(MR, kFewRowCols, 1)) {
    // More accumulators than registers (AVX2's 16 at 7 rows): two tiles of rows, 4 and the rest.
    few_rows<4>(x, ldx, w, ldw, y, ldy, n0, n1, K);
    few_rows<MR - 4>(x + 4 * ldx, ldx, w, ldw, y + 4 * ldy, ldy, n0, n1, K);
  } else if (kFewRowCols > 1 && (MR > 4 || K > 2048)) {
    few_rows_by<MR, kFewRowCols>(x, ldx, w, ldw, y, ldy, n0, n1, K);
  } else {
    few_rows_by<MR, 1>(x, ldx, w, ldw, y, ldy, n0, n1, K);
  }
}

}  // namespace

void gemm_bf16(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0,
               int n1, int K) {
  // 2-7 rows: one register tile of them all (few_rows). One row (decode): memory-bound, so the
  // weights are streamed kStreamCols rows at a time (one on AVX-512, whose prefetcher follows one
  // strictly sequential stream best; two on AVX2, whose narrower FMAs need a second chain;
  // simd.h). The per-element arithmetic is the same as in the tiled path.
  if (M > 1 && M < kStreamingRows)
    return with_rows(M, [&](auto rows) { few_rows<decltype(rows)::value>(x, ldx, w, ldw, y, ldy, n0, n1, K); });
  if (M < kStreamingRows) {
    int n = n0;
    if constexpr (kStreamCols > 1) {
      for (; n + kStreamCols <= n1; n += kStreamCols)
        rows<kStreamCols>(x, ldx, w + int64_t(n) * ldw, ldw, y + n, ldy, 0, M, K);
    }
    for (; n < n1; n++) rows<1>(x, ldx, w + int64_t(n) * ldw, ldw, y + n, ldy, 0, M, K);
    return;
  }
  // Rows are taken in chunks whose activations stay in L2 while the weight tiles stream past.
  const int chunk = l2_row_chunk(K);
  for (int mc = 0; mc < M; mc += chunk) {
    int mend = std::min(M, mc + chunk);
    int n = n0;
    for (; n + kNR <= n1; n += kNR) rows<kNR>(x, ldx, w + n * ldw, ldw, y + n, ldy, mc, mend, K);
    for (; n < n1; n++) rows<1>(x, ldx, w + n * ldw, ldw, y + n, ldy, mc, mend, K);
  }
}

}  // namespace grpst::cpu::GRPST_ISA
