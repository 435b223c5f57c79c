// SwiGLU over interleaved (gate, up) columns, HF rounding: silu in fp32 rounded to bf16, then
// the product rounded to bf16.
#include <algorithm>

#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

__device__ __forceinline__ float swiglu1(float g, float u) {
  const float s = round_bf16(g / (1.f + expf(-g)));
  return s * u;
}

__global__ void swiglu_kernel(const bf16* __restrict__ gu /*[M,2I]*/, bf16* __restrict__ out /*[M,I]*/,
                              int M, int I) {
  griddep_wait();
  griddep_launch_dependents();
  // Each thread: 4 outputs from 8 interleaved inputs (one 16-byte load).
  const size_t quads = static_cast<size_t>(M) * I / 4;
  for (size_t q = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; q < quads;
       q += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float f[8];
    unpack8(reinterpret_cast<const uint4*>(gu)[q], f);
    uint2 o;
    o.x = pack_bf16x2(swiglu1(f[0], f[1]), swiglu1(f[2], f[3]));
    o.y = pack_bf16x2(swiglu1(f[4], f[5]), swiglu1(f[6], f[7]));
    reinterpret_cast<uint2*>(out)[q] = o;
  }
}

}  // namespace

Status swiglu(const bf16* gate_up, bf16* out, int M, int I, const Exec& ex) {
  if (I % 4 != 0) return invalid("swiglu", "intermediate size must be a multiple of 4");
  const size_t quads = static_cast<size_t>(M) * I / 4;
  const int blocks = static_cast<int>(std::min<size_t>((quads + 255) / 256, 132 * 16));
  return launch("swiglu", swiglu_kernel, dim3(blocks), dim3(256), 0, ex, gate_up, out, M, I);
}

}  // namespace grpst::cuda
