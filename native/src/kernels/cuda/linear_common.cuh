// What every small-batch linear kernel fuses around its product:
//  prologue: per-row statistics (RMSNorm rstd, per-token int8 amax) and the element transform
//            a = bf16(w_norm * bf16(x * rstd)), then a = bf16(a * act_scale), HF's rounding;
//  epilogue: store (bf16 / fp32), residual add in place, or SwiGLU over (gate, up) row pairs.
#pragma once
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {

__device__ __forceinline__ void load_f32x8(const float* p, float* f) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
  f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

// The RMSNorm of 8 loaded activations at column k (a multiple of 8) with rstd, HF's rounding.
__device__ __forceinline__ void linear_norm8(const LinearIn& in, int k, float rstd, float* f) {
  if (!in.norm_w) return;
  float w8[8];
  load_f32x8(in.norm_w + k, w8);
#pragma unroll
  for (int e = 0; e < 8; ++e) f[e] = round_bf16(w8[e] * round_bf16(f[e] * rstd));
}

// The prologue's transform of 8 loaded activations at column k (a multiple of 8): RMSNorm with
// rstd, then the activation scale (its 8 values raw bf16 bits, loaded by the caller: one that
// issues every load of several chunks before using any), at HF's rounding points.
__device__ __forceinline__ void linear_transform8_loaded(const LinearIn& in, int k, float rstd, const uint4& scale,
                                                         float* f) {
  linear_norm8(in, k, rstd, f);
  if (in.act_scale) {
    float s8[8];
    unpack8(scale, s8);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = round_bf16(f[e] * s8[e]);
  }
}

// The same, loading the activation scale itself.
__device__ __forceinline__ void linear_transform8(const LinearIn& in, int k, float rstd, float* f) {
  const uint4 scale = in.act_scale ? *reinterpret_cast<const uint4*>(in.act_scale + k) : make_uint4(0, 0, 0, 0);
  linear_transform8_loaded(in, k, rstd, scale, f);
}

// Statistics of rows [0, M) into shared arrays: rstd[m] (1 without a norm) and, when amax is
// requested, amax[m] of the transformed row. Every thread of the block must call it.
__device__ __forceinline__ void linear_row_stats(const LinearIn& in, int M, int K, bool want_amax,
                                                 float* rstd, float* amax) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int m = warp; m < M; m += nwarps) {
    const uint4* row = reinterpret_cast<const uint4*>(in.x + static_cast<size_t>(m) * K);
    float r = 1.f;
    if (in.norm_w) {
      float ss = 0.f;
      for (int j = lane; j < K / 8; j += 32) {
        float f[8];
        unpack8(row[j], f);
#pragma unroll
        for (int e = 0; e < 8; ++e) ss = fmaf(f[e], f[e], ss);
      }
      r = rsqrtf(warp_sum(ss) / static_cast<float>(K) + in.eps);
    }
    if (lane == 0) rstd[m] = r;
    if (want_amax) {
      float mx = 0.f;
      for (int j = lane; j < K / 8; j += 32) {
        float f[8];
        unpack8(row[j], f);
        if (in.norm_w || in.act_scale) {
          // linear_transform8 with r from registers (not rstd in shared memory), both operands
          // loaded before one pass over the 8 values
          float w8[8], s8[8];
          if (in.norm_w) load_f32x8(in.norm_w + j * 8, w8);
          if (in.act_scale) unpack8(reinterpret_cast<const uint4*>(in.act_scale)[j], s8);
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            if (in.norm_w) f[e] = round_bf16(w8[e] * round_bf16(f[e] * r));
            if (in.act_scale) f[e] = round_bf16(f[e] * s8[e]);
          }
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) mx = fmaxf(mx, fabsf(f[e]));
      }
      mx = warp_max(mx);
      if (lane == 0) amax[m] = mx;
    }
  }
}

// Loads 8 activations of row m at column k (a multiple of 8) and applies the prologue.
__device__ __forceinline__ void linear_load8(const LinearIn& in, int K, int m, int k, float rstd,
                                             float* f) {
  unpack8(*reinterpret_cast<const uint4*>(in.x + static_cast<size_t>(m) * K + k), f);
  linear_transform8(in, k, rstd, f);
}

// Rows whose 8-column chunks a prologue loads before using any when it takes several rows at
// once (stage_x, block_rows_reduce, the skinny kernel's staging): four rows' 16-byte loads in
// flight together; 5-8 tokens take two batches (eight at once spilled registers in the streaming
// GEMV, which keeps a weight round in flight meanwhile).
constexpr int kPrologueRows = 4;

// Rows [0, M)'s chunks of 8 activations at column k, kPrologueRows rows' loads issued before any
// is used: use(m, f) gets row m's chunk with the prologue applied, zeros where !has (past K, or
// a thread without a chunk). One round trip to the L2 per four rows, where loading a row's chunk
// and using it before the next row's is one per row.
template <class Use>
__device__ __forceinline__ void load_rows8(const LinearIn& in, int M, int K, int k, bool has, const float* rstd,
                                           Use&& use) {
  for (int m0 = 0; m0 < M; m0 += kPrologueRows) {
    uint4 raw[kPrologueRows];
#pragma unroll
    for (int i = 0; i < kPrologueRows; ++i)
      raw[i] = has && m0 + i < M ? *reinterpret_cast<const uint4*>(in.x + static_cast<size_t>(m0 + i) * K + k)
                                 : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int i = 0; i < kPrologueRows; ++i) {
      if (m0 + i >= M) break;  // M is the same for the whole block
      float f[8];
      unpack8(raw[i], f);
      if (has) linear_transform8(in, k, rstd[m0 + i], f);
      use(m0 + i, f);
    }
  }
}

__device__ __forceinline__ float silu_bf16(float g) {
  return round_bf16(g / (1.f + expf(-g)));
}

// y[m, n] for a finished accumulator value v (dequantization scales already applied).
__device__ __forceinline__ void linear_store(const LinearOut& out, int N, int m, int n, float v) {
  const size_t i = static_cast<size_t>(m) * N + n;
  if (out.epi == Epilogue::residual_add) {
    bf16* y = reinterpret_cast<bf16*>(out.y);
    y[i] = __float2bfloat16_rn(to_f32(y[i]) + round_bf16(v));
  } else if (out.f32_out) {
    reinterpret_cast<float*>(out.y)[i] = v;
  } else {
    reinterpret_cast<bf16*>(out.y)[i] = __float2bfloat16_rn(v);
  }
}

// linear_store's residual add with y[m, n] already loaded (raw bf16 bits): the same bits.
__device__ __forceinline__ void linear_store_residual(const LinearOut& out, int N, int m, int n, float v, uint16_t y_old) {
  const size_t i = static_cast<size_t>(m) * N + n;
  reinterpret_cast<bf16*>(out.y)[i] = __float2bfloat16_rn(bf16_bits_to_f32(y_old) + round_bf16(v));
}

// SwiGLU epilogue: rows 2j and 2j+1 are gate and up; y is [M, N/2].
__device__ __forceinline__ void linear_store_swiglu(const LinearOut& out, int N, int m, int j,
                                                    float gate, float up) {
  const float v = silu_bf16(round_bf16(gate)) * round_bf16(up);
  reinterpret_cast<bf16*>(out.y)[static_cast<size_t>(m) * (N / 2) + j] = __float2bfloat16_rn(v);
}

}  // namespace grpst::cuda
