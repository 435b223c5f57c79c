// What the AMX kernels (gemm_amx.cpp, gemm_amx_int4.cpp) share: the tile configuration's layout,
// the packed activations' tile addresses and a 16 x 16 transpose. Included only by files compiled
// with the amx level's flags.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace grpst::cpu::amx::tiles {

constexpr int kTileRows = 16;  // weight rows (A, C rows) and tokens (B, C columns) per tile
constexpr size_t kTileBytes = 1024;

/** LDTILECFG's 64-byte operand (palette 1): bytes per row and rows of each of the 8 tiles. */
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

/** Tile (part, token block mb, K chunk kc) of activations packed as [part][block][chunk], 1 KB each. */
inline const uint8_t* packed_tile(const void* packed, int part, int mb, int kc, int MB, int KC) {
  return static_cast<const uint8_t*>(packed) + ((size_t(part) * MB + mb) * KC + kc) * kTileBytes;
}

// A 16 x 16 matrix of 32-bit elements, row i in r[i], transposed in place: two unpack rounds
// transpose the 4 x 4 blocks within each 128-bit lane (s[4g + c] lane L: column 4L + c of rows
// 4g..4g+3), two rounds of lane shuffles move the blocks.
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int c = 0; c < 4; c++) {
    const __m512i u0 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x88), u1 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xdd);
    const __m512i v0 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x88), v1 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xdd);
    t[c] = _mm512_shuffle_i32x4(u0, v0, 0x88);
    t[4 + c] = _mm512_shuffle_i32x4(u1, v1, 0x88);
    t[8 + c] = _mm512_shuffle_i32x4(u0, v0, 0xdd);
    t[12 + c] = _mm512_shuffle_i32x4(u1, v1, 0xdd);
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

}  // namespace grpst::cpu::amx::tiles
