// Paged decode attention with K/V staged through shared memory. A block serves the G query
// heads of one kv head for one row and one split (K/V read once per group). Tiles of TK tokens
// are copied with cp.async into a 4-stage ring (three tiles in flight while one is used; the
// cache pages of the tile after next are looked up a tile ahead), so the loads no longer wait
// on each token's softmax. Inside a tile a token is handled by LPT lanes (8 elements each); a
// warp holds 32 / LPT token slots with their own online softmax, merged at the end.
// With splits, the splits of a (row, kv head), up to 16, run as one thread-block cluster and
// merge their partials (o, log-sum-exp) through distributed shared memory; beyond that (or where
// a cluster cannot be placed) each block writes its partial and the last block of the (row, kv
// head) to finish merges them: no separate reduce launch either way.
// Fused form: the block also applies q_norm / k_norm + RoPE to the row's QKV output and writes
// the new token's K/V to the cache; the block that owns the newest token reads it from shared
// memory, and the older tokens' copies start before the wait on the previous kernel.
#include <algorithm>

#include "attention_decode_staged.cuh"
#include "attention_splits.cuh"
#include "device_utils.cuh"
#include "env_switch.h"
#include "mma_utils.cuh"
#include "norm_rope.cuh"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kStages = 4;

__host__ __device__ constexpr int lanes_per_token(int hd) {
  return hd / 8 <= 2 ? 2 : hd / 8 <= 4 ? 4 : hd / 8 <= 8 ? 8 : hd / 8 <= 16 ? 16 : 32;
}


template <int HD, class Kv>
struct Tiling {
  static constexpr int LPT = lanes_per_token(HD);
  static constexpr int SPW = 32 / LPT;           // token slots per warp
  static constexpr int NSLOTS = kWarps * SPW;
  static constexpr int U = 2;                    // tokens per slot per tile
  static constexpr int TK = NSLOTS * U;          // tokens per tile
  static constexpr int RB = HD * Kv::kBytes;     // bytes of one token's K (or V) row
  static constexpr int CR = RB / 16;             // 16-byte chunks per row
  static constexpr int STAGE = 2 * TK * RB;      // K rows, then V rows
  static constexpr int CHUNKS = 2 * TK * CR;
  static constexpr int CPT = (CHUNKS + kThreads - 1) / kThreads;  // chunks per thread
};

// The merge buffer after the ring is done: per warp m, l [G] and acc [G][HD], then the block's
// partial for the cluster merge (o [G][HD], lse [G]).
template <int HD, int G>
__host__ __device__ constexpr size_t merge_floats() {
  return static_cast<size_t>(kWarps) * G * HD + 2 * kWarps * G;
}

template <int HD, class Kv, int G>
constexpr size_t staged_smem() {
  using T = Tiling<HD, Kv>;
  const size_t ring = static_cast<size_t>(kStages) * T::STAGE;
  const size_t merge = (merge_floats<HD, G>() + static_cast<size_t>(G) * HD + G) * 4;
  return ring > merge ? ring : merge;
}

