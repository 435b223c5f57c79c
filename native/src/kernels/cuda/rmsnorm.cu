// RMSNorm (optionally after a residual add) for prefill-sized batches; small batches fuse the
// norm into the next linear's prologue instead (linear_common.cuh).
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) rmsnorm_kernel(
    const bf16* __restrict__ x /*[M,H]*/, const bf16* residual /*[M,H] or null*/,
    bf16* residual_out /*[M,H] or null, may alias x*/, const float* __restrict__ w /*[H]*/,
    bf16* __restrict__ y /*[M,H]*/, int H, float eps) {
  __shared__ float scratch[33];
  griddep_wait();
  griddep_launch_dependents();
  const size_t row = static_cast<size_t>(blockIdx.x) * H;
  const uint4* xr = reinterpret_cast<const uint4*>(x + row);
  const uint4* rr = residual ? reinterpret_cast<const uint4*>(residual + row) : nullptr;
  uint4* ro = residual_out ? reinterpret_cast<uint4*>(residual_out + row) : nullptr;
  // Pass 1: the (summed) input, its square sum; the sum is stored before anything reads it back.
  float ss = 0.f;
  for (int i = threadIdx.x; i < H / 8; i += kThreads) {
    float f[8];
    unpack8(xr[i], f);
    if (rr) {
      float r[8];
      unpack8(rr[i], r);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = round_bf16(f[j] + r[j]);
      if (ro) ro[i] = pack8(f);
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) ss = fmaf(f[j], f[j], ss);
  }
  const float total = block_sum(ss, scratch);
  const float rstd = rsqrtf(total / static_cast<float>(H) + eps);
  // Pass 2: normalise; each thread reads back only the chunks it wrote itself.
  const uint4* src = (rr && ro) ? reinterpret_cast<const uint4*>(residual_out + row) : xr;
  const float4* wr = reinterpret_cast<const float4*>(w);
  uint4* yr = reinterpret_cast<uint4*>(y + row);
  for (int i = threadIdx.x; i < H / 8; i += kThreads) {
    float f[8], wf[8];
    unpack8(src[i], f);
    if (rr && !ro) {
      float r[8];
      unpack8(rr[i], r);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = round_bf16(f[j] + r[j]);
    }
    const float4 w0 = wr[2 * i], w1 = wr[2 * i + 1];
    wf[0] = w0.x; wf[1] = w0.y; wf[2] = w0.z; wf[3] = w0.w;
    wf[4] = w1.x; wf[5] = w1.y; wf[6] = w1.z; wf[7] = w1.w;
#pragma unroll
    for (int j = 0; j < 8; ++j) f[j] = wf[j] * round_bf16(f[j] * rstd);
    yr[i] = pack8(f);
  }
}

}  // namespace

Status rmsnorm(const bf16* x, const bf16* residual, bf16* residual_out, const float* w, bf16* y,
               int M, int H, float eps, const Exec& ex) {
  if (H % 8 != 0) return invalid("rmsnorm", "hidden size must be a multiple of 8");
  return launch("rmsnorm", rmsnorm_kernel, dim3(M), dim3(kThreads), 0, ex, x, residual,
                residual_out, w, y, H, eps);
}

}  // namespace grpst::cuda
