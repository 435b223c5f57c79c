// GEMMs on AMX tiles (Intel Advanced Matrix Extensions: TDPBF16PS multiplies a 16 x 32 bf16 tile
// by a 32 x 16 one into 16 x 16 fp32 sums, 8,192 products an instruction against an AVX-512 FMA's
// 16; TDPBSSD does 16 x 64 by 64 x 16 int8 into int32). The "amx" CPU level (dispatch.cpp,
// quant_dispatch.cpp) takes them for every bf16 linear and for int8_sq's and int8_wo's int8
// products (int8_wo's activations split into three int8 parts: linear_int8_wo.cpp), and int4
// groups take them widened to int8 (gemm_amx_int4.cpp); its other kernels are AVX-512's.
//
// The activations stay exact: each fp32 value is split into three bf16 parts, x = x1 + x2 + x3
// exactly (x1 = bf16(x), x2 = bf16(x - x1), x3 = x - x1 - x2, which has at most 8 significant
// bits), and each part is multiplied with the bf16 weights, whose products with a bf16 are exact
// in fp32. So the sums differ from the fp32 kernels only in their order (denormals below 2^-110
// aside), not by bf16's rounding of the activations, and the model keeps fp32 transformers'
// logits within the same tolerance.
//
// Shapes: the weights are the A operand as they lie ([N, K] rows are a tile's rows, 64 bytes of
// K each, no repacking); the activations are B, packed once per call into TDPBF16PS's pair layout
// ([part][16-token block][32-column chunk][16 column pairs][16 tokens][2], 1 KB a tile, zeros
// past M and K); C is 16 weight rows x 16 tokens, written to y transposed. Every output is one
// accumulator tile's element: the same TDPBF16PS sequence over the same K chunks and parts
// whatever M, the thread split or the rows beside it (pieces of fewer than 16 rows, and a K
// tail, are loaded from zero-padded copies), so results are batch-invariant as the CpuKernels
// contract asks. int8_sq's products are the same arrangement with 64-column chunks of signed
// bytes (B's rows hold 4 consecutive columns of each token) and one part: exact int32 sums, the
// AVX-512 kernel's bit for bit in any order.
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/amx_tiles.h"
#include "kernels/cpu/gemm_amx.h"

