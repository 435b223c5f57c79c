// The best (value, index) of a thread block: the higher value, ties to the lower index (the host
// sampler's order). Shared by the sampling and top-logprobs kernels.
#pragma once
#include <cuda_runtime.h>

namespace grpst::cuda {

struct ArgMax {
  float v;
  int i;
};
// Whether a ranks before b.
__device__ __forceinline__ bool ranks_before(ArgMax a, ArgMax b) { return a.v > b.v || (a.v == b.v && a.i < b.i); }
__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) { return ranks_before(b, a) ? b : a; }

// The block's best of every thread's `a`; scratch holds 33 entries. Every thread gets the result.
template <int kThreads>
__device__ ArgMax block_argmax(ArgMax a, ArgMax* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) a = better(a, ArgMax{__shfl_xor_sync(0xffffffffu, a.v, o), __shfl_xor_sync(0xffffffffu, a.i, o)});
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  if (warp == 0) {
    a = lane < (kThreads >> 5) ? scratch[lane] : ArgMax{-INFINITY, 0x7fffffff};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a = better(a, ArgMax{__shfl_xor_sync(0xffffffffu, a.v, o), __shfl_xor_sync(0xffffffffu, a.i, o)});
    if (lane == 0) scratch[32] = a;
  }
  __syncthreads();
  return scratch[32];
}

}  // namespace grpst::cuda
