// The attention phase of the persistent decode kernel (one sequence): work items are (kv head,
// split of the context); a block takes items blockIdx.x, blockIdx.x + gridDim.x, ... Per item:
// the group's query heads and the kv head's k / v are staged from the QKV output (L2 loads: other
// blocks wrote it), q_norm / k_norm + RoPE as norm_rope_head rounds them, the split that holds the
// newest position writes its K / V to the cache, then each warp runs an online softmax
// over every 8th key of the split (lane = head_dim / 32 consecutive elements, one dot-product
// reduction per key and query head), the warps are merged in a fixed order, and the splits by
// the last block of each kv head to finish (a counter that it resets): deterministic sums.
#pragma once
#include "decode_persistent.cuh"
#include "norm_rope.cuh"

namespace grpst::cuda {
namespace persistent {

// P consecutive bf16 (P = 1, 2, 4, 8) through the L2, as floats.
template <int P>
__device__ __forceinline__ void load_lane(const bf16* p, float (&f)[P]) {
  if constexpr (P == 8) {
    unpack8(ld_cg16(p), f);
  } else if constexpr (P == 4) {
    const uint2 v = __ldcg(reinterpret_cast<const uint2*>(p));
    f[0] = bf16_lo(v.x); f[1] = bf16_hi(v.x); f[2] = bf16_lo(v.y); f[3] = bf16_hi(v.y);
  } else if constexpr (P == 2) {
    const unsigned v = __ldcg(reinterpret_cast<const unsigned*>(p));
    f[0] = bf16_lo(v); f[1] = bf16_hi(v);
  } else {
    f[0] = bf16_bits_to_f32(__ldcg(reinterpret_cast<const unsigned short*>(p)));
  }
}

// Bytes of the attention scratch for G query heads per kv head of head_dim hd.
__host__ __device__ inline int attention_scratch_bytes(int G, int hd) {
  const int stage = ((G + 2) * hd * 2 + 15) / 16 * 16;
  return stage + (G * hd + kWarps * G * hd + 2 * kWarps * G) * 4 + 16;
}

template <int P>
__device__ void attention_item(const PersistentDecode& p, const PersistentLayer& L, int item, int pos, int slot,
                               const int32_t* bt, uint8_t* scratch) {
  constexpr int hd = P * 32, U = P >= 8 ? 2 : 4;  // keys in flight per warp
  const int ctid = threadIdx.x, cw = ctid >> 5, lane = ctid & 31;
  const int nkv = p.kv_heads, G = p.heads / nkv, bs = p.geo.block_size;
  const int kvh = item % nkv, split = item / nkv;
  const int ctx = pos + 1, chunk = (ctx + p.splits - 1) / p.splits;
  const int s0 = split * chunk, s1 = min(ctx, s0 + chunk);
  const bool writes_kv = s0 <= pos && pos < s1 && slot >= 0;

  bf16* stage = reinterpret_cast<bf16*>(scratch);  // [G + 2][hd]: the group's q heads, k, v
  float* qs = reinterpret_cast<float*>(scratch + ((G + 2) * hd * 2 + 15) / 16 * 16);  // [G][hd]
  float* wo = qs + G * hd;                  // [warps][G][hd] each warp's output, rescaled
  float* wm = wo + kWarps * G * hd;  // [warps][G] running max (log2 units)
  float* wl = wm + kWarps * G;       // [warps][G] softmax denominators
  int* last_flag = reinterpret_cast<int*>(wl + kWarps * G);

  for (int i = ctid; i < (G + 2) * hd / 8; i += kThreads) {
    const int e = i * 8, head = e / hd, d = e % hd;
    const int src_head = head < G ? kvh * G + head : head == G ? p.heads + kvh : p.heads + nkv + kvh;
    *reinterpret_cast<uint4*>(stage + e) = ld_cg16(p.qkv + static_cast<size_t>(src_head) * hd + d);
  }
  __syncthreads();
  const size_t cache_row = writes_kv ? ((static_cast<size_t>(slot / bs) * nkv + kvh) * bs + slot % bs) * hd : 0;
  for (int j = cw; j < G + 2; j += kWarps) {
    if (j == G + 1) {  // v: straight into the cache
      if (writes_kv)
        for (int d = lane; d < hd; d += 32) reinterpret_cast<bf16*>(L.kv.v)[cache_row + d] = stage[(G + 1) * hd + d];
      continue;
    }
    if (j == G && !writes_kv) continue;
    float o1[kRopeMaxPairs], o2[kRopeMaxPairs];
    norm_rope_head(stage + j * hd, hd, j < G ? L.q_norm : L.k_norm, p.eps, p.rope, static_cast<float>(pos), lane, o1, o2);
#pragma unroll
    for (int c = 0; c < kRopeMaxPairs; ++c) {
      const int i = lane + 32 * c;
      if (i >= hd / 2) continue;
      if (j < G) {
        qs[j * hd + i] = o1[c];
        qs[j * hd + i + hd / 2] = o2[c];
      } else {
        bf16* kd = reinterpret_cast<bf16*>(L.kv.k) + cache_row;
        kd[i] = __float2bfloat16_rn(o1[c]);
        kd[i + hd / 2] = __float2bfloat16_rn(o2[c]);
      }
    }
  }
  __threadfence();  // the newest K / V before this block reads them back through the L2
  __syncthreads();

  const float sl2 = p.softmax_scale * kLog2e;
  float q[kMaxGroup][P], o[kMaxGroup][P], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < P; ++e) {
      q[g][e] = g < G ? qs[g * hd + lane * P + e] : 0.f;
      o[g][e] = 0.f;
    }
  }
  const bf16* kb = reinterpret_cast<const bf16*>(L.kv.k);
  const bf16* vb = reinterpret_cast<const bf16*>(L.kv.v);
  for (int t = s0 + cw; t < s1; t += kWarps * U) {
    float kf[U][P], vf[U][P];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int tok = t + u * kWarps;
      if (tok < s1) {
        const size_t row = ((static_cast<size_t>(bt[tok / bs]) * nkv + kvh) * bs + tok % bs) * hd + lane * P;
        load_lane<P>(kb + row, kf[u]);
        load_lane<P>(vb + row, vf[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      if (t + u * kWarps >= s1) continue;  // warp-uniform
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g >= G) continue;
        float dot = 0.f;
#pragma unroll
        for (int e = 0; e < P; ++e) dot = fmaf(q[g][e], kf[u][e], dot);
        const float s = warp_sum(dot) * sl2;
        const float mn = fmaxf(m[g], s);
        const float corr = exp2f(m[g] - mn), pr = exp2f(s - mn);  // m = -inf: corr = 0
        l[g] = l[g] * corr + pr;
#pragma unroll
        for (int e = 0; e < P; ++e) o[g][e] = fmaf(pr, vf[u][e], o[g][e] * corr);
        m[g] = mn;
      }
    }
  }

