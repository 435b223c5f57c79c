// Tiled tensor-core GEMM for weight-only quantized weights (int4_awq, int8_wo) at 9-64 tokens:
// y[M,N] = x[M,K] . W[N,K]^T with W decoded to bf16 in registers, never written out.
//
// The skinny kernel stages all M rows of x in every block for 16-32 weight rows, so at 64 tokens
// x crosses the L2 four to eight times per weight byte. Here a block takes 64-256 weight rows
// (WARPS warps x TW 16-row tiles each; 64 or 128 by default) and, where that leaves too few blocks
// to fill the GPU, a slice of K (split-K). Each block runs a kStages-deep cp.async ring over
// 64-column steps of K:
//   stage = weight tiles [TILES][kLaneBytes / 16 halves][32 lanes][16 B] (the packed fragments)
//         + int4 group scales / zeros [TILES][4 entries][2][16] (bf16)
//         + x rows [8J][64] bf16 (rows past M and columns past K zero-filled), 144-byte stride
// and per step each warp decodes its tiles' A fragments once and multiplies them with every
// 8-token column of x (ldmatrix.x4 gives two columns). Partial sums of the K slices go to an fp32
// scratch, [slice][column of blocks][rows][8J]; the last block of each column of blocks to arrive
// (a counter per column, reset by that block) adds them in slice order, so the result does not
// depend on timing, and runs the epilogue (channel scale, store / residual add / SwiGLU).
#include <algorithm>
#include <cstdlib>

#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"
#include "linear_common.cuh"
#include "mma_utils.cuh"

