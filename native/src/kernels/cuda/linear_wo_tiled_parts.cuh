// Parts of the tiled weight-only GEMM shared by its two kernels (linear_wo_tiled.cu: mma.sync;
// linear_wo_wgmma.cuh: Hopper's warpgroup wgmma): the weight decoders, the staging of int4 scales,
// and the end of a block: its sums through shared memory, the K slices added in slice order by
// the last block of each column, and the epilogue.
#pragma once
#include "bulk_ring.cuh"
#include "device_utils.cuh"
#include "kernels.h"
#include "linear_common.cuh"
#include "mma_utils.cuh"

namespace grpst::cuda {
namespace {

constexpr int kStages = 4;
constexpr int kMaxSplits = 8;  // the last block's reduction loads every slice of a value at once
constexpr int kScaleEntries = 4;  // int4 groups per 64-column step at most (groups of 16)

// int4_awq: 16 bytes per lane per 16 x 64 tile; (q - z) * s per k16 step from the staged scales.
struct TiledInt4 {
  static constexpr int kLaneBytes = 16;
  static constexpr bool kScaled = true;
  struct Raw { uint32_t w[4]; };
  struct Scales { __nv_bfloat162 s, s8, z, z8; };
  __device__ static Raw read(const uint8_t* p) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    return {{v.x, v.y, v.z, v.w}};
  }
  // Lane's bytes where a tile's step lies as packed (lane-major: the bulk copies of linear_wo_ws.cuh).
  __device__ static Raw read_packed(const uint8_t* tile, int lane) { return read(tile + lane * 16); }
  // staged: this tile's entries, [kScaleEntries][scale 16 | zero 16] bf16, each 16 in row pairs
  // (j, j + 8) as repack_int4 leaves them; rows g and g + 8 are at 2g and 2g + 1. Select: the zeros
  // selected, not branched on (the wgmma kernels: a branch between wgmma groups serializes them,
  // ptxas C7513; a stage without zeros holds the zero-filled entries of copies that read nothing).
  // The mma.sync kernel branches: with the select its int4 steps of 8 and 16 rows measured 11% and
  // 5% slower on an H200 (4.726 against 4.254 ms, 4.346 against 4.131).
  // zoff: the zeros' offset from the scales (16 here; the warp-specialized kernel stages all
  // tiles' scales, then all their zeros).
  template <bool Select = false>
  __device__ static Scales scales(const bf16* staged, int step, int group, bool zeros, int g, int zoff = 16) {
    const bf16* e = staged + (group < 64 ? (step * 16) / group : 0) * 32;
    Scales r;
    r.s = __bfloat162bfloat162(e[2 * g]);
    r.s8 = __bfloat162bfloat162(e[2 * g + 1]);
    const __nv_bfloat162 symmetric = __float2bfloat162_rn(136.f);  // 128 + 8
    if constexpr (Select) {
      const __nv_bfloat162 z = __bfloat162bfloat162(e[zoff + 2 * g]), z8 = __bfloat162bfloat162(e[zoff + 2 * g + 1]);
      r.z = zeros ? z : symmetric;
      r.z8 = zeros ? z8 : symmetric;
    } else if (zeros) {
      r.z = __bfloat162bfloat162(e[zoff + 2 * g]);
      r.z8 = __bfloat162bfloat162(e[zoff + 2 * g + 1]);
    } else {
      r.z = r.z8 = symmetric;
    }
    return r;
  }
  __device__ static void frag(const Raw& r, int step, const Scales& sc, uint32_t (&a)[4]) {
    int4_word_to_frag(r.w[step], sc.s, sc.s8, sc.z, sc.z8, a);
  }
  __device__ static float scale(float v, const Weight&, int) { return v; }
};

// int8_wo: 32 bytes per lane per tile (its two 16-byte halves staged 512 bytes apart), exact bf16
// bytes; the channel scale in the epilogue.
struct TiledInt8 {
  static constexpr int kLaneBytes = 32;
  static constexpr bool kScaled = false;
  struct Raw { uint32_t w[8]; };
  struct Scales {};
  __device__ static Raw read(const uint8_t* p) {
    const uint4 lo = *reinterpret_cast<const uint4*>(p), hi = *reinterpret_cast<const uint4*>(p + 512);
    return {{lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w}};
  }
  // Lane's 32 bytes where a tile's step lies as packed (lane-major, halves adjacent).
  __device__ static Raw read_packed(const uint8_t* tile, int lane) {
    const uint4 lo = *reinterpret_cast<const uint4*>(tile + lane * 32), hi = *reinterpret_cast<const uint4*>(tile + lane * 32 + 16);
    return {{lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w}};
  }
  template <bool Select = false>
  __device__ static Scales scales(const bf16*, int, int, bool, int, int = 16) { return {}; }
  __device__ static void frag(const Raw& r, int step, const Scales&, uint32_t (&a)[4]) {
    int8_words_to_bf16_frag(r.w[2 * step], r.w[2 * step + 1], a);
  }
  __device__ static float scale(float v, const Weight& W, int n) { return v * W.channel_scale[n]; }
};

// int4 scales (and zeros) of a stage: per tile and entry, 16 scales (2 chunks) then 16 zeros.
// Each thread's chunks are addressed once, in the block's constructor: per step only the group
// index moves (a shift where the group spans a power of two of steps). Computed per step, with
// its divisions by the group size, this was the GEMM's largest stall (ncu's source counters on an
// H200: 17% of the samples of int4 gate_up at 64 tokens, against 16% waiting on the wgmma).
template <class S>
struct ScaleLoader {
  static constexpr int kItems = S::kTiles * kScaleEntries * 4;
  static constexpr int kPer = (kItems + S::kThreads - 1) / S::kThreads;
  const bf16* src[kPer];  // the chunk at group 0 (W.group_scale, valid and unread, where !ok)
  int dst[kPer], entry[kPer];
  bool ok[kPer], mine[kPer];
  int per_step, steps_per_group, shift, last_group;

