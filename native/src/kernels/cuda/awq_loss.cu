// AWQ's search objective on the GPU: the quantization error of each candidate scaling (awq_delta)
// and the squared error it causes on the sampled activations (awq_sumsq, a tiled fp32 GEMM that
// keeps only the sum of squares). The search runs ~20 candidates per linear group over a model's
// every layer: on the CPU this is most of an int4_awq build.
#include "awq_loss.h"
#include "device_utils.cuh"

namespace grpst::cuda {
namespace {

// One thread per (row, group): the group's amax, then its codes, as delta_row does on the CPU.
__global__ void awq_delta_kernel(const float* __restrict__ w, const float* __restrict__ s, int rows, int K, int group,
                                 float* __restrict__ delta) {
  griddep_wait();
  griddep_launch_dependents();
  const int groups = K / group;
  const int64_t id = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (id >= static_cast<int64_t>(rows) * groups) return;
  const int64_t base = id / groups * K + static_cast<int64_t>(id % groups) * group;
  const int c0 = static_cast<int>(id % groups) * group;
  float amax = 0.f;
  for (int i = 0; i < group; ++i) {
    const float v = s ? __fmul_rn(w[base + i], s[c0 + i]) : w[base + i];
    amax = fmaxf(amax, fabsf(v));
  }
  const float scale = __fdiv_rn(amax, 7.0f);
  for (int i = 0; i < group; ++i) {
    const float wi = w[base + i];
    const float v = s ? __fmul_rn(wi, s[c0 + i]) : wi;
    float q = 0.f;
    if (scale != 0.f) q = __fmul_rn(fminf(fmaxf(rintf(__fdiv_rn(v, scale)), -8.f), 7.f), scale);
    delta[base + i] = __fsub_rn(wi, s ? __fdiv_rn(q, s[c0 + i]) : q);
  }
}

constexpr int kTileK = 16;
constexpr int kThreads = 256;  // 16 x 16, each a 4 x 4 patch of the 64 x 64 tile

__global__ void __launch_bounds__(kThreads) awq_sumsq_kernel(const float* __restrict__ x, const float* __restrict__ d,
                                                             int n, int rows, int K, double* __restrict__ partial) {
  __shared__ float xs[kTileK][kAwqTile + 1];
  __shared__ float ds[kTileK][kAwqTile + 1];
  __shared__ double warp_sums[kThreads / 32];
  griddep_wait();
  griddep_launch_dependents();
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int m0 = blockIdx.y * kAwqTile, r0 = blockIdx.x * kAwqTile;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += kTileK) {
    for (int i = threadIdx.x; i < kAwqTile * kTileK; i += kThreads) {
      const int m = i / kTileK, k = i % kTileK;
      xs[k][m] = m0 + m < n && k0 + k < K ? x[static_cast<int64_t>(m0 + m) * K + k0 + k] : 0.f;
      ds[k][m] = r0 + m < rows && k0 + k < K ? d[static_cast<int64_t>(r0 + m) * K + k0 + k] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = xs[k][ty * 4 + i], b[i] = ds[k][tx * 4 + i];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  // Rows and columns past the edges multiplied zeros: their squares add nothing.
  double sum = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) sum += static_cast<double>(acc[i][j]) * acc[i][j];
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, o);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int i = 0; i < kThreads / 32; ++i) t += warp_sums[i];
    partial[static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x] = t;
  }
}

}  // namespace

Status awq_delta(const float* w, const float* s, int rows, int K, int group, float* delta, const Exec& ex) {
  if (rows <= 0 || K <= 0 || group <= 0 || K % group != 0) return invalid("awq_delta", "K must be a positive multiple of group");
  const int64_t threads = static_cast<int64_t>(rows) * (K / group);
  return launch("awq_delta", awq_delta_kernel, dim3(static_cast<unsigned>((threads + 255) / 256)), dim3(256), 0, ex, w, s,
                rows, K, group, delta);
}

Status awq_sumsq(const float* x, const float* delta, int n, int rows, int K, double* partial, const Exec& ex) {
  if (n <= 0 || rows <= 0 || K <= 0) return invalid("awq_sumsq", "empty operands");
  const dim3 grid((rows + kAwqTile - 1) / kAwqTile, (n + kAwqTile - 1) / kAwqTile);
  return launch("awq_sumsq", awq_sumsq_kernel, grid, dim3(kThreads), 0, ex, x, delta, n, rows, K, partial);
}

}  // namespace grpst::cuda
