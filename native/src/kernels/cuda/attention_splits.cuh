// The split-K merge of the paged decode attention kernels (attention_decode.cu, the register-
// streaming kernel, and attention_decode_mma.cu, the tensor-core one). Each warp of a block has
// left, per query head j of its KV head's group, its running max m (log2 units), its sum l and
// its unnormalized output acc[HD] in shared memory; merge_warps_and_store combines the warps and
// writes the head's output (one split), or the split's partial output and log-sum-exp (several
// splits), which split_reduce_kernel then combines across splits.
#pragma once
#include <cmath>
#include <cstddef>

#include "device_utils.cuh"

namespace grpst::cuda {
namespace {

// 2^(x - m), and 0 when nothing was seen yet (m = -inf), where exp2f would give NaN.
__device__ __forceinline__ float exp2_or_zero(float x, float m) { return m == -INFINITY ? 0.f : exp2f(x - m); }

// sm_m, sm_l: [Warps][Rows]; sm_acc: [Warps][Rows][HD], of which the first `group` rows are
// heads first_head .. first_head + group - 1 of row r. out: [R, nh, HD]; ws_o: [R, nh, splits, HD];
// ws_lse: [R, nh, splits].
template <int HD, int Warps, int Rows>
__device__ __forceinline__ void merge_warps_and_store(const float (&sm_m)[Warps][Rows], const float (&sm_l)[Warps][Rows],
                                                      const float (&sm_acc)[Warps][Rows][HD], int group, int first_head,
                                                      int r, int nh, int s, int num_splits, bf16* __restrict__ out,
                                                      float* __restrict__ ws_o, float* __restrict__ ws_lse) {
  for (int idx = threadIdx.x; idx < group * HD; idx += Warps * 32) {
    const int j = idx / HD, d = idx % HD;
    float mm = -INFINITY;
#pragma unroll
    for (int w = 0; w < Warps; ++w) mm = fmaxf(mm, sm_m[w][j]);
    float L = 0.f, A = 0.f;
#pragma unroll
    for (int w = 0; w < Warps; ++w) {
      const float e = exp2_or_zero(sm_m[w][j], mm);
      L = fmaf(sm_l[w][j], e, L);
      A = fmaf(sm_acc[w][j][d], e, A);
    }
    const int h = first_head + j;
    const float o = L > 0.f ? A / L : 0.f;
    if (num_splits == 1) {
      out[(static_cast<size_t>(r) * nh + h) * HD + d] = __float2bfloat16_rn(o);
    } else {
      const size_t part = (static_cast<size_t>(r) * nh + h) * num_splits + s;
      ws_o[part * HD + d] = o;
      if (d == 0) ws_lse[part] = L > 0.f ? mm + log2f(L) : -INFINITY;
    }
  }
}

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