  __device__ ScaleLoader(const Weight& W, int tile0, int ntiles, int ngroups, int entries) {
    const int G = W.group_size > 0 ? W.group_size : 64;  // (int8_wo has none; its loader goes unused)
    per_step = G < 64 ? 64 / G : 0;  // groups per step (16, 32: 4, 2) or 0: steps per group below
    steps_per_group = G < 64 ? 1 : G / 64;
    shift = (steps_per_group & (steps_per_group - 1)) == 0 ? __ffs(steps_per_group) - 1 : -1;
    last_group = ngroups - 1;
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int i = threadIdx.x + u * S::kThreads;
      const int tl = i / (kScaleEntries * 4), e = (i / 4) % kScaleEntries, part = i % 4, tile = tile0 + tl;
      const bf16* arr = part < 2 ? W.group_scale : W.group_zero;
      mine[u] = i < kItems && e < entries;
      ok[u] = mine[u] && tile < ntiles && arr != nullptr;
      src[u] = ok[u] ? arr + static_cast<size_t>(tile) * ngroups * 16 + (part & 1) * 8 : W.group_scale;
      dst[u] = (tl * kScaleEntries + e) * 64 + part * 16;
      entry[u] = e;
    }
  }
  __device__ __forceinline__ void stage(uint8_t* st, int kb) const {
    uint8_t* ss = st + S::kWBytes;
    const int first = per_step ? kb * per_step : shift >= 0 ? kb >> shift : kb / steps_per_group;
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      if (!mine[u]) continue;
      const int gi = min(first + entry[u], last_group);
      cp_async16(ss + dst[u], ok[u] ? src[u] + static_cast<size_t>(gi) * 16 : src[u], ok[u]);
    }
  }
};

// The same copies with their addresses computed per step (two divisions by the group size per
// thread): what the mma.sync kernel keeps at up to 8 rows, where it measured faster on an H200
// (int4 decode steps of 8 rows at 512 keys 4.281 against 4.490 ms, whose one tiled projection is
// down_proj after the streaming GEMV's gate_up; at 12 and 16 rows ScaleLoader's 4.048 / 4.170
// against 4.332 / 4.567). Why is not known.
template <class S>
__device__ __forceinline__ void stage_scales_per_step(uint8_t* st, const Weight& W, int tile0, int kb, int ntiles,
                                                      int ngroups, int entries) {
  uint8_t* ss = st + S::kWBytes;
  const int G = W.group_size;
  for (int i = threadIdx.x; i < S::kTiles * kScaleEntries * 4; i += S::kThreads) {
    const int tl = i / (kScaleEntries * 4), e = (i / 4) % kScaleEntries, part = i % 4, tile = tile0 + tl;
    if (e >= entries) continue;
    const int gi = min(kb * 64 / G + e, ngroups - 1);
    const bf16* arr = part < 2 ? W.group_scale : W.group_zero;
    const bool ok = tile < ntiles && arr != nullptr;
    const bf16* src = ok ? arr + (static_cast<size_t>(tile) * ngroups + gi) * 16 + (part & 1) * 8 : W.group_scale;
    cp_async16(ss + (tl * kScaleEntries + e) * 64 + part * 16, src, ok);
  }
}