template <int HD, class Kv, int G, bool kFused>
__global__ void __launch_bounds__(kThreads, G <= 4 ? 4 : 2) attention_decode_staged_kernel(DecodeArgs a, int nh, int nkv,
                                                                           int block_size, int num_splits,
                                                                           bool cluster_merge) {
  using T = Tiling<HD, Kv>;
  constexpr int LPT = T::LPT, SPW = T::SPW, NSLOTS = T::NSLOTS, U = T::U, TK = T::TK, RB = T::RB, CR = T::CR;
  constexpr int P = kStages, EB = Kv::kBytes;
  using Raw = typename Kv::Raw;
  using KT = typename Kv::T;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ __align__(16) uint8_t newrow[2][kFused ? RB : 16];
  __shared__ float qsm[kFused ? G : 1][kFused ? HD : 1];
  __shared__ int sm_last;

  const int g = blockIdx.x, r = blockIdx.y, s = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int sub = lane % LPT, slot = warp * SPW + lane / LPT;
  const bool active = sub * 8 < HD;
  const int group = nh / nkv;
  const int ctx = a.ctx_lens[r] + a.ctx_add;
  const int seq = a.seq_of_row ? a.seq_of_row[r] : r;
  const int chunk = (ctx + num_splits - 1) / num_splits;
  const int t0 = s * chunk, t1 = min(ctx, t0 + chunk);
  const int ntile = t1 > t0 ? (t1 - t0 + TK - 1) / TK : 0;
  const int32_t* bt = a.tables.block_tables + static_cast<size_t>(seq) * a.tables.max_blocks_per_seq;
  const uint8_t* kc = static_cast<const uint8_t*>(a.kv.k);
  const uint8_t* vc = static_cast<const uint8_t*>(a.kv.v);

  // This thread's copies: the same (K or V, token, 16-byte column) in every tile.
  int pg[T::CPT];
  auto pages = [&](int tile) {
#pragma unroll
    for (int c = 0; c < T::CPT; ++c) {
      const int id = threadIdx.x + c * kThreads;
      const int t = t0 + tile * TK + (id % (TK * CR)) / CR;
      pg[c] = id < T::CHUNKS && t < t1 ? bt[t / block_size] : 0;
    }
  };
  auto issue = [&](int tile) {
    uint8_t* st = smem + (tile % P) * T::STAGE;
#pragma unroll
    for (int c = 0; c < T::CPT; ++c) {
      const int id = threadIdx.x + c * kThreads;
      if (id < T::CHUNKS) {
        const int kvsel = id / (TK * CR), rem = id % (TK * CR), tt = rem / CR, cc = rem % CR;
        const int t = t0 + tile * TK + tt;
        const bool valid = t < t1;
        const uint8_t* src = (kvsel ? vc : kc) +
            ((static_cast<size_t>(pg[c]) * nkv + g) * block_size + (valid ? t % block_size : 0)) * RB + cc * 16;
        cp_async16(st + kvsel * TK * RB + tt * RB + cc * 16, src, valid);
      }
    }
  };

  if constexpr (!kFused) {
    griddep_wait();  // q and the newest K/V come from the previous kernel
    griddep_launch_dependents();
  }
#pragma unroll
  for (int i = 0; i < P - 1; ++i) {
    if (i < ntile) {
      pages(i);
      issue(i);
    }
    cp_async_commit();
  }
  if (P - 1 < ntile) pages(P - 1);

  if constexpr (kFused) {
    griddep_wait();  // the QKV projection
    griddep_launch_dependents();
    const int heads = nh + 2 * nkv, half = HD / 2;
    const bf16* row = a.q + static_cast<size_t>(r) * heads * HD;
    const float pos = static_cast<float>(a.ctx_lens[r]);
    const bool owner = ctx - 1 >= t0 && ctx - 1 < t1;
    for (int item = warp; item < group + 2; item += kWarps) {
      float o1[kRopeMaxPairs], o2[kRopeMaxPairs];
      if (item < group) {
        norm_rope_head(row + static_cast<size_t>(g * group + item) * HD, HD, a.q_norm_w, a.eps, a.rope, pos, lane, o1, o2);
#pragma unroll
        for (int c = 0; c < kRopeMaxPairs; ++c) {
          const int i = lane + 32 * c;
          if (i < half) {
            qsm[item][i] = o1[c];
            qsm[item][i + half] = o2[c];
          }
        }
        continue;
      }
      if (!owner) continue;
      const int slot_w = a.slots[r];
      const size_t off = slot_w >= 0
          ? ((static_cast<size_t>(slot_w / block_size) * nkv + g) * block_size + slot_w % block_size) * HD : 0;
      if (item == group) {
        norm_rope_head(row + static_cast<size_t>(nh + g) * HD, HD, a.k_norm_w, a.eps, a.rope, pos, lane, o1, o2);
        KT* nk = reinterpret_cast<KT*>(newrow[0]);
        KT* dst = slot_w >= 0 ? static_cast<KT*>(a.kv.k) + off : nullptr;
#pragma unroll
        for (int c = 0; c < kRopeMaxPairs; ++c) {
          const int i = lane + 32 * c;
          if (i >= half) continue;
          const KT b1 = Kv::store1(o1[c], a.kv.k_scale), b2 = Kv::store1(o2[c], a.kv.k_scale);
          nk[i] = b1;
          nk[i + half] = b2;
          if (dst) {
            dst[i] = b1;
            dst[i + half] = b2;
          }
        }
      } else {
        const bf16* src = row + static_cast<size_t>(nh + nkv + g) * HD;
        KT* nv = reinterpret_cast<KT*>(newrow[1]);
        KT* dst = slot_w >= 0 ? static_cast<KT*>(a.kv.v) + off : nullptr;
        for (int d = lane; d < HD; d += 32) {
          const KT b = Kv::store1(to_f32(src[d]), a.kv.v_scale);
          nv[d] = b;
          if (dst) dst[d] = b;
        }
      }
    }
    __syncthreads();
  }

  float qf[G][8];
#pragma unroll
  for (int j = 0; j < G; ++j) {
#pragma unroll
    for (int e = 0; e < 8; ++e) qf[j][e] = 0.f;
    if (j < group && active) {
      if constexpr (kFused) {
#pragma unroll
        for (int e = 0; e < 8; ++e) qf[j][e] = qsm[j][sub * 8 + e];
      } else {
        KvBf16::load8(a.q + (static_cast<size_t>(r) * nh + g * group + j) * HD + sub * 8, 1.f, qf[j]);
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) qf[j][e] *= a.scale_log2;
    }
  }
  float m[G], l[G], acc[G][8];
  reset_softmax_state(m, l, acc);

  for (int i = 0; i < ntile; ++i) {
    cp_async_wait<P - 2>();
    __syncthreads();  // tile i has landed for every thread; the stage of tile i - 1 is free
    if (i + P - 1 < ntile) issue(i + P - 1);
    cp_async_commit();
    if (i + P < ntile) pages(i + P);
    const uint8_t* st = smem + (i % P) * T::STAGE;
    float kf[U][8], vf[U][8];
    bool valid[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int tt = u * NSLOTS + slot;
      const int t = t0 + i * TK + tt;
      valid[u] = t < t1;
      const uint8_t* kr = st + tt * RB;
      const uint8_t* vr = st + TK * RB + tt * RB;
      if constexpr (kFused) {
        // Only a valid slot: the tile of the split before the owner's can reach past its end
        // onto ctx - 1, and that block never wrote newrow.
        if (valid[u] && t == ctx - 1) {
          kr = newrow[0];
          vr = newrow[1];
        }
      }
#pragma unroll
      for (int e = 0; e < 8; ++e) kf[u][e] = vf[u][e] = 0.f;
      if (active) {
        Kv::convert(*reinterpret_cast<const Raw*>(kr + sub * 8 * EB), a.kv.k_scale, kf[u]);
        Kv::convert(*reinterpret_cast<const Raw*>(vr + sub * 8 * EB), a.kv.v_scale, vf[u]);
      }
    }
#pragma unroll
    for (int j = 0; j < G; ++j) {
      float sc[U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        float v = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) v = fmaf(qf[j][e], kf[u][e], v);
#pragma unroll
        for (int o = LPT / 2; o >= 1; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        sc[u] = valid[u] ? v : -INFINITY;
      }
      const float mn = fmaxf(m[j], fmaxf(sc[0], sc[1]));
      if (mn != -INFINITY) {
        const float corr = exp2f(m[j] - mn), p0 = exp2f(sc[0] - mn), p1 = exp2f(sc[1] - mn);
        l[j] = l[j] * corr + p0 + p1;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[j][e] = fmaf(p1, vf[1][e], fmaf(p0, vf[0][e], acc[j][e] * corr));
        m[j] = mn;
      }
    }
  }

  // Merge the slots of this warp (lanes sub, sub + LPT, ...), then the warps through shared memory.
  merge_lane_slots<G, LPT>(m, l, acc);
  cp_async_wait<0>();
  __syncthreads();  // the ring becomes the merge buffer
  float* sm_acc = reinterpret_cast<float*>(smem);  // [kWarps][G][HD]
  float* sm_m = sm_acc + kWarps * G * HD;          // [kWarps][G]
  float* sm_l = sm_m + kWarps * G;
  if (lane < LPT) {
#pragma unroll
    for (int j = 0; j < G; ++j) {
      if (active)
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (sub * 8 + e < HD) sm_acc[(warp * G + j) * HD + sub * 8 + e] = acc[j][e];
      if (lane == 0) {
        sm_m[warp * G + j] = m[j];
        sm_l[warp * G + j] = l[j];
      }
    }
  }
  __syncthreads();
  const bool in_cluster = cluster_merge && num_splits > 1;
  float* part_o = sm_acc + merge_floats<HD, G>();  // [G][HD], then lse [G]: this split's partial
  merge_warps_and_store<HD, kWarps, G>(sm_m, sm_l, sm_acc, group, g * group, r, nh, s, num_splits, a.out, a.ws_o,
                                       a.ws_lse, in_cluster ? part_o : nullptr, part_o + G * HD);
  if (num_splits == 1) return;
  if (in_cluster) {
    merge_splits_in_cluster<HD, kThreads>(part_o, part_o + G * HD, group, g * group, r, nh, num_splits, a.out);
    return;
  }
  merge_splits_if_last<HD, kThreads>(a.counters, r, nkv, g, group, nh, num_splits, a.ws_o, a.ws_lse, a.out, &sm_last);
}

