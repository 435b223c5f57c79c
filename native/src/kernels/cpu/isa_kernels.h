// Declarations of the per-level kernel functions (defined in gemm_bf16.cpp, attention.cpp,
// elementwise.cpp, memory_bench.cpp, each compiled once per level) for dispatch.cpp.
#pragma once
#include "grpst/cpu_kernels.h"

#define GRPST_DECLARE_ISA_KERNELS(ns)                                                                        \
  namespace grpst::cpu::ns {                                                                                 \
  void gemm_bf16(const float* x, int64_t ldx, const uint16_t* w, int64_t ldw, float* y, int64_t ldy, int M, \
                 int n0, int n1, int K);                                                                     \
  void rmsnorm(const float* x, const float* w, float* y, int n, float eps);                                  \
  void attention(const AttentionArgs& a);                                                                    \
  void silu_mul(const float* gate, const float* up, float* out, int n);                                      \
  void add(float* x, const float* y, int n);                                                                 \
  void rank_update_bf16(const float* t, int R, const uint16_t* bt, int64_t ldb, int n, float scale, float* y); \
  void bf16_to_f32(const uint16_t* src, float* dst, int n);                                                  \
  void f32_to_bf16(const float* src, uint16_t* dst, int n);                                                  \
  void max_and_sum_exp(const float* x, int n, float* max_out, double* sum_out);                              \
  int argmax(const float* x, int n);                                                                         \
  float stream_read(const void* p, size_t bytes);                                                            \
  }

GRPST_DECLARE_ISA_KERNELS(avx512)
GRPST_DECLARE_ISA_KERNELS(avx2)
GRPST_DECLARE_ISA_KERNELS(scalar)
