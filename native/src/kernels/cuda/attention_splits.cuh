// The split-K merge of the paged decode attention kernels (attention_decode.cu, the register-
// streaming kernel, attention_decode_staged.cu, the fused one, and attention_decode_mma.cu, the
// tensor-core one). Each warp of a block has
// left, per query head j of its KV head's group, its running max m (log2 units), its sum l and
// its unnormalized output acc[HD] in shared memory; merge_warps_and_store combines the warps and
// writes the head's output (one split), or the split's partial output and log-sum-exp (several
// splits), which split_reduce_kernel (attention_split_reduce.cuh) or, in the same launch, the
// last block of the (row, kv head) to finish (merge_splits_if_last) combines across splits.
#pragma once
#include <cooperative_groups.h>

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "device_utils.cuh"
#include "env_switch.h"

namespace grpst::cuda {
namespace {

// 2^(x - m), and 0 when nothing was seen yet (m = -inf), where exp2f would give NaN.
__device__ __forceinline__ float exp2_or_zero(float x, float m) { return m == -INFINITY ? 0.f : exp2f(x - m); }

// The most splits of one (row, kv head) merged in a thread-block cluster (merge_splits_in_cluster;
// past 8, the portable size, with the kernel's non-portable opt-in).
constexpr int kMaxClusterSplits = 16;

// Whether a launch of `kernel` with `splits` splits merges them in a cluster: more than one, at
// most max_splits (and kMaxClusterSplits), the kernel's switch `env` not 0, and a cluster of that
// size placeable on this GPU (cluster_fits); otherwise the last block to finish merges them.
inline bool merge_in_cluster(const void* kernel, int splits, const char* env, int max_splits, int threads, size_t smem) {
  return splits > 1 && splits <= std::min(max_splits, kMaxClusterSplits) && env_int(env, 1) != 0 &&
         cluster_fits(kernel, splits, threads, smem);
}

// The empty running softmax state of G query heads: no max yet (-inf), zero sum and output.
template <int G>
__device__ __forceinline__ void reset_softmax_state(float (&m)[G], float (&l)[G], float (&acc)[G][8]) {
#pragma unroll
  for (int j = 0; j < G; ++j) {
    m[j] = -INFINITY;
    l[j] = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[j][e] = 0.f;
  }
}

// Merges the running softmax states (max m, sum l, output acc) that the lanes of one token slot
// hold with those of the other slots of the warp: after it, lanes sub, sub + LPT, ... all hold
// the warp's state. m, l: [G]; acc: [G][8] (this lane's 8 elements of the head dim).
template <int G, int LPT>
__device__ __forceinline__ void merge_lane_slots(float (&m)[G], float (&l)[G], float (&acc)[G][8]) {
#pragma unroll
  for (int o = LPT; o < 32; o <<= 1) {
#pragma unroll
    for (int j = 0; j < G; ++j) {
      const float mo = __shfl_xor_sync(0xffffffffu, m[j], o);
      const float lo = __shfl_xor_sync(0xffffffffu, l[j], o);
      const float mn = fmaxf(m[j], mo);
      const float a = exp2_or_zero(m[j], mn), b = exp2_or_zero(mo, mn);
      l[j] = l[j] * a + lo * b;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float ao = __shfl_xor_sync(0xffffffffu, acc[j][e], o);
        acc[j][e] = acc[j][e] * a + ao * b;
      }
      m[j] = mn;
    }
  }
}

// Shared memory holds, per warp, m and l: [Warps][Rows] and acc: [Warps][Rows][HD], of which the
// first `group` rows are heads first_head .. first_head + group - 1 of row r. out: [R, nh, HD];
// ws_o: [R, nh, splits, HD]; ws_lse: [R, nh, splits]; or, with part_o, the split's partial in
// shared memory (merge_splits_in_cluster): part_o [group, HD], part_lse [group].
template <int HD, int Warps, int Rows>
__device__ __forceinline__ void merge_warps_and_store(const float* sm_m, const float* sm_l, const float* sm_acc,
                                                      int group, int first_head, int r, int nh, int s, int num_splits,
                                                      bf16* out, float* ws_o, float* ws_lse,
                                                      float* part_o = nullptr, float* part_lse = nullptr) {
  for (int idx = threadIdx.x; idx < group * HD; idx += Warps * 32) {
    const int j = idx / HD, d = idx % HD;
    float mm = -INFINITY;
#pragma unroll
    for (int w = 0; w < Warps; ++w) mm = fmaxf(mm, sm_m[w * Rows + j]);
    float L = 0.f, A = 0.f;
#pragma unroll
    for (int w = 0; w < Warps; ++w) {
      const float e = exp2_or_zero(sm_m[w * Rows + j], mm);
      L = fmaf(sm_l[w * Rows + j], e, L);
      A = fmaf(sm_acc[(w * Rows + j) * HD + d], e, A);
    }
    const int h = first_head + j;
    const float o = L > 0.f ? A / L : 0.f;
    if (num_splits == 1) {
      out[(static_cast<size_t>(r) * nh + h) * HD + d] = __float2bfloat16_rn(o);
    } else if (part_o) {  // this split's partial into shared memory: [group][HD], lse [group]
      part_o[j * HD + d] = o;
      if (d == 0) part_lse[j] = L > 0.f ? mm + log2f(L) : -INFINITY;
    } else {
      const size_t part = (static_cast<size_t>(r) * nh + h) * num_splits + s;
      ws_o[part * HD + d] = o;
      if (d == 0) ws_lse[part] = L > 0.f ? mm + log2f(L) : -INFINITY;
    }
  }
}

// After merge_warps_and_store with several splits: the last split block of (row r, kv head kvh)
// to finish merges all partials of its `group` heads (weights 2^(lse_s - max lse)) and puts its
// counter back to zero for the next launch. counters: [R, nkv], zero between launches; sm_last:
// a __shared__ int of the block. Every thread of the block must call it.
template <int HD, int Threads>
__device__ __forceinline__ void merge_splits_if_last(int* counters, int r, int nkv, int kvh, int group, int nh,
                                                     int num_splits, const float* ws_o, const float* ws_lse,
                                                     bf16* out, int* sm_last) {
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) *sm_last = atomicAdd(counters + r * nkv + kvh, 1) == num_splits - 1;
  __syncthreads();
  if (!*sm_last) return;
  __threadfence();
  if (threadIdx.x == 0) counters[r * nkv + kvh] = 0;
  for (int idx = threadIdx.x; idx < group * HD; idx += Threads) {
    const int j = idx / HD, d = idx % HD;
    const size_t rh = static_cast<size_t>(r) * nh + kvh * group + j;
    const float* lse = ws_lse + rh * num_splits;
    float mx = -INFINITY;
    for (int q = 0; q < num_splits; ++q) mx = fmaxf(mx, __ldcg(lse + q));
    float num = 0.f, den = 0.f;
    for (int q = 0; q < num_splits; ++q) {
      const float w = exp2_or_zero(__ldcg(lse + q), mx);
      num = fmaf(w, __ldcg(ws_o + (rh * num_splits + q) * HD + d), num);
      den += w;
    }
    out[rh * HD + d] = __float2bfloat16_rn(den > 0.f ? num / den : 0.f);
  }
}