template <int HD, class Kv, int G, bool kFused>
Status launch_staged(const DecodeArgs& a, const KvGeometry& geo, int R, int nh, int splits, const Exec& ex) {
  constexpr size_t smem = staged_smem<HD, Kv, G>();
  auto kernel = attention_decode_staged_kernel<HD, Kv, G, kFused>;
  GRPST_TRY(allow_smem("attention_decode", kernel, smem));
  // The splits of a (row, kv head) as one cluster (grid z), or merged by the last block
  // (GRPST_CUDA_STAGED_CLUSTER_MERGE=0: always).
  const bool cluster = merge_in_cluster(reinterpret_cast<const void*>(kernel), splits, "GRPST_CUDA_STAGED_CLUSTER_MERGE",
                                        kMaxClusterSplits, kThreads, smem);
  return launch_clusters("attention_decode", kernel, dim3(geo.nkv, R, splits), dim3(kThreads), smem, ex,
                         dim3(1, 1, cluster ? splits : 1), a, nh, geo.nkv, geo.block_size, splits, cluster);
}

template <int HD, class Kv, bool kFused>
Status by_group(const DecodeArgs& a, const KvGeometry& geo, int R, int nh, int splits, const Exec& ex) {
  const int group = nh / geo.nkv;
  if (group <= 2) return launch_staged<HD, Kv, 2, kFused>(a, geo, R, nh, splits, ex);
  if (group <= 4) return launch_staged<HD, Kv, 4, kFused>(a, geo, R, nh, splits, ex);
  return launch_staged<HD, Kv, 8, kFused>(a, geo, R, nh, splits, ex);
}

