// Tensor-core paged decode attention for bf16 caches: the G query heads of one kv head (GQA)
// form the rows of an m16n8k16 tile against the K/V of that kv head, so a warp spends two
// shuffle levels per 32 tokens on the softmax instead of a dot-product reduction per token and
// head. Split-K along the sequence for long contexts at small batch, merged in the same launch:
// through distributed shared memory when a (row, kv head)'s splits run as one thread-block
// cluster (up to 16), else by the last block of the (row, kv head) to finish
// (GRPST_CUDA_MMA_SPLIT_REDUCE=1: by a second kernel instead).
//
// Both products take their operands straight from global memory into registers, no shared-memory
// staging: a contraction may visit its index in any order as long as both operands agree.
//   S = Q K^T  (m16n8k16: rows = query heads, cols = 8 tokens, k = head_dim): lane (g, t) loads
//              16-byte chunks t, t+4, ... of token g's key and of head g's query; chunk t + 4i
//              feeds k-steps 2i and 2i+1 (its words 0,1 and 2,3 as the fragment's two halves).
//   O^T = V^T P^T  (rows = head_dim, cols = query heads, k = 16 tokens): P^T's fragment is S's
//              accumulator as it stands (lane (g, t) holds head g at tokens 2t, 2t+1, 2t+8, 2t+9);
//              lane (g, t) loads those four tokens' value chunks g (and g + 8) and pairs their
//              elements with byte permutes: m-tile row g of tile mt is head_dim 8g + mt (+ 64).
// Rows of S past G are padding (zero queries); their results are never stored.
//
// From the QKV projection (QkvIn.qkv set; attention_decode_mma_qkv, off in the forward by
// default): each block first computes its group's q_norm / k_norm + RoPE (norm_rope_heads, the
// bits of qk_norm_rope_kv) into shared memory, the block whose split holds the new token writes
// its K / V to the cache, and the lanes that need the new token take it from shared memory. One
// kernel and one grid boundary per layer fewer than qk_norm_rope_kv then attention; the cached
// keys before the new one still load before the PDL wait.
#include <algorithm>
#include <cstdlib>

#include "attention_decode_staged.cuh"
#include "attention_split_reduce.cuh"
#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"
#include "mma_utils.cuh"
#include "norm_rope.cuh"

