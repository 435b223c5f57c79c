// Activation quantization for the fp8 / int8_sq GEMM paths and the int32 -> bf16 epilogue of the
// int8 GEMM. One row per block (row_block_kernel; the kernels before it, eight rows per block and a
// warp each, remain for GRPST_CUDA_ACT_WARP_PER_ROW=1); the prologue (RMSNorm, per-channel scale)
// is the same code the small-batch kernels fuse.
#include "block_row_stats.cuh"
#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"
#include "linear_common.cuh"

namespace grpst::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) prologue_kernel(LinearIn in, bf16* __restrict__ out, int M, int K) {
  __shared__ float rstd[kThreads / 32], unused[kThreads / 32];
  griddep_wait();
  griddep_launch_dependents();
  const int m0 = blockIdx.x * (kThreads / 32);
  LinearIn rows = in;
  rows.x = in.x + static_cast<size_t>(m0) * K;
  const int rows_here = min(kThreads / 32, M - m0);
  linear_row_stats(rows, rows_here, K, false, rstd, unused);
  __syncthreads();
  for (int idx = threadIdx.x; idx < rows_here * (K / 8); idx += kThreads) {
    const int m = idx / (K / 8), k = (idx % (K / 8)) * 8;
    float f[8];
    linear_load8(rows, K, m, k, rstd[m], f);
    *reinterpret_cast<uint4*>(out + static_cast<size_t>(m0 + m) * K + k) = pack8(f);
  }
}

__global__ void __launch_bounds__(kThreads) quantize_fp8_kernel(LinearIn in, const float* __restrict__ x_scale,
                                                                uint8_t* __restrict__ xq, int M, int K) {
  __shared__ float rstd[kThreads / 32], unused[kThreads / 32];
  griddep_wait();
  griddep_launch_dependents();
  const int m0 = blockIdx.x * (kThreads / 32);
  LinearIn rows = in;
  rows.x = in.x + static_cast<size_t>(m0) * K;
  const int rows_here = min(kThreads / 32, M - m0);
  linear_row_stats(rows, rows_here, K, false, rstd, unused);
  __syncthreads();
  const float div = *x_scale, inv = __frcp_rn(div);
  for (int idx = threadIdx.x; idx < rows_here * (K / 8); idx += kThreads) {
    const int m = idx / (K / 8), k = (idx % (K / 8)) * 8;
    float f[8];
    linear_load8(rows, K, m, k, rstd[m], f);
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      lo |= static_cast<uint32_t>(f32_to_e4m3(div_by(f[e], div, inv))) << (8 * e);
      hi |= static_cast<uint32_t>(f32_to_e4m3(div_by(f[e + 4], div, inv))) << (8 * e);
    }
    *reinterpret_cast<uint2*>(xq + static_cast<size_t>(m0 + m) * K + k) = make_uint2(lo, hi);
  }
}

__global__ void __launch_bounds__(kThreads) quantize_int8_kernel(LinearIn in, int8_t* __restrict__ xq,
                                                                 float* __restrict__ x_scales, int M, int K) {
  __shared__ float rstd[kThreads / 32], amax[kThreads / 32];
  griddep_wait();
  griddep_launch_dependents();
  const int m0 = blockIdx.x * (kThreads / 32);
  LinearIn rows = in;
  rows.x = in.x + static_cast<size_t>(m0) * K;
  const int rows_here = min(kThreads / 32, M - m0);
  linear_row_stats(rows, rows_here, K, true, rstd, amax);
  __syncthreads();
  if (threadIdx.x < rows_here) x_scales[m0 + threadIdx.x] = amax[threadIdx.x] / 127.f;
  for (int idx = threadIdx.x; idx < rows_here * (K / 8); idx += kThreads) {
    const int m = idx / (K / 8), k = (idx % (K / 8)) * 8;
    const float div = amax[m] > 0.f ? amax[m] / 127.f : 1.f, inv = __frcp_rn(div);
    float f[8];
    linear_load8(rows, K, m, k, rstd[m], f);
    uint32_t lo = 0, hi = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      lo |= static_cast<uint32_t>(static_cast<uint8_t>(f32_to_i8(div_by(f[e], div, inv)))) << (8 * e);
      hi |= static_cast<uint32_t>(static_cast<uint8_t>(f32_to_i8(div_by(f[e + 4], div, inv)))) << (8 * e);
    }
    *reinterpret_cast<uint2*>(xq + static_cast<size_t>(m0 + m) * K + k) = make_uint2(lo, hi);
  }
}

