// One head's q_norm / k_norm and rotary embedding (rotate-half form), shared by the q/k-norm +
// RoPE + KV-write kernel and the fused decode attention. Rounding follows transformers' bf16
// graph step by step: norm -> bf16, cos/sin -> bf16, q*cos and rotate_half(q)*sin -> bf16,
// sum -> bf16.
#pragma once
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {

constexpr int kRopeMaxPairs = 4;  // head_dim <= 256: lane holds pairs i = lane + 32c, c < 4

// Called by a whole warp (it reduces over the head). src: the head's hd bf16 values; nw: the
// per-head norm weight or null. On return o1[c], o2[c] hold the outputs at i = lane + 32c and
// i + hd/2 for i < hd/2 (bf16-rounded floats).
__device__ __forceinline__ void norm_rope_head(const bf16* src, int hd, const float* nw, float eps,
                                               const Rope& rope, float pos, int lane,
                                               float (&o1)[kRopeMaxPairs], float (&o2)[kRopeMaxPairs]) {
  const int half = hd / 2;
  float x1[kRopeMaxPairs], x2[kRopeMaxPairs];
  float ss = 0.f;
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    const int i = lane + 32 * c;
    x1[c] = x2[c] = 0.f;
    if (i < half) {
      x1[c] = to_f32(src[i]);
      x2[c] = to_f32(src[i + half]);
      ss = fmaf(x1[c], x1[c], fmaf(x2[c], x2[c], ss));
    }
  }
  if (nw) {
    const float rstd = rsqrtf(warp_sum(ss) / static_cast<float>(hd) + eps);
#pragma unroll
    for (int c = 0; c < kRopeMaxPairs; ++c) {
      const int i = lane + 32 * c;
      if (i < half) {
        x1[c] = round_bf16(nw[i] * round_bf16(x1[c] * rstd));
        x2[c] = round_bf16(nw[i + half] * round_bf16(x2[c] * rstd));
      }
    }
  }
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    const int i = lane + 32 * c;
    o1[c] = o2[c] = 0.f;
    if (i >= half) continue;
    float sn, cs;
    sincosf(pos * rope.inv_freq[i], &sn, &cs);
    cs = round_bf16(cs * rope.attention_scaling);
    sn = round_bf16(sn * rope.attention_scaling);
    o1[c] = round_bf16(round_bf16(x1[c] * cs) + round_bf16(-x2[c] * sn));
    o2[c] = round_bf16(round_bf16(x2[c] * cs) + round_bf16(x1[c] * sn));
  }
}

}  // namespace grpst::cuda
