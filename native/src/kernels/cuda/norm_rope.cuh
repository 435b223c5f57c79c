// One head's q_norm / k_norm and rotary embedding (rotate-half form), shared by the q/k-norm +
// RoPE + KV-write kernel and the decode attentions that take the QKV rows. Rounding follows transformers' bf16
// graph step by step: norm -> bf16, cos/sin -> bf16, q*cos and rotate_half(q)*sin -> bf16,
// sum -> bf16.
#pragma once
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {

constexpr int kRopeMaxPairs = 4;  // head_dim <= 256: lane holds pairs i = lane + 32c, c < 4

// Called by a whole warp for n (<= H) heads of one token at once (the decode attention's
// prologue gives one warp its q head and the k head): every head's loads issue together, their
// reductions interleave, and cos / sin are computed once for all, since they depend only on the
// position. Each head's arithmetic is norm_rope_head's, so the bits are the same. src[h]: head h's
// hd bf16 values; nw[h]: its norm weight or null. On return o1[h][c], o2[h][c] hold head h's
// outputs at i = lane + 32c and i + hd/2 for i < hd/2 (bf16-rounded floats).
template <int H>
__device__ __forceinline__ void norm_rope_heads(const bf16* const* src /*[H]*/, const float* const* nw /*[H]*/, int n, int hd,
                                                float eps, const Rope& rope, float pos, int lane,
                                                float (&o1)[H][kRopeMaxPairs], float (&o2)[H][kRopeMaxPairs]) {
  const int half = hd / 2;
  float x1[H][kRopeMaxPairs], x2[H][kRopeMaxPairs], ss[H];
#pragma unroll
  for (int h = 0; h < H; ++h) {
    ss[h] = 0.f;
#pragma unroll
    for (int c = 0; c < kRopeMaxPairs; ++c) {
      const int i = lane + 32 * c;
      x1[h][c] = x2[h][c] = 0.f;
      if (h < n && i < half) {
        x1[h][c] = to_f32(src[h][i]);
        x2[h][c] = to_f32(src[h][i + half]);
        ss[h] = fmaf(x1[h][c], x1[h][c], fmaf(x2[h][c], x2[h][c], ss[h]));
      }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)  // warp_sum's order, the heads interleaved
#pragma unroll
    for (int h = 0; h < H; ++h) ss[h] += __shfl_xor_sync(0xffffffffu, ss[h], o);
#pragma unroll
  for (int h = 0; h < H; ++h) {
    if (h >= n || !nw[h]) continue;
    const float rstd = rsqrtf(ss[h] / static_cast<float>(hd) + eps);
#pragma unroll
    for (int c = 0; c < kRopeMaxPairs; ++c) {
      const int i = lane + 32 * c;
      if (i < half) {
        x1[h][c] = round_bf16(nw[h][i] * round_bf16(x1[h][c] * rstd));
        x2[h][c] = round_bf16(nw[h][i + half] * round_bf16(x2[h][c] * rstd));
      }
    }
  }
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    const int i = lane + 32 * c;
    float sn = 0.f, cs = 0.f;
    if (i < half) {
      sincosf(pos * rope.inv_freq[i], &sn, &cs);
      cs = round_bf16(cs * rope.attention_scaling);
      sn = round_bf16(sn * rope.attention_scaling);
    }
#pragma unroll
    for (int h = 0; h < H; ++h) {
      o1[h][c] = o2[h][c] = 0.f;
      if (i >= half) continue;
      o1[h][c] = round_bf16(round_bf16(x1[h][c] * cs) + round_bf16(-x2[h][c] * sn));
      o2[h][c] = round_bf16(round_bf16(x2[h][c] * cs) + round_bf16(x1[h][c] * sn));
    }
  }
}

// One head (a whole warp): norm_rope_heads for n = 1.
__device__ __forceinline__ void norm_rope_head(const bf16* src, int hd, const float* nw, float eps,
                                               const Rope& rope, float pos, int lane,
                                               float (&o1)[kRopeMaxPairs], float (&o2)[kRopeMaxPairs]) {
  const bf16* const s1[1] = {src};
  const float* const w1[1] = {nw};
  float r1[1][kRopeMaxPairs], r2[1][kRopeMaxPairs];
  norm_rope_heads<1>(s1, w1, 1, hd, eps, rope, pos, lane, r1, r2);
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    o1[c] = r1[0][c];
    o2[c] = r2[0][c];
  }
}

}  // namespace grpst::cuda