// One row per block, for every mode above: the row's statistics by the whole block, with the
// streaming GEMV's helper (block_row_stats.cuh; the same bits for a normed row on both paths). The
// warp-per-row kernels put 8 rows on a block, so at 16-64 rows they ran on 2-8 SMs with each warp
// walking its whole row (K / 256 dependent rounds per pass); here every row has its SM.
enum class RowMode : int { prologue = 0, fp8 = 1, int8 = 2 };
constexpr int kRowOnceChunks = 6;  // 12,288 columns (down_proj) at 256 threads
static_assert(kThreads == kRowStatsThreads, "row_block_kernel reduces with the row statistics' block");

template <RowMode kMode>
__global__ void __launch_bounds__(kThreads) row_block_kernel(LinearIn in, void* __restrict__ out,
                                                             const float* __restrict__ x_scale,
                                                             float* __restrict__ x_scales, int K) {
  __shared__ float rstd[1], amax[1], part[kRowStatsWarps * 8];
  griddep_wait();
  griddep_launch_dependents();
  const int m = blockIdx.x, chunks = K / 8;
  LinearIn row = in;
  row.x = in.x + static_cast<size_t>(m) * K;
  // A row of up to kRowOnceChunks chunks per thread is loaded once (RowChunks: its statistics and
  // values from registers, the same bits); longer rows are read for each pass.
  RowChunks<kRowOnceChunks, kMaybeNorm> rc;
  const bool once = chunks <= kThreads * kRowOnceChunks;
  float r;
  if (once) {
    rc.load(row, K);
    r = row_chunks_stats(row, K, rc, kMode == RowMode::int8, rstd, amax, part);
  } else {
    block_row_stats<true>(row, 1, K, kMode == RowMode::int8, false, rstd, amax, part);
    __syncthreads();
    r = rstd[0];
  }
  float div = 1.f;
  if constexpr (kMode == RowMode::fp8) div = *x_scale;
  if constexpr (kMode == RowMode::int8) {
    if (threadIdx.x == 0) x_scales[m] = amax[0] / 127.f;
    div = amax[0] > 0.f ? amax[0] / 127.f : 1.f;
  }
  const float inv = __frcp_rn(div);
  // Chunk j's prologue-applied values f, written in the mode's format.
  auto emit = [&](int j, const float (&f)[8]) {
    const size_t at = static_cast<size_t>(m) * K + j * 8;
    if constexpr (kMode == RowMode::prologue) {
      *reinterpret_cast<uint4*>(static_cast<bf16*>(out) + at) = pack8(f);
    } else {
      uint32_t lo = 0, hi = 0;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if constexpr (kMode == RowMode::fp8) {
          lo |= static_cast<uint32_t>(f32_to_e4m3(div_by(f[e], div, inv))) << (8 * e);
          hi |= static_cast<uint32_t>(f32_to_e4m3(div_by(f[e + 4], div, inv))) << (8 * e);
        } else {
          lo |= static_cast<uint32_t>(static_cast<uint8_t>(f32_to_i8(div_by(f[e], div, inv)))) << (8 * e);
          hi |= static_cast<uint32_t>(static_cast<uint8_t>(f32_to_i8(div_by(f[e + 4], div, inv)))) << (8 * e);
        }
      }
      *reinterpret_cast<uint2*>(static_cast<uint8_t*>(out) + at) = make_uint2(lo, hi);
    }
  };
  if (once) {
#pragma unroll
    for (int c = 0; c < kRowOnceChunks; ++c) {
      const int j = static_cast<int>(threadIdx.x) + kThreads * c;
      if (j >= chunks) break;
      float f[8];
      rc.transform(row, K, c, r, f);
      emit(j, f);
    }
    return;
  }
  for (int j = threadIdx.x; j < chunks; j += kThreads) {
    float f[8];
    linear_load8(row, K, 0, j * 8, r, f);
    emit(j, f);
  }
}