// Each thread's share of the cp.async copies of a stage, addressed once: per step of K the weight
// chunks move 32 * kLaneBytes bytes (the next 64 columns of the same tile) and the x chunks 64
// columns. Weight chunk c of lane l in a tile lands at (c * 32 + l) * 16, so each of a warp's
// 16-byte shared-memory reads of its fragments is one contiguous 512-byte row; x's 16-byte chunk c
// of token r lands at S::x_offset(r, c).
template <class Dec, class S>
struct StageLoader {
  static constexpr int kWParts = Dec::kLaneBytes / 16;
  static constexpr int kWChunks = S::kTiles * 32 * kWParts;
  static constexpr int kWPer = kWChunks / S::kThreads;  // exact: kThreads = 32 * WARPS
  static constexpr int kXChunks = S::kXRows * 8;
  static constexpr int kXPer = (kXChunks + S::kThreads - 1) / S::kThreads;
  const uint8_t* wsrc[kWPer];
  int wdst[kWPer];
  bool wok[kWPer];
  const bf16* xsrc[kXPer];
  int xdst[kXPer], xcol[kXPer];
  bool xok[kXPer];

  __device__ StageLoader(const Weight& W, const bf16* x, int M, int K, int tile0, int ntiles, int nkb) {
    const uint8_t* base = static_cast<const uint8_t*>(W.data);
#pragma unroll
    for (int u = 0; u < kWPer; ++u) {
      const int i = threadIdx.x + u * S::kThreads;
      const int tl = i / (32 * kWParts), c = i % (32 * kWParts), lane = c / kWParts, part = c % kWParts;
      const int tile = tile0 + tl;
      wok[u] = tile < ntiles;
      wsrc[u] = base + (static_cast<size_t>(wok[u] ? tile : 0) * nkb * 32 + lane) * Dec::kLaneBytes + part * 16;
      wdst[u] = tl * 32 * Dec::kLaneBytes + (part * 32 + lane) * 16;
    }
#pragma unroll
    for (int u = 0; u < kXPer; ++u) {
      const int i = threadIdx.x + u * S::kThreads, r = i / 8, c = i % 8;
      xok[u] = i < kXChunks && r < M;
      xsrc[u] = xok[u] ? x + static_cast<size_t>(r) * K + c * 8 : x;
      xdst[u] = S::x_offset(r, c);
      xcol[u] = c * 8;
    }
  }
  __device__ __forceinline__ void weights(uint8_t* st, int kb) const {
#pragma unroll
    for (int u = 0; u < kWPer; ++u) cp_async16(st + wdst[u], wsrc[u] + static_cast<size_t>(kb) * 32 * Dec::kLaneBytes, wok[u]);
  }
  __device__ __forceinline__ void activations(uint8_t* st, int kb, int K) const {
#pragma unroll
    for (int u = 0; u < kXPer; ++u) {
      if (kXChunks % S::kThreads != 0 && threadIdx.x + u * S::kThreads >= kXChunks) continue;
      const bool ok = xok[u] && kb * 64 + xcol[u] < K;
      cp_async16(st + xdst[u], ok ? xsrc[u] + kb * 64 : xsrc[u], ok);
    }
  }
};

template <int TW, int J>
__device__ __forceinline__ void zero_sums(float (&acc)[TW][J][4]) {
#pragma unroll
  for (int t = 0; t < TW; ++t)
#pragma unroll
    for (int j = 0; j < J; ++j) acc[t][j][0] = acc[t][j][1] = acc[t][j][2] = acc[t][j][3] = 0.f;
}

// A block's share of the GEMM: tiles [tile0, tile0 + kTiles) over its K slice's `steps` 64-column
// steps from kb0, and the stages of its ring (S::kRing of S::kStageBytes each, from `smem`), of
// which S::kAhead are loading while the block works on one (and, in the wgmma kernel that
// overlaps its steps, a wgmma in flight still reads another).
template <class Dec, class S>
struct BlockWork {
  const Weight& W;
  int K, nkb, ntiles, tile0, kb0, steps, G, ngroups, entries;
  bool zeros;
  StageLoader<Dec, S> load;
  ScaleLoader<S> scale_load;