  // Warps merged in order: each writes its max and denominator, then its output rescaled to the
  // block's max; thread i sums output element i over the warps.
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g)
    if (g < G && lane == 0) wm[cw * G + g] = m[g], wl[cw * G + g] = l[g];
  __syncthreads();
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= G) continue;
    float mx = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, wm[w * G + g]);
    const float f = m[g] == -INFINITY ? 0.f : exp2f(m[g] - mx);
#pragma unroll
    for (int e = 0; e < P; ++e) wo[(cw * G + g) * hd + lane * P + e] = o[g][e] * f;
  }
  __syncthreads();
  const int stride = hd + 2;  // partials: [nkv][splits][G][hd + 2] = output, max, denominator
  float* part = p.partials + (static_cast<size_t>(kvh) * p.splits + split) * G * stride;
  for (int i = ctid; i < G * hd; i += kThreads) {
    const int g = i / hd, d = i % hd;
    float mx = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, wm[w * G + g]);
    float acc = 0.f, den = 0.f;
    for (int w = 0; w < kWarps; ++w) {
      acc += wo[(w * G + g) * hd + d];
      const float mw = wm[w * G + g];
      den += mw == -INFINITY ? 0.f : wl[w * G + g] * exp2f(mw - mx);
    }
    if (p.splits == 1) {
      p.attn[static_cast<size_t>(kvh * G + g) * hd + d] = __float2bfloat16_rn(acc / den);
    } else {
      part[g * stride + d] = acc;
      if (d == 0) part[g * stride + hd] = mx, part[g * stride + hd + 1] = den;
    }
  }
  if (p.splits > 1) {
    unsigned* counter = p.sync + 2 + kvh;
    __threadfence();
    __syncthreads();
    if (ctid == 0) {
      const bool last = atomicAdd(counter, 1u) == static_cast<unsigned>(p.splits - 1);
      if (last) atomicExch(counter, 0u);
      *last_flag = last;
    }
    __syncthreads();
    if (*last_flag) {
      // Every split's max and denominator into shared memory in one round of loads (wo is free
      // again: splits <= 128 <= 4 hd), then each output element's splits with the loads unrolled.
      __threadfence();
      const float* all = p.partials + static_cast<size_t>(kvh) * p.splits * G * stride;
      float* ms = wo;                  // [splits][G]
      float* ls = wo + p.splits * G;   // [splits][G]
      for (int i = ctid; i < p.splits * G; i += kThreads) {
        ms[i] = ld_cg_f32(all + i * stride + hd);
        ls[i] = ld_cg_f32(all + i * stride + hd + 1);
      }
      __syncthreads();
      for (int i = ctid; i < G * hd; i += kThreads) {
        const int g = i / hd, d = i % hd;
        float mx = -INFINITY;
        for (int s = 0; s < p.splits; ++s) mx = fmaxf(mx, ms[s * G + g]);
        float acc = 0.f, den = 0.f;
#pragma unroll 8
        for (int s = 0; s < p.splits; ++s) {
          const float ms_ = ms[s * G + g];
          const float f = ms_ == -INFINITY ? 0.f : exp2f(ms_ - mx);
          acc = fmaf(ld_cg_f32(all + (s * G + g) * stride + d), f, acc);
          den = fmaf(ls[s * G + g], f, den);
        }
        p.attn[static_cast<size_t>(kvh * G + g) * hd + d] = __float2bfloat16_rn(acc / den);
      }
    }
  }
  __syncthreads();  // the scratch is reused by the next item
}

