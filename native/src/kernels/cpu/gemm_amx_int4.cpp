// int4 groups (int4_awq) on AMX-INT8 tiles. Each weight is widened to the int8 (q - zero), in
// [-15, 15], and multiplied with x's three int8 parts (linear_int4.cpp makes them the way int8_wo
// does: x ~ s0 a0 + s1 a1 + s2 a2 per row, about 2^-24 of the row's largest value left), so a
// group's products are exact int32 sums (|sum| <= group * 127 * 15; exact in fp32 too for groups
// up to 8,807 weights, and past that rounded once, the same way on every path).
// Every output then takes the same fp32 steps in the same order, group after group
// (int4_group_sum.h), whichever tile, token block or thread made it: a row of x gives the same y
// alone or in a batch.
//
// Shapes: the weights are the A operand, widened per pass of rows into [16-row block][64-column
// chunk][16 rows][64 bytes] (a chunk's 32 bytes of nibbles give its 32 low nibbles, then its 32
// high ones: the "chunk order" in which x's parts are laid out); the parts are B, packed by
// pack_i8 as [16-token block][part] tiles (token_block: C is 16 weight rows x 16 tokens, a tile
// per part), or, for 3-5 rows of x, as one block's columns (narrow_rows: C is 16 weight rows x the
// rows' parts). Sums are emptied into fp32 after each group. One or two rows of x are multiplied
// in registers instead (gemm_int4_vnni.cpp), to the same bits.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/int4_group_sum.h"

namespace grpst::cpu::amx {

namespace {

using namespace tiles;

constexpr int kChunk = 64;  // int8 columns of a tile row
constexpr int kParts = 3;
// Rows of x up to which the parts are one packed block's columns: 3 x 5 of its 16 (narrow_rows
// takes 3-5; fewer go to gemm_i4_rows).
constexpr int kNarrowRows = 5;
constexpr int kNarrowBlocks = 3;  // weight-row blocks narrow_rows multiplies at once (tiles 3-5)
// How far ahead along the rows widen() fetches nibbles (measured with narrow_rows at one row of x:
// 1 KB -> 1.5 KB, 31.8 -> 34-35 GFLOP/s on one core; 4 KB and more, or a second fetch into L2
// further ahead, were no faster).
constexpr int kPrefetchBytes = 1536;
// Rows of widened weights a pass keeps in L2 (with one token block's 3 x K / 64 KB of parts).
constexpr int kPassBytes = 512 * 1024;

// token_block: tiles 0-2 a row block's sums of parts 0-2 over one group, 3 its widened weights at
// one chunk, 4-6 the parts at that chunk. narrow_rows: 0-2 three row blocks' sums, 3-5 their
// weights, 6 the parts. Every tile 16 rows x 64 bytes.
const TileConfig& tile_config() {
  static const TileConfig cfg = [] {
    TileConfig c;
    for (int t = 0; t < 7; t++) {
      c.rows[t] = kTileRows;
      c.colsb[t] = kChunk;
    }
    return c;
  }();
  return cfg;
}

// Rows [r0, r1) of a pass of `rows` weight rows (nibbles [rows, K / 2], zero points [rows,
// groups]) as int8 q - zero in the chunk order: out [16-row block][KC][16][64], the last block's
// rows past `rows` zero. Row by row, each row's bytes in order: memory streams them.
void widen(const uint8_t* nibbles, int64_t ldp, const uint8_t* zeros, int groups, int group, int rows, int KC, int r0,
           int r1, int8_t* out) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  const int cpg = group / kChunk;
  const size_t block_bytes = size_t(KC) * kTileBytes;
  const int padded = (rows + kTileRows - 1) / kTileRows * kTileRows;
  for (int r = r0; r < std::min(r1, padded); r++) {
    int8_t* dst = out + r / kTileRows * block_bytes + (r % kTileRows) * kChunk;
    if (r >= rows) {
      for (int kc = 0; kc < KC; kc++) _mm512_store_si512(dst + size_t(kc) * kTileBytes, _mm512_setzero_si512());
      continue;
    }
    const uint8_t* src = nibbles + int64_t(r) * ldp;
    for (int g = 0; g < groups; g++) {
      const __m512i zero = _mm512_set1_epi8(char(zeros[int64_t(r) * groups + g]));
      for (int c = 0; c < cpg; c++) {
        const int kc = g * cpg + c;
        const uint8_t* at = src + size_t(kc) * (kChunk / 2);
        if (kc % 2 == 0) _mm_prefetch(reinterpret_cast<const char*>(at) + kPrefetchBytes, _MM_HINT_T0);
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at));
        const __m256i lo = _mm256_and_si256(b, low), hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), low);
        const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        _mm512_store_si512(dst + size_t(kc) * kTileBytes, _mm512_sub_epi8(q, zero));
      }
    }
  }
}

