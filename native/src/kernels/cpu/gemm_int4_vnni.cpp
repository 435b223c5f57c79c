// int4 groups (int4_awq) against a few rows of x's int8 parts in registers, with AVX-512 VNNI
// (VPDPBUSD: four u8 x s8 products summed into each int32 lane): the amx level's kernel for one
// and two rows of x (kI4VnniRows), where widening weights into tiles costs more than the tile
// products save. Its sums are gemm_amx_int4.cpp's, exactly: each group's d_p = sum_k a_p[k] (q[k] - zero)
// as an int32 (here sum a_p q - zero * sum a_p), then the same fp32 steps in the same order
// (int4_group_sum.h), so a row of x gives the same bits on either path.
//
// Shapes: a block of 16 weight rows at a time, lane r of every vector row r: a 64-weight chunk
// (u8 in the chunk order: its 32 low nibbles, then its 32 high ones, as x's parts lie) is read as
// 16-byte quarters of the 16 rows, four rows to a vector, and 4 x 4 transposes in the 128-bit
// lanes give vectors whose lane r holds four weights of row r: one VPDPBUSD per dword of a part
// multiplies all 16 rows by that dword of x broadcast (a whole 16 x 16 transpose of widened rows
// needed 32 vectors live and spilled). One row of x skips those transposes: it multiplies the
// four-row vectors as they are and adds each lane's four sums once a group.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/int4_group_sum.h"

namespace grpst::cpu::amx {

namespace {

using tiles::transpose16;

constexpr int kRows = 16;   // weight rows a block (lanes)
constexpr int kChunk = 64;  // weights a chunk
constexpr int kParts = 3;

// y[m, 0..rows) of one block of up to 16 weight rows; block_scales / block_zeros: its scales and
// zero points as [groups][16] (rows past `rows` zero).
template <int M>
void block_rows(const int8_t* const* part_rows, const float* part_scales, const int32_t* part_sums, const uint8_t* nibbles,
                int64_t ldp, const float* block_scales, const int32_t* block_zeros, int groups, int group, int rows,
                float* y, int64_t ldy) {
  const int cpg = group / kChunk;
  const __m512i low = _mm512_set1_epi8(0x0f);
  // rows past `rows` read the last one again (their lanes are not stored)
  const uint8_t* row[kRows];
  for (int r = 0; r < kRows; r++) row[r] = nibbles + int64_t(std::min(r, rows - 1)) * ldp;
  const __mmask16 row_mask = __mmask16((1u << rows) - 1);
  __m512 acc[M];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int g = 0; g < groups; g++) {
    __m512i d[M][kParts];
    for (auto& dm : d)
      for (auto& dp : dm) dp = _mm512_setzero_si512();
    // one row of x: the four-row vectors multiplied as they are, against x's quarter in every
    // 128-bit lane, each lane's four dword sums added at the group's end (one row has the
    // registers for the 4 x 3 sums; the transposes per chunk cost more than that per group)
    __m512i quads[M == 1 ? 4 : 1][kParts];
    if constexpr (M == 1)
      for (auto& qa : quads)
        for (auto& qp : qa) qp = _mm512_setzero_si512();
    for (int c = 0; c < cpg; c++) {
      const int kc = g * cpg + c;
      // A chunk's 32 bytes a row, in two 16-byte quarters h: the low nibbles of quarter h are the
      // chunk's dwords 4h..4h+3, its high nibbles dwords 8 + 4h..8 + 4h + 3 (the chunk order).
      for (int h = 0; h < 2; h++) {
        // q[a], 128-bit lane L: quarter h of row a + 4L
        __m512i q[4];
        for (int a = 0; a < 4; a++) {
          const uint8_t* at = row[a] + size_t(kc) * (kChunk / 2) + 16 * h;
          __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[a + 4] + (at - row[a]))), 1);
          v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[a + 8] + (at - row[a]))), 2);
          q[a] = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row[a + 12] + (at - row[a]))), 3);
        }
        for (int half = 0; half < 2; half++) {  // low nibbles, then high ones
          __m512i u[4];
          for (int a = 0; a < 4; a++) u[a] = _mm512_and_si512(half ? _mm512_srli_epi16(q[a], 4) : q[a], low);
          const int dword0 = 8 * half + 4 * h;
          if constexpr (M == 1) {
            for (int p = 0; p < kParts; p++) {
              const __m512i xq = _mm512_broadcast_i32x4(
                  _mm_loadu_si128(reinterpret_cast<const __m128i*>(part_rows[p] + kc * kChunk + 4 * dword0)));
              for (int a = 0; a < 4; a++) quads[a][p] = _mm512_dpbusd_epi32(quads[a][p], u[a], xq);
            }
            continue;
          }
          // a 4 x 4 transpose in each 128-bit lane: w[c] lane r = dword c of the quarter, row r
          const __m512i t0 = _mm512_unpacklo_epi32(u[0], u[1]), t1 = _mm512_unpackhi_epi32(u[0], u[1]);
          const __m512i t2 = _mm512_unpacklo_epi32(u[2], u[3]), t3 = _mm512_unpackhi_epi32(u[2], u[3]);
          const __m512i w[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                                _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
          for (int j = 0; j < 4; j++)
            for (int m = 0; m < M; m++)
              for (int p = 0; p < kParts; p++) {
                int32_t xj;
                std::memcpy(&xj, part_rows[m * kParts + p] + kc * kChunk + 4 * (dword0 + j), 4);
                d[m][p] = _mm512_dpbusd_epi32(d[m][p], w[j], _mm512_set1_epi32(xj));
              }
        }
      }
      // the next block's rows, one contiguous run of 16 x K / 2 bytes, an equal share a chunk (a
      // row's own stream, 16 of them in a few pages, left the loads waiting on memory)
      const char* ahead = reinterpret_cast<const char*>(nibbles) + kRows * ldp + size_t(kc) * kRows * (kChunk / 2);
      for (int line = 0; line < kRows * (kChunk / 2); line += 64) _mm_prefetch(ahead + line, _MM_HINT_T0);
    }
    if constexpr (M == 1)
      for (int p = 0; p < kParts; p++) {
        // quads[a][p], 128-bit lane L: four partial sums of row a + 4L -> lane 4L + a their total
        const __m512i t0 = _mm512_add_epi32(_mm512_unpacklo_epi32(quads[0][p], quads[1][p]),
                                            _mm512_unpackhi_epi32(quads[0][p], quads[1][p]));
        const __m512i t1 = _mm512_add_epi32(_mm512_unpacklo_epi32(quads[2][p], quads[3][p]),
                                            _mm512_unpackhi_epi32(quads[2][p], quads[3][p]));
        d[0][p] = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
      }
    // the zero points: sum a (q - zero) = sum a q - zero * sum a
    const __m512i z = _mm512_load_si512(block_zeros + g * kRows);
    const __m512 gs = _mm512_load_ps(block_scales + g * kRows);
    for (int m = 0; m < M; m++) {
      __m512i dz[kParts];
      for (int p = 0; p < kParts; p++)
        dz[p] = _mm512_sub_epi32(d[m][p], _mm512_mullo_epi32(z, _mm512_set1_epi32(part_sums[(m * kParts + p) * groups + g])));
      acc[m] = int4_add_group(dz[0], dz[1], dz[2], _mm512_set1_ps(part_scales[m * kParts]),
                              _mm512_set1_ps(part_scales[m * kParts + 1]), _mm512_set1_ps(part_scales[m * kParts + 2]),
                              gs, acc[m]);
    }
  }
  for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(y + int64_t(m) * ldy, row_mask, acc[m]);
}

}  // namespace

