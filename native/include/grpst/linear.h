// Linear layers (y = x * W^T) behind one abstraction so weight formats plug in side by side.
// Each format lives in its own file (src/kernels/cpu/linear_<format>.cpp) and provides a
// LinearFormatOps: how to load its tensors from a TensorStore, how to compute a range of output
// columns for all rows, and how many bytes one pass reads. linear.cpp owns the threading, the
// same for every format. Adding a format = a new enum value, a new file, one registry line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "grpst/cpu_kernels.h"
#include "grpst/tensor_store.h"
#include "grpst/thread_pool.h"

namespace grpst {

enum class WeightFormat : uint8_t {
  BF16 = 0,
  INT8_WO = 1,  // linear_int8_wo.cpp
  INT4 = 2,     // linear_int4.cpp (int4_awq engines)
  FP8 = 3,      // linear_fp8.cpp
  INT8_SQ = 4,  // linear_int8_sq.cpp
};

struct LinearWeight {
  WeightFormat fmt = WeightFormat::BF16;
  int out_features = 0;
  int in_features = 0;
  const void* w = nullptr;         // BF16: uint16_t [out, in], row stride ldw
  int64_t ldw = 0;
  const float* scales = nullptr;   // per-format: per output channel, per group, or per tensor
  const void* zeros = nullptr;     // per-format zero points (AWQ)
  int group_size = 0;              // quantization group along in_features
  float input_scale = 1.0f;        // per-tensor activation scale (fp8, int8_sq)
};

struct LinearFormatOps {
  const char* name;
  /** Reads `<prefix>.weight` (and the format's companions) and checks shapes. */
  LinearWeight (*load)(TensorStore& store, const std::string& prefix, int out_features, int in_features);
  /** y[m, n] for all m < M and n0 <= n < n1 (x: [M, in] row stride ldx, y: row stride ldy;
   * prepared: what `prepare` made of x, nullptr for a format without one). */
  void (*columns)(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void* prepared,
                  float* y, int64_t ldy, int M, int n0, int n1);
  /** Bytes of weights (and scales) one forward pass reads. */
  int64_t (*bytes)(const LinearWeight& w);
  /** Optional (nullptr: none): the format's activation operand (quantized or rounded rows of x),
   * made once per call into `buf` before the column tasks run. Every task reads all M rows, so
   * making it inside `columns` would repeat it for each task. k: the level whose kernels make it;
   * pool: the threads its rows may be split across (the call's). */
  const void* (*prepare)(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                         std::vector<uint8_t>& buf, ThreadPool& pool);
  /** What `prepare` makes depends on x alone (not on the weight's own scales): projections of one
   * input in one call (q / k / v, gate / up) share it. */
  bool prepare_shared;
};

const LinearFormatOps& linear_format_ops(WeightFormat fmt);
/** The format named by an engine's quantization scheme ("none"/"bf16" today). */
WeightFormat weight_format_for_scheme(const std::string& scheme);

/** y[M, out] = x[M, in] * W^T, split across the pool's threads by output columns. */
void linear_forward(const LinearWeight& w, const float* x, float* y, int M, const CpuKernels& k, ThreadPool& pool);

/** Several projections of the same x (q/k/v, gate/up) in one parallel pass: ys[i] is [M, ws[i]->out]. */
void linear_forward_multi(const LinearWeight* const* ws, float* const* ys, int count, const float* x, int M,
                          const CpuKernels& k, ThreadPool& pool);

}  // namespace grpst