// The keys and values this block's attention items will read, brought into the L2 (kept there)
// while the QKV product runs: under the weight stream a DRAM round trip takes microseconds, and
// the softmax loop would wait for one per batch of keys. The newest position is written later.
template <int P>
__device__ void prefetch_attention_kv(const PersistentDecode& p, const PersistentLayer& L) {
  constexpr int hd = P * 32, kLines = hd * 2 >= 128 ? hd * 2 / 128 : 1;  // 128-byte lines per key row
  const int pos = p.positions[0], ctx = pos + 1, chunk = (ctx + p.splits - 1) / p.splits;
  const int nkv = p.kv_heads, bs = p.geo.block_size;
  const int32_t* bt = p.tables.block_tables + static_cast<size_t>(p.token_seq[0]) * p.tables.max_blocks_per_seq;
  for (int item = blockIdx.x; item < nkv * p.splits; item += gridDim.x) {
    const int kvh = item % nkv, s0 = item / nkv * chunk, s1 = min(pos, s0 + chunk);  // not the newest
    for (int i = threadIdx.x; i < (s1 - s0) * 2 * kLines; i += kThreads) {
      const int tok = s0 + i / (2 * kLines), which = i / kLines % 2, line = i % kLines;
      const size_t row = ((static_cast<size_t>(bt[tok / bs]) * nkv + kvh) * bs + tok % bs) * hd;
      prefetch_l2_keep(reinterpret_cast<const char*>(which ? L.kv.v : L.kv.k) + row * 2 + line * 128);
    }
  }
}

template <int P>
__device__ void attention_phase(const PersistentDecode& p, const PersistentLayer& L, uint8_t* scratch) {
  const int pos = p.positions[0], slot = p.slots[0];
  const int32_t* bt = p.tables.block_tables + static_cast<size_t>(p.token_seq[0]) * p.tables.max_blocks_per_seq;
  for (int item = blockIdx.x; item < p.kv_heads * p.splits; item += gridDim.x)
    attention_item<P>(p, L, item, pos, slot, bt, scratch);
}

}  // namespace persistent
}  // namespace grpst::cuda
