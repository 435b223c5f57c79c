// The kernel that combines the split-K partials of the paged decode attention (attention_splits.cuh)
// for the kernels that merge in a second launch (attention_decode.cu, attention_decode_mma.cu).
#pragma once
#include "attention_splits.cuh"

namespace grpst::cuda {
namespace {

// Combines the splits of one (row, head) per block: weights 2^(lse_s - max lse).
// ws_o: [R * nh, splits, hd]; ws_lse: [R * nh, splits]; out: [R * nh, hd].
__global__ void split_reduce_kernel(const float* __restrict__ ws_o, const float* __restrict__ ws_lse, int num_splits,
                                    int hd, bf16* __restrict__ out) {
  griddep_wait();
  griddep_launch_dependents();
  const size_t rh = blockIdx.x;  // row * nh + head
  const float* lse = ws_lse + rh * num_splits;
  float mx = -INFINITY;
  for (int s = 0; s < num_splits; ++s) mx = fmaxf(mx, lse[s]);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float num = 0.f, den = 0.f;
    for (int s = 0; s < num_splits; ++s) {
      const float w = exp2_or_zero(lse[s], mx);
      num = fmaf(w, ws_o[(rh * num_splits + s) * hd + d], num);
      den += w;
    }
    out[rh * hd + d] = __float2bfloat16_rn(den > 0.f ? num / den : 0.f);
  }
}

}  // namespace
}  // namespace grpst::cuda