void gemm_i4_rows(const int8_t* parts, const float* part_scales, int M, const uint8_t* nibbles, int64_t ldp,
                  const float* scales, const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int n0,
                  int n1, int K) {
  static_assert(kI4VnniRows == 2, "block_rows is instantiated for one and two rows of x");
  if (M <= 0 || M > kI4VnniRows || n1 <= n0) return;
  // part p of x's row m, its scale, and its sum over each group (for the zero points)
  const int8_t* rows[kI4VnniRows * kParts];
  float ps[kI4VnniRows * kParts];
  thread_local std::vector<int32_t> sums_buf;
  if (sums_buf.size() < size_t(M) * kParts * groups) sums_buf.resize(size_t(M) * kParts * groups);
  for (int m = 0; m < M; m++)
    for (int p = 0; p < kParts; p++) {
      const int row = i4_part_row(M, m, p);
      rows[m * kParts + p] = parts + int64_t(row) * K;
      ps[m * kParts + p] = part_scales[row];
      for (int g = 0; g < groups; g++) {
        int32_t s = 0;
        for (int k = g * group; k < (g + 1) * group; k++) s += rows[m * kParts + p][k];
        sums_buf[(m * kParts + p) * groups + g] = s;
      }
    }
  thread_local std::vector<float> scales_buf;
  thread_local std::vector<int32_t> zeros_buf;
  if (scales_buf.size() < size_t(groups) * kRows + 16) {
    scales_buf.resize(size_t(groups) * kRows + 16);
    zeros_buf.resize(size_t(groups) * kRows + 16);
  }
  float* bs = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scales_buf.data()) + 63) & ~uintptr_t(63));
  int32_t* bz = reinterpret_cast<int32_t*>((reinterpret_cast<uintptr_t>(zeros_buf.data()) + 63) & ~uintptr_t(63));
  for (int n = n0; n < n1; n += kRows) {
    const int count = std::min(kRows, n1 - n);
    rows_by_group(scales + int64_t(n) * groups, groups, count, bs);
    rows_by_group(zeros + int64_t(n) * groups, groups, count, bz);
    const uint8_t* w = nibbles + int64_t(n) * ldp;
    if (M == 1)
      block_rows<1>(rows, ps, sums_buf.data(), w, ldp, bs, bz, groups, group, count, y + n, ldy);
    else
      block_rows<2>(rows, ps, sums_buf.data(), w, ldp, bs, bz, groups, group, count, y + n, ldy);
  }
}

}  // namespace grpst::cpu::amx
