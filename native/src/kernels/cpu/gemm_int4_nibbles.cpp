// int4 groups (int4_awq) on AVX-512 in the packed nibbles' order. A row's 128 weights of a unit
// are 64 bytes, read as 16 dword lanes of 8 nibbles each: lane d's nibble n is weight 8d + n
// (units of 64 weights, for groups of 64: 32 bytes widened to 16 lanes of 4 nibbles, weight
// 4d + n). Shifting the lanes right by 4n puts that weight in lane d's low four bits, where
// `vpermps` reads its index, so one shift and one lookup in the group's 16 values give 16 weights
// (the natural order, decode_i4_rows' in gemm_quant.cpp, needs a byte unpack and a widening
// shuffle besides: three shuffles per 16 weights, which bound its one-row GEMV on a Zen 4 core).
// The activations are permuted to match once per call (permute_i4_x), so lane d accumulates the
// products of weights 8d + n (4d + n) of each unit in n order; the decoded blocks of the prefill
// path (decode_i4_rows_nibbles then gemm_f32w on the permuted x) add the same products in the
// same lanes in the same order, so a row gives the same bits alone, in a few-row tile or in a
// prefill batch.
#include "kernels/cpu/gemm_int4_nibbles.h"

#if defined(__AVX512F__)
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

namespace {

// The 16 values a group's weights can take, (q - zero) * scale for q = 0..15: the operations and
// roundings of decode_i4_rows' scalar formula.
inline VF group_values(float zero, float scale) {
  const VF q = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  return vmul(vsub(q, vset1(zero)), vset1(scale));
}

// A row's unit of U weights from p as 16 dword lanes: lane d holds weights (U / 16) d + n in its
// nibbles n = 0 .. U / 16 - 1.
template <int U>
inline __m512i load_unit(const uint8_t* p) {
  if constexpr (U == 128) return _mm512_loadu_si512(p);
  else return _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Weights (U / 16) d + n (d = 0..15) of a unit read as `v`, as 16 fp32 values.
template <int n>
inline VF unit_weights(__m512i v, VF values) {
  return _mm512_permutexvar_ps(n == 0 ? v : _mm512_srli_epi32(v, 4 * n), values);
}

// One step n of a unit: 16 weights of each of NR rows against MR rows of x.
template <int n, int MR, int NR>
inline void unit_step(const float* xp, int64_t ldx, int k, const __m512i (&v)[NR], const VF (&values)[NR],
                      VF (&acc)[MR][NR]) {
  VF xv[MR];
  for (int i = 0; i < MR; i++) xv[i] = vload(xp + i * ldx + k + 16 * n);
  for (int j = 0; j < NR; j++) {
    const VF wv = unit_weights<n>(v[j], values[j]);
    for (int i = 0; i < MR; i++) acc[i][j] = vfma(xv[i], wv, acc[i][j]);
  }
}

// y[i, j] for MR rows of permuted x by NR weight rows (a plain function of arrays: GCC keeps
// them in registers). Each pass asks for the weight rows two passes ahead, one cache line per
// row per unit, as the natural-order GEMV does.
template <int U, int MR, int NR>
inline void tile(const float* xp, int64_t ldx, const uint8_t* w, int64_t ldw, const float* scales, const uint8_t* zeros,
                 int groups, int group, float* y, int64_t ldy) {
  VF acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = vzero();
  const uint8_t* ahead = w + int64_t(2) * NR * ldw;
  for (int g = 0; g < groups; g++) {
    VF values[NR];
    for (int j = 0; j < NR; j++) values[j] = group_values(float(zeros[int64_t(j) * groups + g]), scales[int64_t(j) * groups + g]);
    for (int k = g * group, end = k + group; k < end; k += U) {
      __m512i v[NR];
      for (int j = 0; j < NR; j++) {
        _mm_prefetch(reinterpret_cast<const char*>(ahead + j * ldw + k / 2), _MM_HINT_T0);
        v[j] = load_unit<U>(w + j * ldw + k / 2);
      }
      unit_step<0>(xp, ldx, k, v, values, acc);
      unit_step<1>(xp, ldx, k, v, values, acc);
      unit_step<2>(xp, ldx, k, v, values, acc);
      unit_step<3>(xp, ldx, k, v, values, acc);
      if constexpr (U == 128) {
        unit_step<4>(xp, ldx, k, v, values, acc);
        unit_step<5>(xp, ldx, k, v, values, acc);
        unit_step<6>(xp, ldx, k, v, values, acc);
        unit_step<7>(xp, ldx, k, v, values, acc);
      }
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) y[i * ldy + j] = vsum(acc[i][j]);
}

// NR weight rows against all M rows of x, in tiles of up to four rows.
template <int U, int NR>
inline void weight_rows(const float* xp, int64_t ldx, const uint8_t* w, int64_t ldw, const float* scales,
                        const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M) {
  for (int m = 0; m < M; m += 4) {
    const float* x = xp + int64_t(m) * ldx;
    float* out = y + int64_t(m) * ldy;
    switch (std::min(4, M - m)) {
      case 1: tile<U, 1, NR>(x, ldx, w, ldw, scales, zeros, groups, group, out, ldy); break;
      case 2: tile<U, 2, NR>(x, ldx, w, ldw, scales, zeros, groups, group, out, ldy); break;
      case 3: tile<U, 3, NR>(x, ldx, w, ldw, scales, zeros, groups, group, out, ldy); break;
      default: tile<U, 4, NR>(x, ldx, w, ldw, scales, zeros, groups, group, out, ldy); break;
    }
  }
}

// Weight rows NR at a time (at one row of x, NR chains of FMAs hide their latency), the rest one
// at a time.
template <int U, int NR>
void all_rows(const float* xp, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
              const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N) {
  int n = 0;
  for (; n + NR <= N; n += NR)
    weight_rows<U, NR>(xp, ldx, packed + n * ldp, ldp, scales + int64_t(n) * groups, zeros + int64_t(n) * groups, groups,
                    group, y + n, ldy, M);
  for (; n < N; n++)
    weight_rows<U, 1>(xp, ldx, packed + n * ldp, ldp, scales + int64_t(n) * groups, zeros + int64_t(n) * groups, groups,
                   group, y + n, ldy, M);
}

}  // namespace

namespace {
// Plain loops the compiler vectorizes (S a constant): 0.15 ms for 512 x 3,072 on a Zen 4 core,
// where one gather per output vector took 0.58.
template <int S>
void permute_units(const float* x, int64_t ldx, int M, int K, float* out) {
  for (int m = 0; m < M; m++) {
    const float* row = x + int64_t(m) * ldx;
    float* dst = out + int64_t(m) * K;
    for (int u = 0; u < K; u += 16 * S)
      for (int d = 0; d < 16; d++)
        for (int n = 0; n < S; n++) dst[u + 16 * n + d] = row[u + S * d + n];
  }
}
}  // namespace

void permute_i4_x(const float* x, int64_t ldx, int M, int K, int unit, float* out) {
  if (unit == 128) permute_units<8>(x, ldx, M, K, out);
  else permute_units<4>(x, ldx, M, K, out);
}

bool gemv_i4_nibbles(const float* xp, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
                     const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N) {
  // Four weight rows a pass at every M (two measured slower from 2 rows on and erratic from 4).
  switch (i4_nibble_unit(group)) {
    case 128: all_rows<128, 4>(xp, ldx, packed, ldp, scales, zeros, groups, group, y, ldy, M, N); return true;
    case 64: all_rows<64, 4>(xp, ldx, packed, ldp, scales, zeros, groups, group, y, ldy, M, N); return true;
    default: return false;
  }
}

namespace {
template <int U>
void decode_units(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups, int group,
                  int rows, int K, float* out) {
  for (int r = 0; r < rows; r++) {
    const uint8_t* src = packed + r * ldp;
    float* dst = out + int64_t(r) * K;
    for (int g = 0; g < groups; g++) {
      const VF values = group_values(float(zeros[int64_t(r) * groups + g]), scales[int64_t(r) * groups + g]);
      for (int k = g * group, end = k + group; k < end; k += U) {
        const __m512i v = load_unit<U>(src + k / 2);
        vstore(dst + k + 0, unit_weights<0>(v, values));
        vstore(dst + k + 16, unit_weights<1>(v, values));
        vstore(dst + k + 32, unit_weights<2>(v, values));
        vstore(dst + k + 48, unit_weights<3>(v, values));
        if constexpr (U == 128) {
          vstore(dst + k + 64, unit_weights<4>(v, values));
          vstore(dst + k + 80, unit_weights<5>(v, values));
          vstore(dst + k + 96, unit_weights<6>(v, values));
          vstore(dst + k + 112, unit_weights<7>(v, values));
        }
      }
    }
  }
}
}  // namespace

void decode_i4_rows_nibbles(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups,
                            int group, int rows, int K, float* out) {
  if (i4_nibble_unit(group) == 128) decode_units<128>(packed, ldp, scales, zeros, groups, group, rows, K, out);
  else decode_units<64>(packed, ldp, scales, zeros, groups, group, rows, K, out);
}

}  // namespace grpst::cpu::GRPST_ISA

#endif  // __AVX512F__