namespace grpst::cuda {
namespace {

// The q/k norm + RoPE prologue's inputs; qkv null: the queries come ready in q.
struct QkvIn {
  const bf16* qkv;       // [R,(nh+2*nkv)*hd]
  const int32_t* slots;  // [R]; slot < 0: the new K/V is not written
  const float* q_norm_w;
  const float* k_norm_w;
  float eps;
  Rope rope;
};

constexpr int kWarps = 4;
constexpr int kTile = 16;  // tokens per k-step of the PV product (two S column tiles)
constexpr int kUnroll = 2;  // tiles loaded before any is used: 32 tokens in flight per warp
constexpr int kMaxGroup = 8;
constexpr float kLog2e = 1.4426950408889634f;


__device__ __forceinline__ uint32_t word(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}
// bf16 element e of a and of b, as one bf16x2 (a in the low half).
__device__ __forceinline__ uint32_t pair_elems(const uint4& a, const uint4& b, int e) {
  return __byte_perm(word(a, e >> 1), word(b, e >> 1), (e & 1) ? 0x7632 : 0x5410);
}
// head_dim index of virtual column tile vt (8 columns per tile, 8 elements per 16-byte chunk).
__device__ __forceinline__ int hd_of(int vt, int g) { return 64 * (vt >> 3) + 8 * g + (vt & 7); }

template <int HD>
__global__ void __launch_bounds__(kWarps * 32, 2) attention_decode_mma_kernel(
    const bf16* __restrict__ q /*[R,nh,HD]*/, const int32_t* __restrict__ ctx_lens /*[R]*/, int ctx_add,
    const int32_t* __restrict__ seq_of_row, PagedTables tables, int nh, int nkv, int block_size, KvLayer kv,
    float scale_log2, int num_splits, float* __restrict__ ws_o /*[R,nh,S,HD]*/,
    float* __restrict__ ws_lse /*[R,nh,S]*/, int* __restrict__ counters /*[R,nkv] or null*/,
    bf16* __restrict__ out /*[R,nh*HD]*/, bool prefetch, QkvIn pro, bool cluster_merge) {
  constexpr int KI = HD / 32;       // key chunks per lane per token
  constexpr int KS = HD / 16;       // k-steps of S = Q K^T
  constexpr int VC = HD / 64;       // value chunks per lane per token
  constexpr int MT = HD / 16;       // m-tiles of O^T (16 head_dim rows each)
  __shared__ float sm_m[kWarps][kMaxGroup], sm_l[kWarps][kMaxGroup];
  __shared__ float sm_acc[kWarps][kMaxGroup][HD];
  __shared__ int sm_last;
  __shared__ float sm_part_o[kMaxGroup][HD], sm_part_lse[kMaxGroup];  // cluster merge: this split's partial
  __shared__ __align__(16) bf16 sm_q[kMaxGroup][HD];  // prologue: the group's queries, normed and rotated
  __shared__ __align__(16) bf16 sm_new[2][HD];        // prologue: the new token's key (normed, rotated), value
  const bool from_qkv = pro.qkv != nullptr;

  const int kvh = blockIdx.x, r = blockIdx.y, s = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int group = nh / nkv;
  // Step inputs (lengths, tables) and the cached keys before the newest are not written by the
  // previous kernel: read them before waiting on it (PDL).
  const int ctx = ctx_lens[r] + ctx_add;
  const int seq = seq_of_row ? seq_of_row[r] : r;
  // Splits start on tile boundaries, and tiles never straddle a cache block (block_size % 16 == 0).
  const int chunk = ((ctx + num_splits - 1) / num_splits + kTile - 1) / kTile * kTile;
  const int t0 = s * chunk, t1 = min(ctx, t0 + chunk);
  const int newest = ctx - 1;  // written by the previous kernel (q/k norm + RoPE + KV write)

  const int32_t* bt = tables.block_tables + static_cast<size_t>(seq) * tables.max_blocks_per_seq;
  const bf16* kbase = reinterpret_cast<const bf16*>(kv.k);
  const bf16* vbase = reinterpret_cast<const bf16*>(kv.v);
  const uint4 zero = make_uint4(0, 0, 0, 0);
  uint4 kr[kUnroll][2][KI];  // keys of tokens g and 8 + g, chunks t + 4i
  uint4 vr[kUnroll][4][VC];  // values of tokens 2t, 2t+1, 2t+8, 2t+9, chunks g + 8c
  // Loads the K/V of tokens [tb, tb + 32) below `limit`, and only token `only` when it is >= 0.
  auto load_tiles = [&](int tb, int limit, int only) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int base = tb + u * kTile;
      if (only >= 0 && (only < base || only >= base + kTile)) continue;
      size_t row0 = 0;
      if (base < limit) {
        const int page = bt[base / block_size];
        row0 = (static_cast<size_t>(page) * nkv + kvh) * block_size + base % block_size;
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int tok = g + 8 * h;
        if (only >= 0 && base + tok != only) continue;
        const bool ok = base + tok < limit;
        const bf16* p = kbase + (row0 + tok) * HD + t * 8;
#pragma unroll
        for (int i = 0; i < KI; ++i) kr[u][h][i] = ok ? ldg_stream(p + 32 * i) : zero;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tok = 2 * t + (j & 1) + 8 * (j >> 1);
        if (only >= 0 && base + tok != only) continue;
        const bool ok = base + tok < limit;
        const bf16* p = vbase + (row0 + tok) * HD + g * 8;
#pragma unroll
        for (int c = 0; c < VC; ++c) vr[u][j][c] = ok ? ldg_stream(p + 64 * c) : zero;
      }
    }
  };
  // The new token's key and value from shared memory (prologue): in the tiles [tb, tb + 32).
  auto patch_newest = [&](int tb) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int base = tb + u * kTile;
#pragma unroll
      for (int h = 0; h < 2; ++h)
        if (base + g + 8 * h == newest)
#pragma unroll
          for (int i = 0; i < KI; ++i) kr[u][h][i] = *reinterpret_cast<const uint4*>(&sm_new[0][(t + 4 * i) * 8]);
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (base + 2 * t + (j & 1) + 8 * (j >> 1) == newest)
#pragma unroll
          for (int c = 0; c < VC; ++c) vr[u][j][c] = *reinterpret_cast<const uint4*>(&sm_new[1][g * 8 + 64 * c]);
    }
  };
  const int tb0 = t0 + warp * kTile * kUnroll;
  if (prefetch && tb0 < t1) load_tiles(tb0, min(t1, newest), -1);
  griddep_wait();
  griddep_launch_dependents();
  if (from_qkv) {
    // The group's q heads and the kv head's k (head index `group`): warp w takes heads w, w + 4 and
    // w + 8, all at once (norm_rope_heads); the last warp also copies v as projected.
    const bf16* row = pro.qkv + static_cast<size_t>(r) * (nh + 2 * nkv) * HD;
    constexpr int kMaxPerWarp = (kMaxGroup + 1 + kWarps - 1) / kWarps;
    const bf16* src[kMaxPerWarp];
    const float* nw[kMaxPerWarp];
    bf16* dst[kMaxPerWarp];
    int n = 0;
#pragma unroll
    for (int k = 0; k < kMaxPerWarp; ++k) {
      const int j = warp + kWarps * k;
      src[k] = row;
      nw[k] = nullptr;
      dst[k] = sm_new[0];
      if (j > group) continue;
      const bool is_q = j < group;
      src[k] = row + (is_q ? kvh * group + j : nh + kvh) * HD;
      nw[k] = is_q ? pro.q_norm_w : pro.k_norm_w;
      dst[k] = is_q ? sm_q[j] : sm_new[0];
      n = k + 1;
    }
    if (warp == kWarps - 1)
      for (int d = lane * 8; d < HD; d += 32 * 8)
        *reinterpret_cast<uint4*>(&sm_new[1][d]) = *reinterpret_cast<const uint4*>(row + (nh + nkv + kvh) * HD + d);
    if (n > 0) {
      float o1[kMaxPerWarp][kRopeMaxPairs], o2[kMaxPerWarp][kRopeMaxPairs];
      norm_rope_heads<kMaxPerWarp>(src, nw, n, HD, pro.eps, pro.rope, static_cast<float>(newest), lane, o1, o2);
#pragma unroll
      for (int k = 0; k < kMaxPerWarp; ++k) {
        if (k >= n) continue;
#pragma unroll
        for (int c = 0; c < kRopeMaxPairs; ++c) {
          const int i = lane + 32 * c;
          if (i >= HD / 2) continue;
          dst[k][i] = __float2bfloat16_rn(o1[k][c]);
          dst[k][i + HD / 2] = __float2bfloat16_rn(o2[k][c]);
        }
      }
    }
    __syncthreads();
    // The split that holds the new token writes it to the cache (read by later steps only).
    const int slot = pro.slots[r];
    if (newest >= t0 && newest < t1 && slot >= 0 && threadIdx.x < 2 * HD / 8) {
      const int which = threadIdx.x / (HD / 8), d = threadIdx.x % (HD / 8) * 8;
      bf16* dst = reinterpret_cast<bf16*>(which ? kv.v : kv.k) +
                  ((static_cast<size_t>(slot / block_size) * nkv + kvh) * block_size + slot % block_size) * HD + d;
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(&sm_new[which][d]);
    }
  } else if (prefetch && tb0 < t1 && newest >= tb0 && newest < min(t1, tb0 + kTile * kUnroll)) {
    load_tiles(tb0, t1, newest);
  }

  // Q fragments (a0, a2 per k-step; rows g + 8 are zero): [KS][2] bf16x2.
  uint32_t qa[KS][2];
  {
    const bf16* qrow = from_qkv ? sm_q[g < group ? g : 0] : q + (static_cast<size_t>(r) * nh + kvh * group + g) * HD;
#pragma unroll
    for (int i = 0; i < KI; ++i) {
      const uint4 v = g < group ? *reinterpret_cast<const uint4*>(qrow + (t + 4 * i) * 8) : make_uint4(0, 0, 0, 0);
      qa[2 * i][0] = v.x;
      qa[2 * i][1] = v.y;
      qa[2 * i + 1][0] = v.z;
      qa[2 * i + 1][1] = v.w;
    }
  }
  float m = -INFINITY, l = 0.f;  // head g, shared by the four lanes t
  float acc[MT][4];              // O^T: rows hd_of(mt, g) / hd_of(mt + MT, g), heads 2t, 2t+1
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) acc[mt][0] = acc[mt][1] = acc[mt][2] = acc[mt][3] = 0.f;

  for (int tb = tb0; tb < t1; tb += kWarps * kTile * kUnroll) {
    if (!prefetch || tb != tb0) load_tiles(tb, from_qkv ? min(t1, newest) : t1, -1);
    if (from_qkv && newest >= tb && newest < tb + kTile * kUnroll) patch_newest(tb);

    // S for the 32 tokens: sc[u][h] = head g (c0, c1) at tokens base + 8h + 2t, +1.
    float sc[kUnroll][2][4];
    float mx = -INFINITY;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float* c = sc[u][h];
        c[0] = c[1] = c[2] = c[3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
          const uint32_t a[4] = {qa[ks][0], 0u, qa[ks][1], 0u};
          const uint4& kk = kr[u][h][ks >> 1];
          mma_bf16(c, a, word(kk, (ks & 1) * 2), word(kk, (ks & 1) * 2 + 1));
        }
        const int tok = tb + u * kTile + 8 * h + 2 * t;
        c[0] = tok < t1 ? c[0] * scale_log2 : -INFINITY;
        c[1] = tok + 1 < t1 ? c[1] * scale_log2 : -INFINITY;
        mx = fmaxf(mx, fmaxf(c[0], c[1]));
      }
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mn = fmaxf(m, mx);  // finite: token tb is always valid
    const float corr = exp2_or_zero(m, mn);
    m = mn;
    l *= corr;
    uint32_t pb[kUnroll][2];  // P^T fragments: tokens 2t, 2t+1 and 2t+8, 2t+9 of head g
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float p0 = exp2f(sc[u][h][0] - mn), p1 = exp2f(sc[u][h][1] - mn);
        l += p0 + p1;
        pb[u][h] = pack_bf16x2(p0, p1);
      }
    }
    // Rescale O^T: its columns are heads 2t and 2t + 1, whose corrections lanes 8t and 8t + 4 hold.
    const float ca = __shfl_sync(0xffffffffu, corr, 8 * t), cb = __shfl_sync(0xffffffffu, corr, 8 * t + 4);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      acc[mt][0] *= ca;
      acc[mt][1] *= cb;
      acc[mt][2] *= ca;
      acc[mt][3] *= cb;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        constexpr int kHalf = MT;  // virtual tile of rows g + 8: mt + MT
        const int v0 = mt, v1 = mt + kHalf;
        const int c0 = v0 >> 3, e0 = v0 & 7, c1 = v1 >> 3, e1 = v1 & 7;
        uint32_t a[4];
        a[0] = pair_elems(vr[u][0][c0], vr[u][1][c0], e0);
        a[1] = pair_elems(vr[u][0][c1], vr[u][1][c1], e1);
        a[2] = pair_elems(vr[u][2][c0], vr[u][3][c0], e0);
        a[3] = pair_elems(vr[u][2][c1], vr[u][3][c1], e1);
        mma_bf16(acc[mt], a, pb[u][0], pb[u][1]);
      }
    }
  }

  // The row sum over the four lanes of head g, then the warps merged through shared memory.
  l += __shfl_xor_sync(0xffffffffu, l, 1);
  l += __shfl_xor_sync(0xffffffffu, l, 2);
  if (t == 0) {
    sm_m[warp][g] = m;
    sm_l[warp][g] = l;
  }
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const int d0 = hd_of(mt, g), d1 = hd_of(mt + MT, g);
    sm_acc[warp][2 * t][d0] = acc[mt][0];
    sm_acc[warp][2 * t + 1][d0] = acc[mt][1];
    sm_acc[warp][2 * t][d1] = acc[mt][2];
    sm_acc[warp][2 * t + 1][d1] = acc[mt][3];
  }
  __syncthreads();
  const bool in_cluster = cluster_merge && num_splits > 1;
  merge_warps_and_store<HD, kWarps, kMaxGroup>(&sm_m[0][0], &sm_l[0][0], &sm_acc[0][0][0], group, kvh * group, r, nh, s,
                                               num_splits, out, ws_o, ws_lse, in_cluster ? &sm_part_o[0][0] : nullptr,
                                               sm_part_lse);
  if (in_cluster)
    merge_splits_in_cluster<HD, kWarps * 32>(&sm_part_o[0][0], sm_part_lse, group, kvh * group, r, nh, num_splits, out);
  else if (num_splits > 1 && counters)
    merge_splits_if_last<HD, kWarps * 32>(counters, r, nkv, kvh, group, nh, num_splits, ws_o, ws_lse, out, &sm_last);
}


}  // namespace

