// CPU kernels of the quantized weight formats (int8_wo, int4 groups, fp8, int8_sq), one table per
// instruction-set level like CpuKernels. gemm_quant.cpp is compiled once per level; the
// linear_<format>.cpp files pick the table matching the runner's level. Byte layouts of the
// weights: src/quant/LAYOUTS.md.
#pragma once
#include <cstdint>

#include "grpst/cpu_kernels.h"

#define GRPST_DECLARE_QUANT_KERNELS(ns)                                                                           \
  namespace grpst::cpu::ns {                                                                                      \
  void decode_i8_rows(const int8_t* q, int64_t ldq, int rows, int K, float* out);                                 \
  void decode_i4_rows(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups, \
                      int group, int rows, int K, float* out);                                                    \
  void decode_e4m3_rows(const uint8_t* w, int64_t ldw, int rows, int K, float* out);                              \
  void gemm_f32w(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int M, int N,   \
                 int K);                                                                                          \
  void gemm_i8i8(const int8_t* xq, int64_t ldxq, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc, int M, \
                 int N, int K);                                                                                   \
  void gemv_i8(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,     \
               int K);                                                                                            \
  void gemv_e4m3(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,  \
                 int K);                                                                                          \
  bool gemv_i4(const float* x, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,              \
               const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N);                 \
  void quantize_rows_int8(const float* x, int64_t ldx, int M, int K, int8_t* xq, float* xs);                      \
  void round_rows_e4m3(const float* x, int64_t ldx, int M, int K, float scale, float* out);                       \
  }

GRPST_DECLARE_QUANT_KERNELS(avx512)
GRPST_DECLARE_QUANT_KERNELS(avx2)
GRPST_DECLARE_QUANT_KERNELS(scalar)

namespace grpst {

struct QuantKernels {
  /** out[r, k] = q[r, k] (int8 -> float), rows of K. */
  void (*decode_i8_rows)(const int8_t* q, int64_t ldq, int rows, int K, float* out);
  /** out[r, k] = (nibble(r, k) - zeros[r, k / group]) * scales[r, k / group]; `groups` per row. */
  void (*decode_i4_rows)(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros, int groups,
                         int group, int rows, int K, float* out);
  /** out[r, k] = e4m3 value of byte w[r, k] (exact in fp32). */
  void (*decode_e4m3_rows)(const uint8_t* w, int64_t ldw, int rows, int K, float* out);
  /**
   * y[m, n] = sum_k x[m, k] * w[n, k] for m < M, n < N, fp32 weights; each output accumulates lane
   * by lane in K order and is reduced once, so it does not depend on M, N or the tile that made it.
   */
  void (*gemm_f32w)(const float* x, int64_t ldx, const float* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K);
  /** acc[m, n] = sum_k xq[m, k] * w[n, k], exact in int32 (|xq| <= 127). */
  void (*gemm_i8i8)(const int8_t* xq, int64_t ldxq, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc, int M,
                    int N, int K);
  /**
   * gemm_f32w's y on int8 / e4m3 weight rows widened in registers (decode: few rows of x), the
   * same bits as decode_i8_rows / decode_e4m3_rows then gemm_f32w.
   */
  void (*gemv_i8)(const float* x, int64_t ldx, const int8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                  int K);
  void (*gemv_e4m3)(const float* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M, int N,
                    int K);
  /** The same for int4 groups (decode_i4_rows' weights); false, nothing done, where a group is not
   * a whole number of vectors. */
  bool (*gemv_i4)(const float* x, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
                  const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N);
  /** Per-row symmetric int8: xs[m] = amax / 127, xq = round-half-even(x / xs) (SmoothQuant's
   * per-token activations); every level gives quant_round.h's bits. */
  void (*quantize_rows_int8)(const float* x, int64_t ldx, int M, int K, int8_t* xq, float* xs);
  /** out = value of e4m3(x / scale) (round to nearest even, saturating at +-448), as fp32; every
   * level gives quant_round.h's bits. */
  void (*round_rows_e4m3)(const float* x, int64_t ldx, int M, int K, float scale, float* out);
  /**
   * Optional (nullptr where the level has none: all but amx with AMX-INT8): gemm_i8i8 in two
   * halves, the activations packed once per call (pack_i8_bytes(M, K) bytes, 64-byte aligned out),
   * then gemm_i8i8's acc (exact, so the same values) from them.
   */
  size_t (*pack_i8_bytes)(int M, int K);
  void (*pack_i8)(const int8_t* xq, int64_t ldx, int M, int K, void* out);
  void (*gemm_i8i8_packed)(const void* packed, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc, int M, int N,
                           int K);
  /**
   * Optional (the avx512 and amx levels: AVX-512 BF16): fp8's products as bf16 dot products, x as
   * bf16 bits of its rounded e4m3 values, every M and path the same bits (gemm_fp8_bf16.h).
   */
  void (*gemm_e4m3_bf16)(const uint16_t* x, int64_t ldx, const uint8_t* w, int64_t ldw, float* y, int64_t ldy, int M,
                         int N, int K);
  /**
   * Optional (the avx512 and amx levels): int4 groups of whole 128- or 64-weight units in the packed
   * nibbles' order (gemm_int4_nibbles.h: i4_nibble_unit): x permuted once per call, then gemv_i4 /
   * decode_i4_rows' counterparts on it; every M and path the same bits, not those of the natural order.
   */
  void (*permute_i4_x)(const float* x, int64_t ldx, int M, int K, int unit, float* out);
  bool (*gemv_i4_nibbles)(const float* xp, int64_t ldx, const uint8_t* packed, int64_t ldp, const float* scales,
                          const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int M, int N);
  void (*decode_i4_rows_nibbles)(const uint8_t* packed, int64_t ldp, const float* scales, const uint8_t* zeros,
                                 int groups, int group, int rows, int K, float* out);
  /**
   * Optional (amx with AMX-INT8): int4 groups that i4_tiles_fit widened to int8 and multiplied
   * with x's three int8 parts on tiles (gemm_amx.h: gemm_i4; the parts' rows: i4_part_row), every
   * M the same bits, not those of the fp32 paths.
   */
  bool (*i4_tiles_fit)(int group);
  int i4_register_rows;  // rows of x up to which gemm_i4_tiles reads the parts unpacked (no pack_i8)
  int (*i4_part_rows)(int M);
  int (*i4_part_row)(int M, int m, int part);
  void (*gemm_i4_tiles)(const int8_t* parts, const float* part_scales, const void* packed, int M,
                        const uint8_t* nibbles, int64_t ldp, const float* scales, const uint8_t* zeros, int groups,
                        int group, float* y, int64_t ldy, int n0, int n1, int K);
};

/**
 * Rows of x up to which the weight-only linears take gemv_i8 / gemv_e4m3 / gemv_i4 (weights widened
 * in registers, row tiles of up to 7) instead of decoding fp32 weight blocks for gemm_f32w: the
 * tiles measured faster through 64 rows on a Zen 4 core (int8_wo 101-109 GFLOP/s against the
 * blocks' 66-85, fp8 82-87 against 68-87, int4 88-92 against 76-88; `npm run bench:gemm`), the
 * blocks from prefill sizes. The same bits either way.
 */
constexpr int kQuantGemvMaxRows = 64;

const QuantKernels& quant_kernels(CpuLevel level);

}  // namespace grpst
