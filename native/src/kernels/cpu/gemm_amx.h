// The AMX GEMMs (gemm_amx.cpp): the "amx" CPU level's gemm_bf16 and int8_sq's int8 products.
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

}  // namespace grpst::cpu::amx