// The splits of one (row, kv head) launched as one thread-block cluster merge through distributed
// shared memory: each block's partial output and log-sum-exp sit in its own shared memory, and
// after a cluster barrier each block combines a 1/S share of the group's outputs from all S of
// them (weights 2^(lse_s - max lse), splits in order: the bits of merge_splits_if_last), where the
// last-block merge needs a fence, an atomic and a round trip through the L2 first. The second
// barrier keeps every block's shared memory alive until the others have read it.
template <int HD, int Threads>
__device__ __forceinline__ void merge_splits_in_cluster(float* part_o /*[group][HD]*/, float* part_lse /*[group]*/,
                                                        int group, int first_head, int r, int nh, int num_splits,
                                                        bf16* __restrict__ out /*[R,nh*HD]*/) {
  cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
  cluster.sync();
  const int rank = static_cast<int>(cluster.block_rank());
  for (int idx = rank * Threads + static_cast<int>(threadIdx.x); idx < group * HD; idx += num_splits * Threads) {
    const int j = idx / HD, d = idx % HD;
    float mx = -INFINITY;
    for (int q = 0; q < num_splits; ++q) mx = fmaxf(mx, cluster.map_shared_rank(part_lse, q)[j]);
    float num = 0.f, den = 0.f;
    for (int q = 0; q < num_splits; ++q) {
      const float w = exp2_or_zero(cluster.map_shared_rank(part_lse, q)[j], mx);
      num = fmaf(w, cluster.map_shared_rank(part_o, q)[j * HD + d], num);
      den += w;
    }
    out[(static_cast<size_t>(r) * nh + first_head + j) * HD + d] = __float2bfloat16_rn(den > 0.f ? num / den : 0.f);
  }
  cluster.sync();
}

}  // namespace
}  // namespace grpst::cuda
