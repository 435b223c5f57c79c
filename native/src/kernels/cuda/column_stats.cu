// Per-column |x| statistics for calibration (SmoothQuant, AWQ and fp8 scales): a running max and
// a running sum of |x| over every row a build's calibration text passes through a capture point.
// Reductions stay on the device; only the [cols] totals and a few sampled rows leave it.
#include <algorithm>

#include "device_utils.cuh"
#include "kernels.h"
#include "moe.h"

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

// One block per (128 columns, tile): the tile's rows all go to one expert, so its partials land in
// that expert's totals. Tiles past *tile_count (the grid is sized from a bound) exit at once.
__global__ void expert_column_abs_stats_kernel(const bf16* __restrict__ x /*[*, cols]*/,
                                               const int32_t* __restrict__ row_of /*[P] or null*/,
                                               const MoeTile* __restrict__ tiles, const int32_t* __restrict__ tile_count,
                                               int cols, float* __restrict__ abs_max /*[E, cols]*/,
                                               double* __restrict__ abs_sum /*[E, cols]*/,
                                               unsigned long long* __restrict__ rows_seen /*[E] or null*/) {
  griddep_wait();
  griddep_launch_dependents();
  if (static_cast<int>(blockIdx.y) >= *tile_count) return;
  const MoeTile tile = tiles[blockIdx.y];
  if (rows_seen && blockIdx.x == 0 && threadIdx.x == 0)
    atomicAdd(rows_seen + tile.expert, static_cast<unsigned long long>(tile.rows));
  const int c = blockIdx.x * kColsPerBlock + threadIdx.x;
  if (c >= cols) return;
  float mx = 0.f, sum = 0.f;  // at most kMoeWideRows terms: as the dense kernel's runs of 64
  for (int i = 0; i < tile.rows; ++i) {
    const int r = tile.row0 + i;
    const int src = row_of ? row_of[r] : r;
    const float a = fabsf(to_f32(x[static_cast<int64_t>(src) * cols + c]));
    mx = fmaxf(mx, a);
    sum += a;
  }
  const size_t at = static_cast<size_t>(tile.expert) * cols + c;
  atomic_max_nonneg(abs_max + at, mx);
  atomicAdd(abs_sum + at, static_cast<double>(sum));
}

}  // namespace

Status expert_column_abs_stats(const bf16* x, const int32_t* row_of, const MoeTile* tiles, const int32_t* tile_count,
                               int max_tiles, int cols, float* abs_max, double* abs_sum, unsigned long long* rows_seen,
                               const Exec& ex) {
  if (max_tiles <= 0 || cols <= 0) return ok_status();
  if (!x || !tiles || !tile_count || !abs_max || !abs_sum) return invalid("expert_column_abs_stats", "a null buffer");
  const dim3 grid((cols + kColsPerBlock - 1) / kColsPerBlock, max_tiles);
  return launch("expert_column_abs_stats", expert_column_abs_stats_kernel, grid, dim3(kColsPerBlock), 0, ex, x, row_of,
                tiles, tile_count, cols, abs_max, abs_sum, rows_seen);
}

Status column_abs_stats(const bf16* x, int rows, int cols, int64_t ld, float* abs_max, double* abs_sum, const Exec& ex) {
  if (rows <= 0 || cols <= 0) return ok_status();
  if (ld < cols) return invalid("column_abs_stats", "row stride shorter than a row");
  const dim3 grid((cols + kColsPerBlock - 1) / kColsPerBlock, (rows + kRowsPerBlock - 1) / kRowsPerBlock);
  return launch("column_abs_stats", column_abs_stats_kernel, grid, dim3(kColsPerBlock), 0, ex, x, rows, cols, ld, abs_max,
                abs_sum);
}

}  // namespace grpst::cuda