  __device__ BlockWork(const Weight& w, const bf16* x, int M, int splits)
      : W(w), K(w.K), nkb((w.K + 63) / 64), ntiles((w.N + 15) / 16), tile0(blockIdx.x * S::kTiles),
        kb0(static_cast<int>(static_cast<long long>(nkb) * blockIdx.y / splits)),
        steps(static_cast<int>(static_cast<long long>(nkb) * (blockIdx.y + 1) / splits) - kb0),
        G(Dec::kScaled ? w.group_size : 64), ngroups(Dec::kScaled ? (w.K + G - 1) / G : 1), entries(G < 64 ? 64 / G : 1),
        zeros(Dec::kScaled && w.group_zero != nullptr), load(w, x, M, w.K, tile0, ntiles, nkb),
        scale_load(w, tile0, ntiles, ngroups, entries) {}

  __device__ __forceinline__ void weights(uint8_t* st, int step) const {
    load.weights(st, kb0 + step);
    if constexpr (Dec::kScaled && S::kScalesPerStep)
      stage_scales_per_step<S>(st, W, tile0, kb0 + step, ntiles, ngroups, entries);
    else if constexpr (Dec::kScaled)
      scale_load.stage(st, kb0 + step);
  }
  // The first S::kAhead stages: their weights before the kernel's wait on the previous kernel
  // (they do not depend on it), x after (prime_activations: one commit group per stage).
  __device__ __forceinline__ void prime_weights(uint8_t* smem) const {
#pragma unroll
    for (int s = 0; s < S::kAhead; ++s)
      if (s < steps) weights(smem + s * S::kStageBytes, s);
  }
  __device__ __forceinline__ void prime_activations(uint8_t* smem) const {
#pragma unroll
    for (int s = 0; s < S::kAhead; ++s) {
      if (s < steps) load.activations(smem + s * S::kStageBytes, kb0 + s, K);
      cp_async_commit();
    }
  }
  // Step `next`'s stage (where there is one), then a commit group either way.
  __device__ __forceinline__ void refill(uint8_t* smem, int next) const {
    if (next < steps) {
      uint8_t* st = smem + (next % S::kRing) * S::kStageBytes;
      weights(st, next);
      load.activations(st, kb0 + next, K);
    }
    cp_async_commit();
  }
  // Tile t of warp w's decoded scales for a 16-column step of the stage's int4 entries.
  // Select: see TiledInt4::scales.
  template <bool Select = false>
  __device__ __forceinline__ typename Dec::Scales scales(const uint8_t* st, int warp_tile, int step, int g) const {
    return Dec::template scales<Select>(reinterpret_cast<const bf16*>(st + S::kWBytes) + warp_tile * kScaleEntries * 32,
                                        step, G, zeros, g);
  }
};

// The block's end, after its products: acc (warp w's tiles w * TW + t, the m16n8 accumulator
// layout per 8 tokens j) into shared memory (the ring, free by now) as red[row][token]; with a K
// split the block's slot of the scratch, and the last block of the column adds the slots in slice
// order (the result does not depend on timing); then the epilogue. is_last: a __shared__ flag.
template <class Dec, class S>
__device__ __forceinline__ void finish_sums(float* red, const Weight& W, const LinearOut& out, int M, int splits,
                                            float* partial, int* counters, bool& is_last, bool spread = false);
template <class Dec, class S, int TW, int J>
__device__ __forceinline__ void finish_block(uint8_t* smem, const float (&acc)[TW][J][4], const Weight& W,
                                             const LinearOut& out, int M, int splits, float* partial, int* counters,
                                             bool& is_last, bool spread = false) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  float* red = reinterpret_cast<float*>(smem);
  if (S::kThreads == S::kMmaWarps * 32 || warp < S::kMmaWarps) {  // (not a producer warp: linear_wo_ws.cuh)
    const int t4 = lane & 3;
#pragma unroll
    for (int t = 0; t < TW; ++t) {
      const int r0 = (warp * TW + t) * 16 + g;
#pragma unroll
      for (int j = 0; j < J; ++j) {
        *reinterpret_cast<float2*>(red + r0 * S::kRedStride + j * 8 + 2 * t4) = make_float2(acc[t][j][0], acc[t][j][1]);
        *reinterpret_cast<float2*>(red + (r0 + 8) * S::kRedStride + j * 8 + 2 * t4) = make_float2(acc[t][j][2], acc[t][j][3]);
      }
    }
  }
  finish_sums<Dec, S>(red, W, out, M, splits, partial, counters, is_last, spread);
}

