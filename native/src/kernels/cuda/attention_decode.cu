// Paged attention for one query row per entry (decode, and the prefill fallback): GQA (each
// block serves the G query heads of one kv head, so K/V are read once per group) and split-K
// along the sequence with a log-sum-exp reduce for long contexts at small batch. Geometries
// with 16-byte K/V rows go to the staged kernel (attention_decode_staged.cu); this file keeps
// the register-streaming kernel for the others (fp8 / int8 caches with head_dim 24).
//
// Inside a block, a token is handled by LPT lanes (8 elements each); a warp holds 32/LPT such
// token slots, each running its own online softmax; slots, then warps, are merged at the end.
#include <algorithm>
#include <cstdlib>

#include "attention_decode_staged.cuh"
#include "attention_split_reduce.cuh"
#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;

__host__ __device__ constexpr int lanes_per_token(int hd) {
  return hd / 8 <= 2 ? 2 : hd / 8 <= 4 ? 4 : hd / 8 <= 8 ? 8 : hd / 8 <= 16 ? 16 : 32;
}


template <int HD, class Kv, int G>
__global__ void __launch_bounds__(kWarps * 32) attention_decode_kernel(
    const bf16* __restrict__ q /*[R,nh,HD]*/, const int32_t* __restrict__ ctx_lens /*[R]*/,
    int ctx_add, const int32_t* __restrict__ seq_of_row, PagedTables tables, int nh, int nkv,
    int block_size, KvLayer kv, float scale_log2, int num_splits,
    float* __restrict__ ws_o /*[R,nh,S,HD]*/, float* __restrict__ ws_lse /*[R,nh,S]*/,
    bf16* __restrict__ out /*[R,nh*HD]*/) {
  constexpr int LPT = lanes_per_token(HD);
  constexpr int SPW = 32 / LPT;  // token slots per warp
  constexpr int NSLOTS = kWarps * SPW;
  __shared__ float sm_m[kWarps][G], sm_l[kWarps][G];
  __shared__ float sm_acc[kWarps][G][HD];

  griddep_wait();
  griddep_launch_dependents();
  const int g = blockIdx.x, r = blockIdx.y, s = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int sub = lane % LPT, slot_in_warp = lane / LPT;
  const bool active = sub * 8 < HD;
  const int group = nh / nkv;
  const int ctx = ctx_lens[r] + ctx_add;
  const int seq = seq_of_row ? seq_of_row[r] : r;
  const int chunk = (ctx + num_splits - 1) / num_splits;
  const int t0 = s * chunk, t1 = min(ctx, t0 + chunk);

  float qf[G][8];
#pragma unroll
  for (int j = 0; j < G; ++j) {
#pragma unroll
    for (int e = 0; e < 8; ++e) qf[j][e] = 0.f;
    if (j < group && active) {
      const int h = g * group + j;
      KvBf16::load8(q + (static_cast<size_t>(r) * nh + h) * HD + sub * 8, 1.f, qf[j]);
#pragma unroll
      for (int e = 0; e < 8; ++e) qf[j][e] *= scale_log2;
    }
  }
  float m[G], l[G], acc[G][8];
  reset_softmax_state(m, l, acc);

  const int32_t* bt = tables.block_tables + static_cast<size_t>(seq) * tables.max_blocks_per_seq;
  const typename Kv::T* kbase = reinterpret_cast<const typename Kv::T*>(kv.k);
  const typename Kv::T* vbase = reinterpret_cast<const typename Kv::T*>(kv.v);
  constexpr int U = 2;  // tokens per slot per iteration: more loads in flight
  for (int tb = t0 + warp * SPW; tb < t1; tb += NSLOTS * U) {
    float kf[U][8], vf[U][8];
    bool valid[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int t = tb + u * NSLOTS + slot_in_warp;
      valid[u] = t < t1;
#pragma unroll
      for (int e = 0; e < 8; ++e) kf[u][e] = vf[u][e] = 0.f;
      if (valid[u] && active) {
        const int page = bt[t / block_size];
        const size_t off = ((static_cast<size_t>(page) * nkv + g) * block_size + t % block_size) * HD + sub * 8;
        Kv::load8(kbase + off, kv.k_scale, kf[u]);
        Kv::load8(vbase + off, kv.v_scale, vf[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int j = 0; j < G; ++j) {
        float sc = 0.f;
#pragma unroll
        for (int e = 0; e < 8; ++e) sc = fmaf(qf[j][e], kf[u][e], sc);
#pragma unroll
        for (int o = LPT / 2; o >= 1; o >>= 1) sc += __shfl_xor_sync(0xffffffffu, sc, o);
        if (valid[u]) {
          const float mn = fmaxf(m[j], sc);
          const float corr = exp2_or_zero(m[j], mn);
          const float p = exp2f(sc - mn);
          l[j] = l[j] * corr + p;
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[j][e] = fmaf(p, vf[u][e], acc[j][e] * corr);
          m[j] = mn;
        }
      }
    }
  }

  // Merge the slots of this warp (lanes sub, sub+LPT, ...), then the warps through shared memory.
  merge_lane_slots<G, LPT>(m, l, acc);
  if (slot_in_warp == 0) {
#pragma unroll
    for (int j = 0; j < G; ++j) {
      if (active)
#pragma unroll
        for (int e = 0; e < 8; ++e)
          if (sub * 8 + e < HD) sm_acc[warp][j][sub * 8 + e] = acc[j][e];
      if (lane == 0) {
        sm_m[warp][j] = m[j];
        sm_l[warp][j] = l[j];
      }
    }
  }
  __syncthreads();
  merge_warps_and_store<HD, kWarps, G>(&sm_m[0][0], &sm_l[0][0], &sm_acc[0][0][0], group, g * group, r, nh, s, num_splits, out, ws_o, ws_lse);
}


template <int HD, class Kv>
Status dispatch_group(int group, dim3 grid, const Exec& ex, const bf16* q, const int32_t* ctx,
                      int ctx_add, const int32_t* seq_of_row, PagedTables tables, int nh, int nkv,
                      int bs, KvLayer kv, float scale_log2, int splits, float* ws_o, float* ws_lse,
                      bf16* out) {
  const dim3 block(kWarps * 32);
#define GRPST_DECODE_LAUNCH(G)                                                                  \
  return launch("attention_decode", attention_decode_kernel<HD, Kv, G>, grid, block, 0, ex, q, \
                ctx, ctx_add, seq_of_row, tables, nh, nkv, bs, kv, scale_log2, splits, ws_o,   \
                ws_lse, out)
  if (group <= 2) GRPST_DECODE_LAUNCH(2);
  if (group <= 4) GRPST_DECODE_LAUNCH(4);
  if (group <= 8) GRPST_DECODE_LAUNCH(8);
#undef GRPST_DECODE_LAUNCH
  return invalid("attention_decode", "at most 8 query heads per kv head are supported");
}

template <class Kv>
Status dispatch_hd(int hd, int group, dim3 grid, const Exec& ex, const bf16* q, const int32_t* ctx,
                   int ctx_add, const int32_t* seq_of_row, PagedTables tables, int nh, int nkv,
                   int bs, KvLayer kv, float scale_log2, int splits, float* ws_o, float* ws_lse,
                   bf16* out) {
  switch (hd) {
#define GRPST_HD_CASE(HD)                                                                       \
  case HD:                                                                                      \
    return dispatch_group<HD, Kv>(group, grid, ex, q, ctx, ctx_add, seq_of_row, tables, nh, nkv, \
                                  bs, kv, scale_log2, splits, ws_o, ws_lse, out);
    GRPST_HD_CASE(16)
    GRPST_HD_CASE(24)
    GRPST_HD_CASE(32)
    GRPST_HD_CASE(64)
    GRPST_HD_CASE(128)
#undef GRPST_HD_CASE
  }
  return invalid("attention_decode", "head_dim must be 16, 24, 32, 64 or 128");
}

}  // namespace

size_t attention_decode_workspace(int R, int nh, int head_dim, int num_splits) {
  return num_splits <= 1 ? 0 : kDecodeCounters + static_cast<size_t>(R) * nh * num_splits * (head_dim + 1);
}

int attention_decode_splits(int R, int nkv, int max_ctx, int num_sms, int blocks_per_sm) {
  const int blocks = std::max(1, R * nkv);
  int splits = std::max(1, (std::max(1, blocks_per_sm) * num_sms + blocks - 1) / blocks);
  splits = std::min(splits, std::max(1, max_ctx / 32));  // at least ~32 keys per split
  return std::min(splits, 64);
}

Status attention_decode(const bf16* q, const int32_t* ctx, int ctx_add, const int32_t* seq_of_row,
                        PagedTables tables, int R, int nh, KvGeometry geo, KvLayer kv,
                        float softmax_scale, int num_splits, float* workspace, bf16* out,
                        const Exec& ex, bool staged) {
  if (nh % geo.nkv != 0) return invalid("attention_decode", "num_heads must be a multiple of num_kv_heads");
  if (num_splits < 1) num_splits = 1;
  if (num_splits > 1 && !workspace) return invalid("attention_decode", "split-K needs a workspace");
  const int group = nh / geo.nkv;
  const SplitWorkspace ws = split_workspace(workspace, R, nh, num_splits, geo.head_dim);
  float* ws_o = ws.o;
  float* ws_lse = ws.lse;
  const bool legacy = env_int("GRPST_CUDA_LEGACY_DECODE", 0) == 1;  // benches compare the two kernels
  if (staged && !legacy && attention_decode_staged_supported(geo, nh, R, num_splits)) {
    DecodeArgs a;
    a.q = q;
    a.ctx_lens = ctx;
    a.ctx_add = ctx_add;
    a.seq_of_row = seq_of_row;
    a.tables = tables;
    a.kv = kv;
    a.scale_log2 = softmax_scale * kLog2e;
    a.ws_o = ws.o;
    a.ws_lse = ws.lse;
    a.counters = ws.counters;
    a.out = out;
    return attention_decode_staged(a, geo, R, nh, num_splits, false, ex);
  }
  const dim3 grid(geo.nkv, R, num_splits);
  const float scale_log2 = softmax_scale * kLog2e;
  Status st;
  switch (geo.dtype) {
    case KvDtype::bf16:
      st = dispatch_hd<KvBf16>(geo.head_dim, group, grid, ex, q, ctx, ctx_add, seq_of_row, tables,
                               nh, geo.nkv, geo.block_size, kv, scale_log2, num_splits, ws_o, ws_lse, out);
      break;
    case KvDtype::fp8:
      st = dispatch_hd<KvFp8>(geo.head_dim, group, grid, ex, q, ctx, ctx_add, seq_of_row, tables,
                              nh, geo.nkv, geo.block_size, kv, scale_log2, num_splits, ws_o, ws_lse, out);
      break;
    case KvDtype::int8:
      st = dispatch_hd<KvInt8>(geo.head_dim, group, grid, ex, q, ctx, ctx_add, seq_of_row, tables,
                               nh, geo.nkv, geo.block_size, kv, scale_log2, num_splits, ws_o, ws_lse, out);
      break;
  }
  if (!st.ok() || num_splits == 1) return st;
  return launch("attention_reduce", split_reduce_kernel, dim3(R * nh), dim3(128), 0, ex, ws_o,
                ws_lse, num_splits, geo.head_dim, out);
}

}  // namespace grpst::cuda
