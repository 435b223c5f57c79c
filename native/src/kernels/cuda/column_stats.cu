// Per-column |x| statistics for calibration (SmoothQuant, AWQ and fp8 scales): a running max and
// a running sum of |x| over every row a build's calibration text passes through a capture point.
// Reductions stay on the device; only the [cols] totals and a few sampled rows leave it.
#include <algorithm>

#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

constexpr int kColsPerBlock = 128;  // one thread per column: a warp reads 64 contiguous bytes of a row
constexpr int kRowsPerBlock = 64;   // rows one thread folds before its atomics

// Non-negative floats order as their bit patterns, so a max over |x| is an integer atomicMax.
__device__ __forceinline__ void atomic_max_nonneg(float* addr, float v) {
  atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
}

__global__ void column_abs_stats_kernel(const bf16* __restrict__ x /*[rows, ld]*/, int rows, int cols, int64_t ld,
                                        float* __restrict__ abs_max /*[cols]*/, double* __restrict__ abs_sum /*[cols]*/) {
  griddep_wait();
  griddep_launch_dependents();
  const int c = blockIdx.x * kColsPerBlock + threadIdx.x;
  if (c >= cols) return;
  const int r0 = blockIdx.y * kRowsPerBlock, r1 = min(rows, r0 + kRowsPerBlock);
  float mx = 0.f, sum = 0.f;  // 64 terms of at most bf16's range: fp32 holds their sum to 2^-24 relative
  for (int r = r0; r < r1; ++r) {
    const float a = fabsf(to_f32(x[static_cast<int64_t>(r) * ld + c]));
    mx = fmaxf(mx, a);
    sum += a;
  }
  atomic_max_nonneg(abs_max + c, mx);
  if (abs_sum) atomicAdd(abs_sum + c, static_cast<double>(sum));
}

}  // namespace

Status column_abs_stats(const bf16* x, int rows, int cols, int64_t ld, float* abs_max, double* abs_sum, const Exec& ex) {
  if (rows <= 0 || cols <= 0) return ok_status();
  if (ld < cols) return invalid("column_abs_stats", "row stride shorter than a row");
  const dim3 grid((cols + kColsPerBlock - 1) / kColsPerBlock, (rows + kRowsPerBlock - 1) / kRowsPerBlock);
  return launch("column_abs_stats", column_abs_stats_kernel, grid, dim3(kColsPerBlock), 0, ex, x, rows, cols, ld, abs_max,
                abs_sum);
}

}  // namespace grpst::cuda