namespace grpst::cuda {
namespace {

constexpr int kStages = 4;
constexpr int kMaxSplits = 8;  // the last block's reduction loads every slice of a value at once
constexpr int kXStride = 144;  // bytes per staged x row: 64 bf16 + 16 (rows fall on different banks)
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
  // staged: this tile's entries, [kScaleEntries][scale 16 | zero 16] bf16, each 16 in row pairs
  // (j, j + 8) as repack_int4 leaves them; rows g and g + 8 are at 2g and 2g + 1
  __device__ static Scales scales(const bf16* staged, int step, int group, bool zeros, int g) {
    const bf16* e = staged + (group < 64 ? (step * 16) / group : 0) * 32;
    Scales r;
    r.s = __bfloat162bfloat162(e[2 * g]);
    r.s8 = __bfloat162bfloat162(e[2 * g + 1]);
    if (zeros) {
      r.z = __bfloat162bfloat162(e[16 + 2 * g]);
      r.z8 = __bfloat162bfloat162(e[16 + 2 * g + 1]);
    } else {
      r.z = r.z8 = __float2bfloat162_rn(136.f);  // symmetric: 128 + 8
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
  __device__ static Scales scales(const bf16*, int, int, bool, int) { return {}; }
  __device__ static void frag(const Raw& r, int step, const Scales&, uint32_t (&a)[4]) {
    int8_words_to_bf16_frag(r.w[2 * step], r.w[2 * step + 1], a);
  }
  __device__ static float scale(float v, const Weight& W, int n) { return v * W.channel_scale[n]; }
};

// c += a . b (m16n8k16 bf16, fp32 accumulators), without `volatile`: the product touches only
// registers, so the compiler may interleave it with the next step's loads and decoding (the
// shared mma_bf16 keeps its order for the attention kernels tuned around it).
__device__ __forceinline__ void mma_bf16_sched(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <class Dec, int J, int WARPS, int TW>
struct Shape {
  static constexpr int kThreads = WARPS * 32;
  static constexpr int kTiles = WARPS * TW, kRows = 16 * kTiles, kXRows = 8 * J;
  static constexpr int kWBytes = kTiles * 32 * Dec::kLaneBytes;
  static constexpr int kSBytes = Dec::kScaled ? kTiles * kScaleEntries * 64 : 0;
  static constexpr int kStageBytes = kWBytes + kSBytes + kXRows * kXStride;
  static constexpr int kRedStride = kXRows + 4;  // fp32 per row of the reduction (16-byte rows)
  static constexpr int kRedBytes = kRows * kRedStride * 4;
  static constexpr int kSmem = kStages * kStageBytes > kRedBytes ? kStages * kStageBytes : kRedBytes;
};

// Each thread's share of the cp.async copies of a stage, addressed once: per step of K the weight
// chunks move 32 * kLaneBytes bytes (the next 64 columns of the same tile) and the x chunks 64
// columns. Weight chunk c of lane l in a tile lands at (c * 32 + l) * 16, so each of a warp's
// 16-byte shared-memory reads of its fragments is one contiguous 512-byte row.
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
      xdst[u] = S::kWBytes + S::kSBytes + r * kXStride + c * 16;
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

// int4 scales (and zeros) of a stage: per tile and entry, 16 scales (2 chunks) then 16 zeros.
template <class S>
__device__ __forceinline__ void stage_scales(uint8_t* st, const Weight& W, int tile0, int kb, int ntiles, int ngroups,
                                             int entries) {
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

template <class Dec, int J, int WARPS, int TW>
__global__ void __launch_bounds__(WARPS * 32) linear_wo_tiled_kernel(const bf16* __restrict__ x, Weight W,
                                                                      LinearOut out, int M, int splits,
                                                                      float* partial, int* counters) {
  using S = Shape<Dec, J, WARPS, TW>;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ bool is_last;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const int N = W.N, K = W.K, nkb = (K + 63) / 64, ntiles = (N + 15) / 16;
  const int tile0 = blockIdx.x * S::kTiles, split = blockIdx.y;
  const int kb0 = static_cast<int>(static_cast<long long>(nkb) * split / splits);
  const int kb1 = static_cast<int>(static_cast<long long>(nkb) * (split + 1) / splits);
  const int steps = kb1 - kb0;
  const int G = Dec::kScaled ? W.group_size : 64;
  const int ngroups = Dec::kScaled ? (K + G - 1) / G : 1;
  const int entries = G < 64 ? 64 / G : 1;
  const bool zeros = Dec::kScaled && W.group_zero != nullptr;
  const StageLoader<Dec, S> load(W, x, M, K, tile0, ntiles, nkb);

  // The weights do not depend on the previous kernel: their first stages go out before the wait.
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    if (s < steps) {
      load.weights(smem + s * S::kStageBytes, kb0 + s);
      if constexpr (Dec::kScaled) stage_scales<S>(smem + s * S::kStageBytes, W, tile0, kb0 + s, ntiles, ngroups, entries);
    }
  griddep_wait();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load.activations(smem + s * S::kStageBytes, kb0 + s, K);
    cp_async_commit();
  }

  float acc[TW][J][4];
#pragma unroll
  for (int t = 0; t < TW; ++t)
#pragma unroll
    for (int j = 0; j < J; ++j) acc[t][j][0] = acc[t][j][1] = acc[t][j][2] = acc[t][j][3] = 0.f;

  for (int it = 0; it < steps; ++it) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage `it` landed for every thread; stage it - 1 is consumed
    const int next = it + kStages - 1;
    if (next < steps) {
      uint8_t* st = smem + (next % kStages) * S::kStageBytes;
      load.weights(st, kb0 + next);
      if constexpr (Dec::kScaled) stage_scales<S>(st, W, tile0, kb0 + next, ntiles, ngroups, entries);
      load.activations(st, kb0 + next, K);
    }
    cp_async_commit();
    const uint8_t* st = smem + (it % kStages) * S::kStageBytes;
    typename Dec::Raw raw[TW];
#pragma unroll
    for (int t = 0; t < TW; ++t) raw[t] = Dec::read(st + (warp * TW + t) * 32 * Dec::kLaneBytes + lane * 16);
    const bf16* scales = reinterpret_cast<const bf16*>(st + S::kWBytes);
    // ldmatrix.x4 at row jj*16 + lane's row: tokens jj*16 + {0-7, 8-15} x columns {0-7, 8-15}
    const uint8_t* xs = st + S::kWBytes + S::kSBytes + (((lane >> 4) << 3) + (lane & 7)) * kXStride +
                        ((lane >> 3) & 1) * 16;
    // x fragments one k16 step ahead of the products that use them
    uint32_t b[2][J / 2][4];
#pragma unroll
    for (int jj = 0; jj < J / 2; ++jj) ldmatrix_x4(b[0][jj], xs + jj * 16 * kXStride);
    typename Dec::Scales sc[TW];
#pragma unroll
    for (int step = 0; step < 4; ++step) {
      if (step < 3)
#pragma unroll
        for (int jj = 0; jj < J / 2; ++jj) ldmatrix_x4(b[(step + 1) & 1][jj], xs + jj * 16 * kXStride + (step + 1) * 32);
      // one group per 64 columns or more: its scales once per step of K
      if (step == 0 || G < 64)
#pragma unroll
        for (int t = 0; t < TW; ++t) sc[t] = Dec::scales(scales + (warp * TW + t) * kScaleEntries * 32, step, G, zeros, g);
      uint32_t a[TW][4];
#pragma unroll
      for (int t = 0; t < TW; ++t) Dec::frag(raw[t], step, sc[t], a[t]);
#pragma unroll
      for (int jj = 0; jj < J / 2; ++jj)
#pragma unroll
        for (int t = 0; t < TW; ++t) {
          mma_bf16_sched(acc[t][2 * jj], a[t], b[step & 1][jj][0], b[step & 1][jj][1]);
          mma_bf16_sched(acc[t][2 * jj + 1], a[t], b[step & 1][jj][2], b[step & 1][jj][3]);
        }
    }
  }
  cp_async_wait<0>();
  griddep_launch_dependents();
  __syncthreads();  // the ring is free: it becomes the reduction buffer

  // This block's sums as red[row][token], rows = the block's kRows weight rows.
  float* red = reinterpret_cast<float*>(smem);
  {
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
  __syncthreads();
  if (splits > 1) {
    // The block's sums as they lie ([kRows][kXRows], float4 at a time) into its slice's slot;
    // the last block of the column adds the slots in slice order back into red.
    constexpr int kQuads = S::kRows * S::kXRows / 4, kRowQuads = S::kXRows / 4;
    const size_t slot = static_cast<size_t>(S::kRows) * S::kXRows;
    float4* mine = reinterpret_cast<float4*>(partial + (static_cast<size_t>(split) * gridDim.x + blockIdx.x) * slot);
    for (int i = threadIdx.x; i < kQuads; i += S::kThreads)
      mine[i] = *reinterpret_cast<const float4*>(red + (i / kRowQuads) * S::kRedStride + (i % kRowQuads) * 4);
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
      const int arrived = atomicAdd(counters + blockIdx.x, 1);
      is_last = arrived == splits - 1;
      if (is_last) counters[blockIdx.x] = 0;  // ready for the next launch
    }
    __syncthreads();
    if (!is_last) return;
    __threadfence();
    const size_t stride = static_cast<size_t>(gridDim.x) * slot / 4;  // float4s between slices
    const float4* col = reinterpret_cast<const float4*>(partial + static_cast<size_t>(blockIdx.x) * slot);
    for (int i = threadIdx.x; i < kQuads; i += S::kThreads) {
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
  }
  const int n0 = blockIdx.x * S::kRows;
  const int rows = min(S::kRows, N - n0);
  if (out.epi == Epilogue::swiglu) {
    constexpr int kPairs = S::kRows / 2;
    for (int i = threadIdx.x; i < M * kPairs; i += S::kThreads) {
      const int m = i / kPairs, p = i % kPairs, n = n0 + 2 * p;
      if (2 * p >= rows) continue;
      linear_store_swiglu(out, N, m, n / 2, Dec::scale(red[2 * p * S::kRedStride + m], W, n),
                          Dec::scale(red[(2 * p + 1) * S::kRedStride + m], W, n + 1));
    }
  } else {
    for (int i = threadIdx.x; i < M * S::kRows; i += S::kThreads) {
      const int m = i / S::kRows, r = i % S::kRows;
      if (r >= rows) continue;
      linear_store(out, N, m, n0 + r, Dec::scale(red[r * S::kRedStride + m], W, n0 + r));
    }
  }
}

// Block shape and split for one call. Forced by GRPST_CUDA_WO_TILED_CONFIG="rows,splits" (rows 64,
// 128 or 256; splits 0 = chosen) for the kernel tests and the benchmark sweep.
struct Plan {
  int rows = 128, splits = 1;
};
// Blocks of 64 and of 128 rows that fit on one SM at 33-64 tokens (0: unknown).
struct Residency {
  int rows64 = 0, rows128 = 0;
};

// 33-64 tokens: the shape whose blocks fill the GPU's resident slots most evenly (blocks over
// whole waves of slots), among those within 5% of the best the one with the fewest waves, then
// the wider blocks (fewer x reads). Measured on an H200 at 64 tokens (docs/benchmarks-gpu-passes.md,
// "the tiled weight-only GEMM fills whole waves"): int4 qkv 128 rows x 8 slices 25.6 us against
// 31.2 for the rule below, gate_up 128 x 2 61.5 against 75.5 (a wave and a half of 3 slices).
Plan choose_by_waves(const Weight& w, int nkb, const Residency& res, int num_sms) {
  const int max_splits = std::max(1, std::min(kMaxSplits, nkb / 8));
  // Visits every (rows, splits) with its fill (blocks over whole waves of slots) and waves.
  const auto each = [&](auto&& visit) {
    for (const int rows : {64, 128}) {
      const int slots = (rows == 64 ? res.rows64 : res.rows128) * num_sms;
      if (slots <= 0) continue;
      for (int splits = 1; splits <= max_splits; ++splits) {
        const int blocks = ceil_div(w.N, rows) * splits, waves = ceil_div(blocks, slots);
        visit(Plan{rows, splits}, static_cast<double>(blocks) / (static_cast<double>(waves) * slots), waves);
      }
    }
  };
  double best_fill = 0;
  each([&](const Plan&, double fill, int) { best_fill = std::max(best_fill, fill); });
  Plan pick;
  int pick_waves = 0;
  each([&](const Plan& p, double fill, int waves) {
    if (fill < 0.95 * best_fill) return;
    if (pick_waves == 0 || waves < pick_waves || (waves == pick_waves && p.rows > pick.rows)) {
      pick = p;
      pick_waves = waves;
    }
  });
  return pick;
}

Plan choose(const Weight& w, int M, const SplitScratch& sc, int num_sms, const Residency& res) {
  Plan p;
  const int nkb = (w.K + 63) / 64;
  int forced_rows = 0, forced_splits = 0;
  if (const char* e = std::getenv("GRPST_CUDA_WO_TILED_CONFIG")) std::sscanf(e, "%d,%d", &forced_rows, &forced_splits);
  // Up to 32 tokens: 64-row blocks (128 for the widest matrices), K split until about six blocks
  // per SM (three of 128 rows), each slice at least 8 steps of K: on an H200 the kernel is bound
  // by latency (ncu: 12-19% achieved occupancy, DRAM and SM throughput under a third), so more
  // blocks in flight win, except for gate_up, where the wider blocks' fewer slices and x reads
  // win. The fastest shapes of the sweep (docs/benchmarks-gpu.md, 16-32 tokens): qkv, o_proj,
  // down_proj 64 rows x 8 slices; gate_up 128 x 2-4; the LM head 128 x 1. From 33 tokens the
  // blocks hold twice the x and fewer fit on an SM: whole waves decide (choose_by_waves).
  // GRPST_CUDA_WO_TILED_WAVES=0 keeps the rule above at every row count (for comparisons).
  const bool by_waves = M > 32 && res.rows64 > 0 && res.rows128 > 0 && env_int("GRPST_CUDA_WO_TILED_WAVES", 1) != 0;
  if (by_waves && forced_rows == 0 && forced_splits == 0) {
    p = choose_by_waves(w, nkb, res, num_sms);
  } else {
    p.rows = w.N >= 16384 ? 128 : 64;
    if (forced_rows == 64 || forced_rows == 128 || forced_rows == 256) p.rows = forced_rows;
    const int blocks = ceil_div(w.N, p.rows);
    p.splits = std::max(1, std::min(ceil_div((p.rows >= 128 ? 3 : 6) * num_sms, blocks), nkb / 8));
    if (forced_splits > 0) p.splits = std::min(forced_splits, nkb);
  }
  p.splits = std::min(p.splits, kMaxSplits);
  if (p.splits > 1) {  // as many slices as the scratch holds partial sums and counters for
    const int blocks = ceil_div(w.N, p.rows);
    const bool usable = sc.partial && sc.counters && blocks <= sc.counter_count;
    const size_t per_split = static_cast<size_t>(blocks) * p.rows * (M <= 16 ? 16 : M <= 32 ? 32 : 64);
    const size_t cap = usable ? sc.partial_floats / per_split : 1;
    p.splits = static_cast<int>(std::max<size_t>(1, std::min<size_t>(cap, p.splits)));
  }
  return p;
}

template <class Dec, int J, int WARPS, int TW>
Status launch_tiled(const bf16* x, const Weight& w, const LinearOut& out, int M, int splits, const SplitScratch& sc,
                    const Exec& ex) {
  using S = Shape<Dec, J, WARPS, TW>;
  auto kernel = linear_wo_tiled_kernel<Dec, J, WARPS, TW>;
  GRPST_TRY(allow_smem("linear_wo_tiled", kernel, S::kSmem));
  const dim3 grid(ceil_div(w.N, S::kRows), splits);
  return launch("linear_wo_tiled", kernel, grid, dim3(S::kThreads), S::kSmem, ex, x, w, out, M, splits, sc.partial,
                sc.counters);
}

// Blocks of one shape that fit on an SM (its shared memory, registers and threads), asked of
// the runtime once per shape and process (the GPUs of one machine are of one kind); 0 when it
// cannot say.
template <class Dec, int J, int WARPS, int TW>
int resident_per_sm() {
  static const int blocks = [] {
    using S = Shape<Dec, J, WARPS, TW>;
    auto kernel = linear_wo_tiled_kernel<Dec, J, WARPS, TW>;
    int n = 0;
    if (!allow_smem("linear_wo_tiled", kernel, S::kSmem).ok() ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, S::kThreads, S::kSmem) != cudaSuccess) {
      cudaGetLastError();  // leave no error behind for the next launch's check
      return 0;
    }
    return n;
  }();
  return blocks;
}

Plan plan_for(const Weight& w, int M, const SplitScratch& sc, int num_sms) {
  Residency res;
  if (M > 32) {
    if (w.format == WeightFormat::int4_awq) res = {resident_per_sm<TiledInt4, 8, 4, 1>(), resident_per_sm<TiledInt4, 8, 4, 2>()};
    else res = {resident_per_sm<TiledInt8, 8, 4, 1>(), resident_per_sm<TiledInt8, 8, 4, 2>()};
  }
  return choose(w, M, sc, num_sms, res);
}

template <class Dec, int J>
Status dispatch_rows(const bf16* x, const Weight& w, const LinearOut& out, int M, const Plan& p, const SplitScratch& sc,
                     const Exec& ex) {
  if (p.rows == 256) return launch_tiled<Dec, J, 8, 2>(x, w, out, M, p.splits, sc, ex);
  if (p.rows == 128) return launch_tiled<Dec, J, 4, 2>(x, w, out, M, p.splits, sc, ex);
  return launch_tiled<Dec, J, 4, 1>(x, w, out, M, p.splits, sc, ex);
}

template <class Dec>
Status dispatch(const bf16* x, const Weight& w, const LinearOut& out, int M, const Plan& p, const SplitScratch& sc,
                const Exec& ex) {
  if (M <= 16) return dispatch_rows<Dec, 2>(x, w, out, M, p, sc, ex);
  if (M <= 32) return dispatch_rows<Dec, 4>(x, w, out, M, p, sc, ex);
  return dispatch_rows<Dec, 8>(x, w, out, M, p, sc, ex);
}

}  // namespace

bool linear_wo_tiled_supported(const Weight& w) {
  if (w.K % 8 != 0) return false;
  if (w.format == WeightFormat::int8_wo) return true;
  if (w.format != WeightFormat::int4_awq) return false;
  const int G = w.group_size;
  return G == 16 || G == 32 || (G >= 64 && G % 64 == 0);
}

int linear_wo_tiled_splits(const Weight& w, int M, const SplitScratch& sc, int num_sms, int* rows) {
  const Plan p = plan_for(w, M, sc, num_sms);
  if (rows) *rows = p.rows;
  return p.splits;
}

Status linear_wo_tiled(const bf16* x, const Weight& w, const LinearOut& out, int M, const SplitScratch& sc,
                       int num_sms, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (M > kWoTiledMaxRows) return invalid("linear_wo_tiled", "at most 64 rows; use the GEMM path");
  if (!linear_wo_tiled_supported(w))
    return invalid("linear_wo_tiled", "int8_wo, or int4_awq in groups of 16, 32 or a multiple of 64, with K % 8 == 0");
  if (out.epi == Epilogue::swiglu && w.N % 2 != 0) return invalid("linear_wo_tiled", "SwiGLU needs an even N");
  const Plan p = plan_for(w, M, sc, num_sms);
  if (w.format == WeightFormat::int4_awq) return dispatch<TiledInt4>(x, w, out, M, p, sc, ex);
  return dispatch<TiledInt8>(x, w, out, M, p, sc, ex);
}

}  // namespace grpst::cuda