template <class Kv, bool kFused>
Status by_hd(const DecodeArgs& a, const KvGeometry& geo, int R, int nh, int splits, const Exec& ex) {
  switch (geo.head_dim) {
    case 16: return by_group<16, Kv, kFused>(a, geo, R, nh, splits, ex);
    case 32: return by_group<32, Kv, kFused>(a, geo, R, nh, splits, ex);
    case 64: return by_group<64, Kv, kFused>(a, geo, R, nh, splits, ex);
    case 128: return by_group<128, Kv, kFused>(a, geo, R, nh, splits, ex);
    case 24:
      if constexpr (Kv::kBytes == 2) return by_group<24, Kv, kFused>(a, geo, R, nh, splits, ex);
      break;
  }
  return invalid("attention_decode", "no staged kernel for this head_dim");
}

template <bool kFused>
Status by_dtype(const DecodeArgs& a, const KvGeometry& geo, int R, int nh, int splits, const Exec& ex) {
  switch (geo.dtype) {
    case KvDtype::bf16: return by_hd<KvBf16, kFused>(a, geo, R, nh, splits, ex);
    case KvDtype::fp8: return by_hd<KvFp8, kFused>(a, geo, R, nh, splits, ex);
    case KvDtype::int8: return by_hd<KvInt8, kFused>(a, geo, R, nh, splits, ex);
  }
  return invalid("attention_decode", "unknown KV cache dtype");
}

}  // namespace

