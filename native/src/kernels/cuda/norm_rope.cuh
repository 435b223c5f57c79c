// One head's q_norm / k_norm and rotary embedding (rotate-half form), shared by the q/k-norm +
// RoPE + KV-write kernel and the decode attentions that take the QKV rows. Rounding follows transformers' bf16
// graph step by step: norm -> bf16, cos/sin -> bf16, q*cos and rotate_half(q)*sin -> bf16,
// sum -> bf16.
#pragma once
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {

constexpr int kRopeMaxPairs = 4;  // head_dim <= 256: lane holds pairs i = lane + 32c, c < 4

// What a head's norm + RoPE takes besides its values: its norm weights and the rotation's cos /
// sin, which depend only on the weights and the position. A kernel whose values come from the
// previous kernel builds this before its wait on it (qk_norm_rope_kv), so that after the wait
// only the values' own loads are round trips to the L2 (the weights' loads and the inv_freq
// load before each sincos had been two to three more, after the values' reduction). Per lane:
// w1[h][c] / w2[h][c] are head h's weights at i = lane + 32c and i + hd/2, cs[c] / sn[c] the
// bf16-rounded cos / sin at i (zero where i >= hd/2).
template <int H>
struct NormRopeCoeffs {
  float w1[H][kRopeMaxPairs], w2[H][kRopeMaxPairs];
  bool norm[H];
  float cs[kRopeMaxPairs], sn[kRopeMaxPairs];
};

// nw[h]: head h's norm weight or null (no norm), for h < n.
template <int H>
__device__ __forceinline__ void norm_rope_coeffs(const float* const* nw /*[H]*/, int n, int hd, const Rope& rope,
                                                 float pos, int lane, NormRopeCoeffs<H>& co) {
  const int half = hd / 2;
#pragma unroll
  for (int h = 0; h < H; ++h) {
    co.norm[h] = h < n && nw[h] != nullptr;
#pragma unroll
    for (int c = 0; c < kRopeMaxPairs; ++c) {
      const int i = lane + 32 * c;
      co.w1[h][c] = co.w2[h][c] = 0.f;
      if (co.norm[h] && i < half) {
        co.w1[h][c] = nw[h][i];
        co.w2[h][c] = nw[h][i + half];
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
    co.cs[c] = cs;
    co.sn[c] = sn;
  }
}

// Called by a whole warp for n (<= H) heads of one token at once (the decode attention's
// prologue gives one warp its q head and the k head): every head's loads issue together, their
// reductions interleave. Each head's arithmetic is norm_rope_head's, so the bits are the same.
// src[h]: head h's hd bf16 values; co from norm_rope_coeffs. On return o1[h][c], o2[h][c] hold
// head h's outputs at i = lane + 32c and i + hd/2 for i < hd/2 (bf16-rounded floats).
template <int H>
__device__ __forceinline__ void norm_rope_heads_with(const bf16* const* src /*[H]*/, int n, int hd, float eps,
                                                     const NormRopeCoeffs<H>& co, int lane,
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
    if (!co.norm[h]) continue;
    const float rstd = rsqrtf(ss[h] / static_cast<float>(hd) + eps);
#pragma unroll
    for (int c = 0; c < kRopeMaxPairs; ++c) {
      const int i = lane + 32 * c;
      if (i < half) {
        x1[h][c] = round_bf16(co.w1[h][c] * round_bf16(x1[h][c] * rstd));
        x2[h][c] = round_bf16(co.w2[h][c] * round_bf16(x2[h][c] * rstd));
      }
    }
  }
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    const int i = lane + 32 * c;
#pragma unroll
    for (int h = 0; h < H; ++h) {
      o1[h][c] = o2[h][c] = 0.f;
      if (i >= half) continue;
      o1[h][c] = round_bf16(round_bf16(x1[h][c] * co.cs[c]) + round_bf16(-x2[h][c] * co.sn[c]));
      o2[h][c] = round_bf16(round_bf16(x2[h][c] * co.cs[c]) + round_bf16(x1[h][c] * co.sn[c]));
    }
  }
}

// norm_rope_coeffs then norm_rope_heads_with, where the values are ready (the attention kernels
// that take the QKV rows call it after their wait).
template <int H>
__device__ __forceinline__ void norm_rope_heads(const bf16* const* src /*[H]*/, const float* const* nw /*[H]*/, int n, int hd,
                                                float eps, const Rope& rope, float pos, int lane,
                                                float (&o1)[H][kRopeMaxPairs], float (&o2)[H][kRopeMaxPairs]) {
  NormRopeCoeffs<H> co;
  norm_rope_coeffs<H>(nw, n, hd, rope, pos, lane, co);
  norm_rope_heads_with<H>(src, n, hd, eps, co, lane, o1, o2);
}

// One head (a whole warp), its coefficients ready: norm_rope_heads_with for n = 1.
__device__ __forceinline__ void norm_rope_head_with(const bf16* src, int hd, float eps, const NormRopeCoeffs<1>& co,
                                                    int lane, float (&o1)[kRopeMaxPairs], float (&o2)[kRopeMaxPairs]) {
  const bf16* const s1[1] = {src};
  float r1[1][kRopeMaxPairs], r2[1][kRopeMaxPairs];
  norm_rope_heads_with<1>(s1, 1, hd, eps, co, lane, r1, r2);
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    o1[c] = r1[0][c];
    o2[c] = r2[0][c];
  }
}

// One head (a whole warp): norm_rope_heads for n = 1.
__device__ __forceinline__ void norm_rope_head(const bf16* src, int hd, const float* nw, float eps,
                                               const Rope& rope, float pos, int lane,
                                               float (&o1)[kRopeMaxPairs], float (&o2)[kRopeMaxPairs]) {
  const float* const w1[1] = {nw};
  NormRopeCoeffs<1> co;
  norm_rope_coeffs<1>(w1, 1, hd, rope, pos, lane, co);
  norm_rope_head_with(src, hd, eps, co, lane, o1, o2);
}

}  // namespace grpst::cuda