namespace grpst::cpu::amx {

namespace {

using namespace tiles;

// Weight rows a thread keeps in its L2 while every token block passes over them (K = 1,024:
// 512 KB), so that the weights come from memory once and the packed activations of one token
// block (3 parts x 2 blocks x K / 32 KB) stay in the L1/L2 across the rows.
constexpr int kRowsPerPass = 256;

// Tiles 0-3 accumulate (two row pieces x two token blocks), 4-5 hold weights, 6-7 activations:
// all 16 rows x 64 bytes.
const TileConfig& tile_config() {
  static const TileConfig cfg = [] {
    TileConfig c;
    for (int t = 0; t < 8; t++) {
      c.colsb[t] = 64;
      c.rows[t] = kTileRows;
    }
    return c;
  }();
  return cfg;
}

// The two products: bf16 weights against the three bf16 parts of fp32 activations (TDPBF16PS, 32
// columns a chunk), int8 against int8 (TDPBSSD, 64). A chunk's tile row is 64 bytes either way.
// (GCC's tile intrinsics are macros that paste their tile numbers into the assembly: each product
// the loop issues, accumulator x weights x activations, is spelled out.)
struct Bf16Tiles {
  using Weight = uint16_t;
  using Sum = float;
  static constexpr int kChunk = 32, kParts = 3;
  static void dp_0_4_6() { _tile_dpbf16ps(0, 4, 6); }
  static void dp_1_4_7() { _tile_dpbf16ps(1, 4, 7); }
  static void dp_2_5_6() { _tile_dpbf16ps(2, 5, 6); }
  static void dp_3_5_7() { _tile_dpbf16ps(3, 5, 7); }
};
struct Int8Tiles {
  using Weight = int8_t;
  using Sum = int32_t;
  static constexpr int kChunk = 64, kParts = 1;
  static void dp_0_4_6() { _tile_dpbssd(0, 4, 6); }
  static void dp_1_4_7() { _tile_dpbssd(1, 4, 7); }
  static void dp_2_5_6() { _tile_dpbssd(2, 5, 6); }
  static void dp_3_5_7() { _tile_dpbssd(3, 5, 7); }
};

// A piece of 16 weight rows at one K chunk, zero-padded where rows or columns run out.
template <class T>
void load_padded_rows(const typename T::Weight* w, int64_t ldw, int rows, int k0, int K, typename T::Weight* dst) {
  std::memset(dst, 0, kTileBytes);
  const int cols = std::min(T::kChunk, K - k0);
  for (int r = 0; r < rows; r++) std::memcpy(dst + r * T::kChunk, w + r * ldw + k0, size_t(cols) * sizeof(*w));
}

// y[m, n] for m < M, n0 <= n < n1 from packed activations ([part][block][chunk] tiles): pairs
// of 16-row pieces against pairs of 16-token blocks, four accumulator tiles.
template <class T>
void gemm_tiles(const void* packed, const typename T::Weight* w, int64_t ldw, typename T::Sum* y, int64_t ldy, int M,
                int n0, int n1, int K) {
  if (M <= 0 || n1 <= n0) return;
  const int MB = (M + kTileRows - 1) / kTileRows, KC = (K + T::kChunk - 1) / T::kChunk, full_kc = K / T::kChunk;
  const int64_t stride = ldw * int64_t(sizeof(*w));
  _tile_loadconfig(&tile_config());
  alignas(64) typename T::Weight pad[2][kTileBytes / sizeof(*w)];
  alignas(64) typename T::Sum sums[4][kTileRows * kTileRows];
  for (int pass = n0; pass < n1; pass += kRowsPerPass) {
    const int pass_end = std::min(n1, pass + kRowsPerPass);
    for (int mb = 0; mb < MB; mb += 2) {
      const bool two_blocks = mb + 1 < MB;
      for (int n = pass; n < pass_end; n += 2 * kTileRows) {
        const int rows0 = std::min(kTileRows, pass_end - n), rows1 = std::max(0, std::min(kTileRows, pass_end - n - kTileRows));
        const typename T::Weight* w0 = w + int64_t(n) * ldw;
        const typename T::Weight* w1 = w0 + int64_t(kTileRows) * ldw;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int kc = 0; kc < KC; kc++) {
          const int k0 = kc * T::kChunk;
          if (rows0 == kTileRows && kc < full_kc) {
            _tile_loadd(4, w0 + k0, stride);
          } else {
            load_padded_rows<T>(w0, ldw, rows0, k0, K, pad[0]);
            _tile_loadd(4, pad[0], 64);
          }
          if (rows1 > 0) {
            if (rows1 == kTileRows && kc < full_kc) {
              _tile_loadd(5, w1 + k0, stride);
            } else {
              load_padded_rows<T>(w1, ldw, rows1, k0, K, pad[1]);
              _tile_loadd(5, pad[1], 64);
            }
          }
          for (int part = 0; part < T::kParts; part++) {
            _tile_loadd(6, packed_tile(packed, part, mb, kc, MB, KC), 64);
            T::dp_0_4_6();
            if (rows1 > 0) T::dp_2_5_6();
            if (two_blocks) {
              _tile_loadd(7, packed_tile(packed, part, mb + 1, kc, MB, KC), 64);
              T::dp_1_4_7();
              if (rows1 > 0) T::dp_3_5_7();
            }
          }
        }
        // C[r][t] is y[token][row]: written transposed, only rows and tokens that exist
        _tile_stored(0, sums[0], 64);
        if (two_blocks) _tile_stored(1, sums[1], 64);
        if (rows1 > 0) _tile_stored(2, sums[2], 64);
        if (rows1 > 0 && two_blocks) _tile_stored(3, sums[3], 64);
        for (int b = 0; b < (two_blocks ? 2 : 1); b++) {
          const int m0 = (mb + b) * kTileRows, tokens = std::min(kTileRows, M - m0);
          for (int piece = 0; piece < (rows1 > 0 ? 2 : 1); piece++) {
            const typename T::Sum* s = sums[piece * 2 + b];
            const int rows = piece ? rows1 : rows0, nn = n + piece * kTileRows;
            for (int t = 0; t < tokens; t++)
              for (int r = 0; r < rows; r++) y[int64_t(m0 + t) * ldy + nn + r] = s[r * kTileRows + t];
          }
        }
      }
    }
  }
  _tile_release();
}

}  // namespace

bool available_int8() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return available() && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 25));
  }();
  return ok;
}

bool available() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    const bool tile = d & (1u << 24), bf16 = d & (1u << 22);
    if (!tile || !bf16) return false;
    // Linux hands out the 8 KB tile state only on request (ARCH_REQ_XCOMP_PERM, XTILEDATA);
    // once granted it holds for every thread of the process.
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

constexpr int kChunk = Bf16Tiles::kChunk, kParts = Bf16Tiles::kParts;