// The weight rows a narrow pass widens while the one before it multiplies.
struct NextPass {
  const uint8_t* nibbles;
  const uint8_t* zeros;
  int rows;  // 0: none
  int8_t* wide;
};

// Up to kNarrowRows rows of x, their parts as the columns of one packed block (column 3m + p:
// part p of row m): one activation tile a chunk for three weight-row blocks at once (tiles 3-5),
// whose sums (tiles 0-2) take lanes over weight rows. blocks: 1-3 row blocks of `wide`. After
// each group's tile products it widens a share of the next pass's rows: the tiles work while
// those loads wait on memory (widening whole passes between the products left one core's DRAM
// stream idle: at one row of x, 25 -> 31-33 GFLOP/s).
template <int M>
void narrow_rows(const void* packed, const float* part_scales, const int8_t* wide, size_t block_bytes,
                 const float* bscales, int groups, int group, int KC, int64_t ldp, float* y, int64_t ldy, int n,
                 int rows_left, int blocks, const NextPass& next) {
  const int cpg = group / kChunk, next_padded = (next.rows + kTileRows - 1) / kTileRows * kTileRows;
  alignas(64) int32_t d[3][kTileRows * kTileRows];
  __m512 acc[3][kNarrowRows];
  for (auto& block : acc)
    for (auto& a : block) a = _mm512_setzero_ps();
  for (int g = 0; g < groups; g++) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    for (int c = 0; c < cpg; c++) {
      const int kc = g * cpg + c;
      _tile_loadd(6, packed_tile(packed, 0, 0, kc, 1, KC), 64);
      _tile_loadd(3, wide + size_t(kc) * kTileBytes, 64);
      _tile_dpbssd(0, 3, 6);
      if (blocks > 1) {
        _tile_loadd(4, wide + block_bytes + size_t(kc) * kTileBytes, 64);
        _tile_dpbssd(1, 4, 6);
      }
      if (blocks > 2) {
        _tile_loadd(5, wide + 2 * block_bytes + size_t(kc) * kTileBytes, 64);
        _tile_dpbssd(2, 5, 6);
      }
    }
    if (next.rows > 0)  // the next pass's rows in equal shares, one a group
      widen(next.nibbles, ldp, next.zeros, groups, group, next.rows, KC, next_padded * g / groups,
            next_padded * (g + 1) / groups, next.wide);
    _tile_stored(0, d[0], 64);
    if (blocks > 1) _tile_stored(1, d[1], 64);
    if (blocks > 2) _tile_stored(2, d[2], 64);
    for (int b = 0; b < blocks; b++) {
      const __m512 gs = _mm512_loadu_ps(bscales + (size_t(b) * groups + g) * kTileRows);
      // columns over the 16 rows: a transpose (gathers are microcoded slow where the CPU carries
      // the Gather Data Sampling mitigation)
      __m512i col[kTileRows];
      for (int r = 0; r < kTileRows; r++) col[r] = _mm512_load_si512(d[b] + r * kTileRows);
      transpose16(col);
      for (int m = 0; m < M; m++)
        acc[b][m] = int4_add_group(col[3 * m], col[3 * m + 1], col[3 * m + 2], _mm512_set1_ps(part_scales[3 * m]),
                                   _mm512_set1_ps(part_scales[3 * m + 1]), _mm512_set1_ps(part_scales[3 * m + 2]), gs,
                                   acc[b][m]);
    }
  }
  for (int b = 0; b < blocks; b++) {
    const int rows = std::min(kTileRows, rows_left - b * kTileRows);
    const __mmask16 row_mask = __mmask16((1u << rows) - 1);
    for (int m = 0; m < M; m++) _mm512_mask_storeu_ps(y + int64_t(m) * ldy + n + b * kTileRows, row_mask, acc[b][m]);
  }
}