// The rest of a block's end, once every thread's sums lie in red[row][token] (kRedStride floats a
// row): the K slices added (see finish_block) and the epilogue. Every thread of the block calls it.
// spread: every block of the tile adds the slots of its share of the rows (an even count: SwiGLU's
// pairs) once all slots are written, instead of the last block adding all of them; the same order
// of additions, so the same bits. Asks that the tile's blocks be co-resident (one wave: the plan's).
template <class Dec, class S>
__device__ __forceinline__ void finish_sums(float* red, const Weight& W, const LinearOut& out, int M, int splits,
                                            float* partial, int* counters, bool& is_last, bool spread) {
  const int N = W.N, split = blockIdx.y;
  int r0 = 0, r1 = S::kRows;  // the rows this block stores
  __syncthreads();
  if (splits > 1) {
    // The block's sums as they lie ([kRows][kXRows], float4 at a time) into its slice's slot;
    // the last block of the column (or each block, its share) adds the slots in slice order back
    // into red.
    constexpr int kRowQuads = S::kXRows / 4;
    const size_t slot = static_cast<size_t>(S::kRows) * S::kXRows;
    float4* mine = reinterpret_cast<float4*>(partial + (static_cast<size_t>(split) * gridDim.x + blockIdx.x) * slot);
    for (int i = threadIdx.x; i < S::kRows * kRowQuads; i += S::kThreads)
      mine[i] = *reinterpret_cast<const float4*>(red + (i / kRowQuads) * S::kRedStride + (i % kRowQuads) * 4);
    __threadfence();
    __syncthreads();
    unsigned* count = reinterpret_cast<unsigned*>(counters + blockIdx.x);
    if (spread) {
      const int share = (ceil_div(S::kRows, splits) + 1) & ~1;
      r0 = min(S::kRows, split * share);
      r1 = min(S::kRows, r0 + share);
      if (threadIdx.x == 0) grid_barrier_thread(count, 0, static_cast<unsigned>(splits));  // every slot written
    } else if (threadIdx.x == 0) {
      const int arrived = atomicAdd(counters + blockIdx.x, 1);
      is_last = arrived == splits - 1;
      if (is_last) counters[blockIdx.x] = 0;  // ready for the next launch
    }
    __syncthreads();
    if (!spread && !is_last) return;
    __threadfence();
    const size_t stride = static_cast<size_t>(gridDim.x) * slot / 4;  // float4s between slices
    const float4* col = reinterpret_cast<const float4*>(partial + static_cast<size_t>(blockIdx.x) * slot);
    for (int i = r0 * kRowQuads + threadIdx.x; i < r1 * kRowQuads; i += S::kThreads) {
      float4 part[kMaxSplits];
#pragma unroll
      for (int s = 0; s < kMaxSplits; ++s)
        part[s] = s < splits ? __ldcg(col + s * stride + i) : make_float4(0.f, 0.f, 0.f, 0.f);
      float4 v = part[0];
#pragma unroll
      for (int s = 1; s < kMaxSplits; ++s) {
        v.x += part[s].x;
        v.y += part[s].y;
        v.z += part[s].z;
        v.w += part[s].w;
      }
      *reinterpret_cast<float4*>(red + (i / kRowQuads) * S::kRedStride + (i % kRowQuads) * 4) = v;
    }
    __syncthreads();
    // Spread: the tile's counter back at zero once every block has read it (its second arrival).
    if (spread && threadIdx.x == 0 && atomicAdd(count, 1u) == 2u * splits - 1u) atomicExch(count, 0u);
  }
  const int n0 = blockIdx.x * S::kRows;
  r1 = min(r1, N - n0);  // (the loops divide by the block's constant rows: no division by r1 - r0)
  if (out.epi == Epilogue::swiglu) {
    constexpr int kPairs = S::kRows / 2;
    for (int i = threadIdx.x; i < M * kPairs; i += S::kThreads) {
      const int m = i / kPairs, p = i % kPairs, n = n0 + 2 * p;
      if (2 * p < r0 || 2 * p >= r1) continue;
      linear_store_swiglu(out, N, m, n / 2, Dec::scale(red[2 * p * S::kRedStride + m], W, n),
                          Dec::scale(red[(2 * p + 1) * S::kRedStride + m], W, n + 1));
    }
  } else {
    for (int i = threadIdx.x; i < M * S::kRows; i += S::kThreads) {
      const int m = i / S::kRows, r = i % S::kRows;
      if (r < r0 || r >= r1) continue;
      linear_store(out, N, m, n0 + r, Dec::scale(red[r * S::kRedStride + m], W, n0 + r));
    }
  }
}

}  // namespace
}  // namespace grpst::cuda