// GRPST_CUDA_ACT_WARP_PER_ROW=1: the warp-per-row kernels above (for comparisons in turns).
bool warp_per_row() { return env_int("GRPST_CUDA_ACT_WARP_PER_ROW", 0) != 0; }

__global__ void dequant_int32_kernel(const int32_t* __restrict__ acc, const float* __restrict__ x_scales,
                                     const float* __restrict__ w_scales, LinearOut out, int M, int N) {
  griddep_wait();
  griddep_launch_dependents();
  const size_t total = out.epi == Epilogue::swiglu ? static_cast<size_t>(M) * (N / 2) : static_cast<size_t>(M) * N;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    if (out.epi == Epilogue::swiglu) {
      const int m = static_cast<int>(i / (N / 2)), j = static_cast<int>(i % (N / 2));
      const size_t a = static_cast<size_t>(m) * N + 2 * j;
      const float gate = static_cast<float>(acc[a]) * x_scales[m] * w_scales[2 * j];
      const float up = static_cast<float>(acc[a + 1]) * x_scales[m] * w_scales[2 * j + 1];
      linear_store_swiglu(out, N, m, j, gate, up);
    } else {
      const int m = static_cast<int>(i / N), n = static_cast<int>(i % N);
      linear_store(out, N, m, n, static_cast<float>(acc[i]) * x_scales[m] * w_scales[n]);
    }
  }
}

}  // namespace

Status linear_prologue(const LinearIn& in, bf16* out, int M, int K, const Exec& ex) {
  if (K % 8 != 0) return invalid("linear_prologue", "K must be a multiple of 8");
  if (!warp_per_row())
    return launch("linear_prologue", row_block_kernel<RowMode::prologue>, dim3(M), dim3(kThreads), 0, ex, in,
                  static_cast<void*>(out), static_cast<const float*>(nullptr), static_cast<float*>(nullptr), K);
  return launch("linear_prologue", prologue_kernel, dim3(ceil_div(M, kThreads / 32)), dim3(kThreads), 0, ex, in,
                out, M, K);
}

Status quantize_fp8(const LinearIn& in, const float* x_scale, uint8_t* xq, int M, int K, const Exec& ex) {
  if (K % 8 != 0) return invalid("quantize_fp8", "K must be a multiple of 8");
  if (!warp_per_row())
    return launch("quantize_fp8", row_block_kernel<RowMode::fp8>, dim3(M), dim3(kThreads), 0, ex, in,
                  static_cast<void*>(xq), x_scale, static_cast<float*>(nullptr), K);
  return launch("quantize_fp8", quantize_fp8_kernel, dim3(ceil_div(M, kThreads / 32)), dim3(kThreads), 0, ex,
                in, x_scale, xq, M, K);
}

Status quantize_int8_rows(const LinearIn& in, int8_t* xq, float* x_scales, int M, int K, const Exec& ex) {
  if (K % 8 != 0) return invalid("quantize_int8_rows", "K must be a multiple of 8");
  if (!warp_per_row())
    return launch("quantize_int8_rows", row_block_kernel<RowMode::int8>, dim3(M), dim3(kThreads), 0, ex, in,
                  static_cast<void*>(xq), static_cast<const float*>(nullptr), x_scales, K);
  return launch("quantize_int8_rows", quantize_int8_kernel, dim3(ceil_div(M, kThreads / 32)), dim3(kThreads), 0,
                ex, in, xq, x_scales, M, K);
}

Status dequant_int32(const int32_t* acc, const float* x_scales, const float* w_scales, const LinearOut& out,
                     int M, int N, const Exec& ex) {
  const size_t total = static_cast<size_t>(M) * N;
  const int blocks = static_cast<int>((total + 255) / 256 < 132 * 16 ? (total + 255) / 256 : 132 * 16);
  return launch("dequant_int32", dequant_int32_kernel, dim3(blocks), dim3(256), 0, ex, acc, x_scales, w_scales,
                out, M, N);
}

}  // namespace grpst::cuda