bool attention_decode_staged_supported(const KvGeometry& geo, int nh, int R, int num_splits) {
  const int hd = geo.head_dim;
  const int eb = geo.dtype == KvDtype::bf16 ? 2 : 1;
  if (hd != 16 && hd != 24 && hd != 32 && hd != 64 && hd != 128) return false;
  if ((hd * eb) % 16 != 0) return false;
  if (geo.nkv <= 0 || nh % geo.nkv != 0 || nh / geo.nkv > 8) return false;
  return num_splits <= 1 || static_cast<long>(R) * geo.nkv <= kDecodeCounters;
}

Status attention_decode_staged(const DecodeArgs& a, const KvGeometry& geo, int R, int nh, int num_splits,
                               bool fused, const Exec& ex) {
  if (R <= 0) return ok_status();
  if (!attention_decode_staged_supported(geo, nh, R, num_splits))
    return invalid("attention_decode", "the staged kernel does not handle this geometry");
  return fused ? by_dtype<true>(a, geo, R, nh, num_splits, ex) : by_dtype<false>(a, geo, R, nh, num_splits, ex);
}

bool attention_decode_fused_supported(KvGeometry geo, int nh, int R, int num_splits) {
  return geo.head_dim % 2 == 0 && attention_decode_staged_supported(geo, nh, R, num_splits);
}

Status attention_decode_fused(const bf16* qkv, const int32_t* positions, const int32_t* slots,
                              const int32_t* seq_of_row, const float* q_norm_w, const float* k_norm_w, float eps,
                              Rope rope, PagedTables tables, int R, int nh, KvGeometry geo, KvLayer kv,
                              float softmax_scale, int num_splits, float* workspace, bf16* out, const Exec& ex) {
  if (num_splits < 1) num_splits = 1;
  if (!attention_decode_fused_supported(geo, nh, R, num_splits))
    return invalid("attention_decode_fused", "unsupported geometry (check attention_decode_fused_supported)");
  if (num_splits > 1 && !workspace) return invalid("attention_decode_fused", "split-K needs a workspace");
  DecodeArgs a;
  a.q = qkv;
  a.ctx_lens = positions;
  a.ctx_add = 1;
  a.seq_of_row = seq_of_row;
  a.tables = tables;
  a.kv = kv;
  a.scale_log2 = softmax_scale * 1.4426950408889634f;
  const SplitWorkspace ws = split_workspace(workspace, R, nh, num_splits, geo.head_dim);
  a.counters = ws.counters;
  a.ws_o = ws.o;
  a.ws_lse = ws.lse;
  a.out = out;
  a.slots = slots;
  a.q_norm_w = q_norm_w;
  a.k_norm_w = k_norm_w;
  a.eps = eps;
  a.rope = rope;
  return attention_decode_staged(a, geo, R, nh, num_splits, true, ex);
}

}  // namespace grpst::cuda