// A 16-token block (packed tiles of parts 0-2 of block mb): lanes are tokens, a register a row.
void token_block(const void* packed, int mb, int MB3, int KC, const float* part_scales, const int8_t* wide,
                 const float* bscales, int groups, int cpg, float* y, int64_t ldy, int tokens, int rows) {
  const float* ps = part_scales + size_t(mb) * kParts * kTileRows;
  const __m512 s0 = _mm512_loadu_ps(ps), s1 = _mm512_loadu_ps(ps + kTileRows), s2 = _mm512_loadu_ps(ps + 2 * kTileRows);
  alignas(64) int32_t d[kParts][kTileRows * kTileRows];
  __m512 acc[kTileRows];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int g = 0; g < groups; g++) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    for (int c = 0; c < cpg; c++) {
      const int kc = g * cpg + c;
      _tile_loadd(3, wide + size_t(kc) * kTileBytes, 64);
      _tile_loadd(4, packed_tile(packed, 0, mb * kParts, kc, MB3, KC), 64);
      _tile_loadd(5, packed_tile(packed, 0, mb * kParts + 1, kc, MB3, KC), 64);
      _tile_loadd(6, packed_tile(packed, 0, mb * kParts + 2, kc, MB3, KC), 64);
      _tile_dpbssd(0, 3, 4);
      _tile_dpbssd(1, 3, 5);
      _tile_dpbssd(2, 3, 6);
    }
    _tile_stored(0, d[0], 64);
    _tile_stored(1, d[1], 64);
    _tile_stored(2, d[2], 64);
    const float* gs = bscales + g * kTileRows;
    for (int r = 0; r < kTileRows; r++)
      acc[r] = int4_add_group(_mm512_load_si512(d[0] + r * kTileRows), _mm512_load_si512(d[1] + r * kTileRows),
                              _mm512_load_si512(d[2] + r * kTileRows), s0, s1, s2, _mm512_set1_ps(gs[r]), acc[r]);
  }
  // acc[row] over tokens -> y[token][row]
  __m512i t[kTileRows];
  for (int r = 0; r < kTileRows; r++) t[r] = _mm512_castps_si512(acc[r]);
  transpose16(t);
  const __mmask16 row_mask = __mmask16((1u << rows) - 1);
  for (int k = 0; k < tokens; k++) _mm512_mask_storeu_ps(y + int64_t(k) * ldy, row_mask, _mm512_castsi512_ps(t[k]));
}

}  // namespace

// (int32 holds a group's sums up to groups of 2^20 weights: 2^20 * 127 * 15 < 2^31)
bool i4_group_fits(int group) { return group > 0 && group % kChunk == 0 && group <= (1 << 20); }

int i4_part_rows(int M) { return M <= kNarrowRows ? kTileRows : (M + kTileRows - 1) / kTileRows * kParts * kTileRows; }

int i4_part_row(int M, int m, int part) {
  return M <= kNarrowRows ? kParts * m + part : (m / kTileRows * kParts + part) * kTileRows + m % kTileRows;
}

