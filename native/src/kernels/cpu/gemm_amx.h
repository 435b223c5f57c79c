// The AMX GEMMs (gemm_amx.cpp, gemm_amx_int4.cpp): the "amx" CPU level's gemm_bf16, int8_sq's and
// int8_wo's int8 products, and int4 groups widened to int8.
#pragma once
#include <cstddef>
#include <cstdint>

namespace grpst::cpu::amx {

/** Whether the CPU has AMX-TILE and AMX-BF16 and the OS granted this process the tile state. */
bool available();
/** Bytes pack() writes for M rows of K activations. */
size_t packed_bytes(int M, int K);
/** x [M, K] (row stride ldx) as three bf16 parts in the B operand's pair layout (64-byte aligned out). */
void pack(const float* x, int64_t ldx, int M, int K, void* out);
/** y[m, n] = sum_k x[m, k] * w[n, k] for m < M, n0 <= n < n1, from pack()'s activations. */
void gemm_packed(const void* packed, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0, int n1,
                 int K);
/** CpuKernels::gemm_bf16: pack() into a per-thread buffer, then gemm_packed(). */
void gemm(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, int n0, int n1,
          int K);

/** available() and AMX-INT8 too (int8_sq's products). */
bool available_int8();
/** Bytes pack_i8() writes for M rows of K int8 activations. */
size_t packed_i8_bytes(int M, int K);
/** xq [M, K] int8 (row stride ldx) in TDPBSSD's B layout (64-byte aligned out). */
void pack_i8(const int8_t* xq, int64_t ldx, int M, int K, void* out);
/** acc[m, n] = sum_k xq[m, k] * w[n, k] exactly, m < M, n < N, from pack_i8()'s activations. */
void gemm_i8_packed(const void* packed, const int8_t* w, int64_t ldw, int32_t* acc, int64_t ldacc, int M, int N, int K);

/** Whether int4 groups of `group` weights go through gemm_i4: whole 64-column chunks (every group
 * with a nibble unit, gemm_int4_nibbles.h, so a shared operand is always gemm_i4's), and sums
 * within int32. */
bool i4_group_fits(int group);
/** Rows of gemm_i4's parts operand for M rows of x (rows no part takes: zero, scale 0), and the
 * row of part p of x's row m: for up to 5 rows of x one packed block's columns 3m + p, else
 * [16-token block][part][16 tokens]. */
int i4_part_rows(int M);
int i4_part_row(int M, int m, int part);
/**
 * y[m, n] = sum_g scales[n, g] * sum_{k in g} x[m, k] (q[n, k] - zeros[n, g]) for m < M,
 * n0 <= n < n1, x given as its int8 parts (parts [i4_part_rows(M), K], each 64-column chunk's
 * even columns, then its odd ones; part_scales [i4_part_rows(M)]) and them packed by pack_i8
 * (unread, and need not be made, for up to kI4VnniRows rows of x: gemm_i4_rows). nibbles [N, K / 2] (element 2j low, 2j + 1 high),
 * scales and zeros [N, groups]. Every output the same bits whatever M (gemm_amx_int4.cpp).
 */
void gemm_i4(const int8_t* parts, const float* part_scales, const void* packed, int M, const uint8_t* nibbles,
             int64_t ldp, const float* scales, const uint8_t* zeros, int groups, int group, float* y, int64_t ldy,
             int n0, int n1, int K);

/** Rows of x up to which gemm_i4 multiplies in registers (gemm_i4_rows) rather than on tiles (at
 * 3 and 4 rows the tiles' narrow pass measured 1.0-1.15x the registers', at 2 even). */
constexpr int kI4VnniRows = 2;
/** gemm_i4's y for 1 to kI4VnniRows rows of x with AVX-512 VNNI (gemm_int4_vnni.cpp): the same
 * bits, from the unpacked parts alone. */
void gemm_i4_rows(const int8_t* parts, const float* part_scales, int M, const uint8_t* nibbles, int64_t ldp,
                  const float* scales, const uint8_t* zeros, int groups, int group, float* y, int64_t ldy, int n0,
                  int n1, int K);

}  // namespace grpst::cpu::amx