size_t packed_bytes(int M, int K) {
  const size_t MB = size_t(M + kTileRows - 1) / kTileRows, KC = size_t(K + kChunk - 1) / kChunk;
  return kParts * MB * KC * kTileBytes;
}

void pack(const float* x, int64_t ldx, int M, int K, void* out) {
  const int MB = (M + kTileRows - 1) / kTileRows, KC = (K + kChunk - 1) / kChunk;
  __m512i pairs[kParts][kTileRows];  // [part][token]: the token's 16 column pairs of one chunk
  for (int mb = 0; mb < MB; mb++) {
    for (int kc = 0; kc < KC; kc++) {
      const int k0 = kc * kChunk, n = std::min(kChunk, K - k0);
      const __mmask16 lo_mask = __mmask16(n >= 16 ? 0xffff : (1u << n) - 1);
      const __mmask16 hi_mask = __mmask16(n >= 32 ? 0xffff : n <= 16 ? 0 : (1u << (n - 16)) - 1);
      for (int t = 0; t < kTileRows; t++) {
        const int m = mb * kTileRows + t;
        __m512 rest[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        if (m < M) {
          rest[0] = _mm512_maskz_loadu_ps(lo_mask, x + m * ldx + k0);
          rest[1] = _mm512_maskz_loadu_ps(hi_mask, x + m * ldx + k0 + 16);
        }
        for (int part = 0; part < kParts; part++) {
          __m256i half[2];
          for (int h = 0; h < 2; h++) {
            const __m256bh b = _mm512_cvtneps_pbh(rest[h]);
            half[h] = reinterpret_cast<const __m256i&>(b);
            // what this part left: exact (see the file's comment), the next part's value
            rest[h] = _mm512_sub_ps(rest[h], _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(half[h]), 16)));
          }
          pairs[part][t] = _mm512_inserti64x4(_mm512_castsi256_si512(half[0]), half[1], 1);
        }
      }
      // token-major to pair-major: tile row r holds column pair r of the 16 tokens
      for (int part = 0; part < kParts; part++) {
        transpose16(pairs[part]);
        uint8_t* tile = const_cast<uint8_t*>(packed_tile(out, part, mb, kc, MB, KC));
        for (int r = 0; r < kTileRows; r++) _mm512_store_si512(tile + r * 64, pairs[part][r]);
      }
    }
  }
}

void gemm_packed(const void* packed, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0, int n1,
                 int K) {
  gemm_tiles<Bf16Tiles>(packed, w, ldw, y, ldy, M, n0, n1, K);
}

void gemm(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0, int n1,
          int K) {
  thread_local std::vector<uint8_t> buf;
  const size_t bytes = packed_bytes(M, K) + 64;
  if (buf.size() < bytes) buf.resize(bytes);
  void* packed = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  pack(x, ldx, M, K, packed);
  gemm_packed(packed, w, ldw, y, ldy, M, n0, n1, K);
}


// ---- int8 x int8 -> int32 (int8_sq) -------------------------------------------------------

size_t packed_i8_bytes(int M, int K) {
  const size_t MB = size_t(M + kTileRows - 1) / kTileRows, KC = size_t(K + Int8Tiles::kChunk - 1) / Int8Tiles::kChunk;
  return MB * KC * kTileBytes;
}

void pack_i8(const int8_t* xq, int64_t ldx, int M, int K, void* out) {
  const int MB = (M + kTileRows - 1) / kTileRows, KC = (K + Int8Tiles::kChunk - 1) / Int8Tiles::kChunk;
  __m512i quads[kTileRows];  // [token]: its 16 groups of 4 columns of one chunk
  for (int mb = 0; mb < MB; mb++) {
    for (int kc = 0; kc < KC; kc++) {
      const int k0 = kc * Int8Tiles::kChunk, n = std::min(Int8Tiles::kChunk, K - k0);
      const __mmask64 mask = n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
      for (int t = 0; t < kTileRows; t++) {
        const int m = mb * kTileRows + t;
        quads[t] = m < M ? _mm512_maskz_loadu_epi8(mask, xq + m * ldx + k0) : _mm512_setzero_si512();
      }
      transpose16(quads);  // tile row r: column group r of the 16 tokens
      uint8_t* tile = const_cast<uint8_t*>(packed_tile(out, 0, mb, kc, MB, KC));
      for (int r = 0; r < kTileRows; r++) _mm512_store_si512(tile + r * 64, quads[r]);
    }
  }
}

void gemm_i8_packed(const void* packed, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc, int M, int N, int K) {
  gemm_tiles<Int8Tiles>(packed, w, ldw, acc, ldacc, M, 0, N, K);
}

}  // namespace grpst::cpu::amx