void gemm_i4(const int8_t* parts, const float* part_scales, const void* packed, int M, const uint8_t* nibbles,
             int64_t ldp, const float* scales, const uint8_t* zeros, int groups, int group, float* y, int64_t ldy,
             int n0, int n1, int K) {
  if (M <= 0 || n1 <= n0) return;
  if (M <= kI4VnniRows)
    return gemm_i4_rows(parts, part_scales, M, nibbles, ldp, scales, zeros, groups, group, y, ldy, n0, n1, K);
  const int KC = K / kChunk, cpg = group / kChunk, MB = (M + kTileRows - 1) / kTileRows;
  const bool narrow = M <= kNarrowRows;
  // few rows of x: three row blocks a pass, two passes' room (one multiplies while the next
  // widens); else as many rows as kPassBytes holds
  const int pass_rows =
      narrow ? kNarrowBlocks * kTileRows : std::clamp(kPassBytes / K / kTileRows * kTileRows, kTileRows, 256);
  const int buffers = narrow ? 2 : 1;
  const size_t block_bytes = size_t(KC) * kTileBytes, pass_bytes = size_t(pass_rows / kTileRows) * block_bytes;
  const size_t pass_scales = size_t(pass_rows / kTileRows) * groups * kTileRows;
  thread_local std::vector<int8_t> wide_buf;
  thread_local std::vector<float> scales_buf;
  if (wide_buf.size() < buffers * pass_bytes + 64) wide_buf.resize(buffers * pass_bytes + 64);
  if (scales_buf.size() < buffers * pass_scales) scales_buf.resize(buffers * pass_scales);
  int8_t* wide = reinterpret_cast<int8_t*>((reinterpret_cast<uintptr_t>(wide_buf.data()) + 63) & ~uintptr_t(63));
  _tile_loadconfig(&tile_config());
  if (narrow) {
    widen(nibbles + int64_t(n0) * ldp, ldp, zeros + int64_t(n0) * groups, groups, group, std::min(pass_rows, n1 - n0),
          KC, 0, pass_rows, wide);
    for (int pass = n0, i = 0; pass < n1; pass += pass_rows, i ^= 1) {
      const int rows = std::min(pass_rows, n1 - pass), next_rows = std::max(0, std::min(pass_rows, n1 - pass - pass_rows));
      int8_t* cur = wide + i * pass_bytes;
      float* cur_scales = scales_buf.data() + i * pass_scales;
      rows_by_group(scales + int64_t(pass) * groups, groups, rows, cur_scales);
      const NextPass next{nibbles + int64_t(pass + rows) * ldp, zeros + int64_t(pass + rows) * groups, next_rows,
                          wide + (i ^ 1) * pass_bytes};
      const int blocks = (rows + kTileRows - 1) / kTileRows;
      static_assert(kI4VnniRows == 2 && kNarrowRows == 5, "narrow_rows is instantiated for 3 to 5 rows of x");
      const auto narrow_pass = [&](auto rows_of_x) {
        narrow_rows<decltype(rows_of_x)::value>(packed, part_scales, cur, block_bytes, cur_scales, groups, group, KC,
                                                ldp, y, ldy, pass, rows, blocks, next);
      };
      if (M == 3)
        narrow_pass(std::integral_constant<int, 3>());
      else if (M == 4)
        narrow_pass(std::integral_constant<int, 4>());
      else
        narrow_pass(std::integral_constant<int, 5>());
    }
    _tile_release();
    return;
  }
  for (int pass = n0; pass < n1; pass += pass_rows) {
    const int rows = std::min(pass_rows, n1 - pass), blocks = (rows + kTileRows - 1) / kTileRows;
    widen(nibbles + int64_t(pass) * ldp, ldp, zeros + int64_t(pass) * groups, groups, group, rows, KC, 0,
          blocks * kTileRows, wide);
    rows_by_group(scales + int64_t(pass) * groups, groups, rows, scales_buf.data());
    for (int mb = 0; mb < MB; mb++) {
      const int tokens = std::min(kTileRows, M - mb * kTileRows);
      for (int b = 0; b < blocks; b++)
        token_block(packed, mb, MB * kParts, KC, part_scales, wide + b * block_bytes,
                    scales_buf.data() + size_t(b) * groups * kTileRows, groups, cpg,
                    y + int64_t(mb) * kTileRows * ldy + pass + b * kTileRows, ldy, tokens,
                    std::min(kTileRows, rows - b * kTileRows));
    }
  }
  _tile_release();
}

}  // namespace grpst::cpu::amx