bool attention_decode_mma_supported(KvGeometry geo, int nh) {
  return geo.dtype == KvDtype::bf16 && (geo.head_dim == 64 || geo.head_dim == 128) && geo.nkv > 0 &&
         nh % geo.nkv == 0 && nh / geo.nkv <= kMaxGroup && geo.block_size > 0 && geo.block_size % kTile == 0;
}

namespace {

Status launch_decode_mma(const bf16* q, const int32_t* ctx, int ctx_add, const int32_t* seq_of_row, PagedTables tables,
                         int R, int nh, KvGeometry geo, KvLayer kv, float softmax_scale, int num_splits,
                         float* workspace, bf16* out, const QkvIn& pro, const Exec& ex) {
  if (!attention_decode_mma_supported(geo, nh))
    return invalid("attention_decode_mma", "needs a bf16 cache, head_dim 64 or 128, at most 8 query heads per kv head "
                                           "and a block size that is a multiple of 16");
  if (num_splits < 1) num_splits = 1;
  if (num_splits > 1 && !workspace) return invalid("attention_decode_mma", "split-K needs a workspace");
  const SplitWorkspace ws = split_workspace(workspace, R, nh, num_splits, geo.head_dim);
  float* ws_o = ws.o;
  float* ws_lse = ws.lse;
  const dim3 grid(geo.nkv, R, num_splits), block(kWarps * 32);
  const float scale_log2 = softmax_scale * kLog2e;
  auto kernel = geo.head_dim == 128 ? attention_decode_mma_kernel<128> : attention_decode_mma_kernel<64>;
  // Splits merge in this launch unless a second kernel is asked for: in one thread-block cluster
  // per (row, kv head) where they fit (GRPST_CUDA_MMA_CLUSTER_MERGE=0: by the last block;
  // GRPST_CUDA_MMA_CLUSTER_MAX: fewer splits per cluster). One sequence on an H200: 4,096 keys
  // (16 splits) 2% faster in clusters of 16 than merged by the last block, 8,192 keys the same.
  const bool reduce_kernel = num_splits > 1 && env_int("GRPST_CUDA_MMA_SPLIT_REDUCE", 0) == 1;
  const bool cluster_merge =
      !reduce_kernel && merge_in_cluster(reinterpret_cast<const void*>(kernel), num_splits, "GRPST_CUDA_MMA_CLUSTER_MERGE",
                                         env_int("GRPST_CUDA_MMA_CLUSTER_MAX", kMaxClusterSplits), kWarps * 32, 0);
  const bool in_kernel = num_splits > 1 && !reduce_kernel && (cluster_merge || static_cast<long>(R) * geo.nkv <= kDecodeCounters);
  int* counters = in_kernel && !cluster_merge ? ws.counters : nullptr;
  // GRPST_CUDA_MMA_PREFETCH=0: every K/V load after waiting on the previous kernel.
  const bool prefetch = env_int("GRPST_CUDA_MMA_PREFETCH", 1) != 0;
  const Status st = launch_clusters("attention_decode_mma", kernel, grid, block, 0, ex, dim3(1, 1, cluster_merge ? num_splits : 1),
                                    q, ctx, ctx_add, seq_of_row, tables, nh, geo.nkv, geo.block_size, kv, scale_log2,
                                    num_splits, ws_o, ws_lse, counters, out, prefetch, pro, cluster_merge);
  if (!st.ok() || num_splits == 1 || in_kernel) return st;
  return launch("attention_decode_mma_reduce", split_reduce_kernel, dim3(R * nh), dim3(128), 0, ex, ws_o,
                ws_lse, num_splits, geo.head_dim, out);
}

}  // namespace

