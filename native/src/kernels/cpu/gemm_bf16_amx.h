// The AMX bf16 GEMM (gemm_bf16_amx.cpp): the "amx" CPU level's gemm_bf16.
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

}  // namespace grpst::cpu::amx