Status attention_decode_mma(const bf16* q, const int32_t* ctx, int ctx_add, const int32_t* seq_of_row,
                            PagedTables tables, int R, int nh, KvGeometry geo, KvLayer kv, float softmax_scale,
                            int num_splits, float* workspace, bf16* out, const Exec& ex) {
  if (!q) return invalid("attention_decode_mma", "no queries");
  return launch_decode_mma(q, ctx, ctx_add, seq_of_row, tables, R, nh, geo, kv, softmax_scale, num_splits, workspace,
                           out, QkvIn{}, ex);
}

Status attention_decode_mma_qkv(const bf16* qkv, const int32_t* positions, const int32_t* slots,
                                const int32_t* seq_of_row, const float* q_norm_w, const float* k_norm_w, float eps,
                                Rope rope, PagedTables tables, int R, int nh, KvGeometry geo, KvLayer kv,
                                float softmax_scale, int num_splits, float* workspace, bf16* out, const Exec& ex) {
  if (!qkv || !slots) return invalid("attention_decode_mma_qkv", "needs the QKV rows and their cache slots");
  const QkvIn pro{qkv, slots, q_norm_w, k_norm_w, eps, rope};
  return launch_decode_mma(nullptr, positions, 1, seq_of_row, tables, R, nh, geo, kv, softmax_scale, num_splits,
                           workspace, out, pro, ex);
}

}  // namespace grpst::cuda
