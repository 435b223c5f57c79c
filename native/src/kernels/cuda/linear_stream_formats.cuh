// The weight formats of the streaming GEMV (linear_stream.cu): how a lane finds its 16-byte
// weight pieces of an item (64 k columns of a 16-row tile) and multiplies them on the tensor
// cores, and how the block stages the activations in the layout each format reads.
#pragma once
#include <type_traits>

#include "device_utils.cuh"
#include "kernels.h"
#include "block_row_stats.cuh"
#include "linear_common.cuh"
#include "mma_utils.cuh"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

enum class XLayout { bf16_natural, bf16_frag, i8_natural };

// Element offsets into a weight: 64-bit in general; 32-bit signed in the exact one-token kernel
// (weights under 2 GiB, checked by its launcher), where the compiler may then fold each item's
// constant offset into the load instead of redoing 64-bit index arithmetic per item.
template <bool E>
using Off = std::conditional_t<E, int, size_t>;

// ---- formats -----------------------------------------------------------------------------------
enum class EpiConsts { none, channel, tensor };
// The constants a format's epilogue multiplies by (scale(), kEpi): none; per output channel (the
// kernel copies its first tile's 16 into shared memory before its wait and passes them as ch, or
// null: read from the weight); per tensor (x_scale, w_scale: ts, in shared memory, or null).
// kVecs uint4 per lane per item (64 k columns of 16 rows); kU items per round; kKpg items per
// group (int4; 1 otherwise). sources() gives where lane's pieces of an item are, ok[i] false for
// pieces past N or K (zeros; src[i] then points at the weight's start, valid but unread).

struct FmtBf16 {
  static constexpr XLayout kX = XLayout::bf16_natural;
  static constexpr int kVecs = 4, kU = 2, kKpg = 1;
  static constexpr bool kGroups = false;
  using Acc = float;
  template <bool E>
  __device__ static void sources(const Weight& W, int tile, int item, int lane, int, const void* (&src)[kVecs],
                                 bool (&ok)[kVecs]) {
    const int g = lane >> 2, t = lane & 3;
    const int k = item * 64 + 16 * t;
    const bf16* base = static_cast<const bf16*>(W.data);
    const int r0 = tile * 16 + g, r1 = r0 + 8;
    const bool a0 = E || r0 < W.N, a1 = E || r1 < W.N, k0 = E || k < W.K, k1 = E || k + 8 < W.K;
    ok[0] = a0 && k0;
    ok[1] = a0 && k1;
    ok[2] = a1 && k0;
    ok[3] = a1 && k1;
    src[0] = ok[0] ? base + static_cast<Off<E>>(r0) * W.K + k : W.data;
    src[1] = ok[1] ? base + static_cast<Off<E>>(r0) * W.K + k + 8 : W.data;
    src[2] = ok[2] ? base + static_cast<Off<E>>(r1) * W.K + k : W.data;
    src[3] = ok[3] ? base + static_cast<Off<E>>(r1) * W.K + k + 8 : W.data;
  }
  // x: 32 bytes = activations k = 64i + 16t .. +15 of token g.
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    uint32_t a[4];
    a[0] = v[0].x; a[1] = v[2].x; a[2] = v[0].y; a[3] = v[2].y;
    mma_bf16(acc, a, x[0].x, x[0].y);
    a[0] = v[0].z; a[1] = v[2].z; a[2] = v[0].w; a[3] = v[2].w;
    mma_bf16(acc, a, x[0].z, x[0].w);
    a[0] = v[1].x; a[1] = v[3].x; a[2] = v[1].y; a[3] = v[3].y;
    mma_bf16(acc, a, x[1].x, x[1].y);
    a[0] = v[1].z; a[1] = v[3].z; a[2] = v[1].w; a[3] = v[3].w;
    mma_bf16(acc, a, x[1].z, x[1].w);
  }
  static constexpr EpiConsts kEpi = EpiConsts::none;
  __device__ static float scale(float v, const Weight&, int, int, const float*, const float*, const float*) { return v; }
};

struct FmtInt8Wo {
  static constexpr XLayout kX = XLayout::bf16_frag;
  static constexpr int kVecs = 2, kU = 4, kKpg = 1;
  static constexpr bool kGroups = false;
  using Acc = float;
  template <bool E>
  __device__ static void sources(const Weight& W, int tile, int item, int lane, int nitems, const void* (&src)[kVecs],
                                 bool (&ok)[kVecs]) {
    const uint4* p = reinterpret_cast<const uint4*>(W.data) + ((static_cast<Off<E>>(tile) * nitems + item) * 32 + lane) * 2;
    src[0] = p;
    src[1] = p + 1;
    ok[0] = ok[1] = true;
  }
  // x: 8 words, (b0, b1) of the four k16 steps.
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    const uint32_t w8[8] = {v[0].x, v[0].y, v[0].z, v[0].w, v[1].x, v[1].y, v[1].z, v[1].w};
    const uint32_t xb[8] = {x[0].x, x[0].y, x[0].z, x[0].w, x[1].x, x[1].y, x[1].z, x[1].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t a[4];
      int8_words_to_bf16_frag(w8[2 * w], w8[2 * w + 1], a);
      mma_bf16(acc, a, xb[2 * w], xb[2 * w + 1]);
    }
  }
  static constexpr EpiConsts kEpi = EpiConsts::channel;
  __device__ static float scale(float v, const Weight& W, int n, int, const float*, const float* ch, const float*) {
    return v * (ch ? ch[n & 15] : W.channel_scale[n]);
  }
};

template <int KPG, int U = 8>
struct FmtInt4 {
  static constexpr XLayout kX = XLayout::bf16_frag;
  static constexpr int kVecs = 1, kU = U, kKpg = KPG;
  static constexpr bool kGroups = true;
  using Acc = float;
  template <bool E>
  __device__ static void sources(const Weight& W, int tile, int item, int lane, int nitems, const void* (&src)[kVecs],
                                 bool (&ok)[kVecs]) {
    src[0] = reinterpret_cast<const uint4*>(W.data) + (static_cast<Off<E>>(tile) * nitems + item) * 32 + lane;
    ok[0] = true;
  }
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    const uint32_t words[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
    const uint32_t xb[8] = {x[0].x, x[0].y, x[0].z, x[0].w, x[1].x, x[1].y, x[1].z, x[1].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t a[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = int4_pair_to_bf16x2(words[w] >> (4 * i));
      mma_bf16(acc, a, xb[2 * w], xb[2 * w + 1]);
    }
  }
  static constexpr EpiConsts kEpi = EpiConsts::none;
  __device__ static float scale(float v, const Weight&, int, int, const float*, const float*, const float*) { return v; }
};

template <bool kInt8, int U = 4>
struct FmtNatural8 {
  static constexpr XLayout kX = XLayout::i8_natural;
  static constexpr int kVecs = 2, kU = U, kKpg = 1;
  static constexpr bool kGroups = false;
  using Acc = std::conditional_t<kInt8, int, float>;
  template <bool E>
  __device__ static void sources(const Weight& W, int tile, int item, int lane, int, const void* (&src)[kVecs],
                                 bool (&ok)[kVecs]) {
    const int g = lane >> 2, t = lane & 3;
    const int k = item * 64 + 16 * t;
    const uint8_t* base = static_cast<const uint8_t*>(W.data);
    const int r0 = tile * 16 + g, r1 = r0 + 8;
    ok[0] = E || (r0 < W.N && k < W.K);
    ok[1] = E || (r1 < W.N && k < W.K);
    src[0] = ok[0] ? base + static_cast<Off<E>>(r0) * W.K + k : W.data;
    src[1] = ok[1] ? base + static_cast<Off<E>>(r1) * W.K + k : W.data;
  }
  // x: 16 bytes (k = 64i + 16t .. +15) in x[0].
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    uint32_t a[4];
    a[0] = v[0].x; a[1] = v[1].x; a[2] = v[0].y; a[3] = v[1].y;
    if constexpr (kInt8) mma_s8(acc, a, x[0].x, x[0].y); else mma_e4m3(acc, a, x[0].x, x[0].y);
    a[0] = v[0].z; a[1] = v[1].z; a[2] = v[0].w; a[3] = v[1].w;
    if constexpr (kInt8) mma_s8(acc, a, x[0].z, x[0].w); else mma_e4m3(acc, a, x[0].z, x[0].w);
  }
  static constexpr EpiConsts kEpi = kInt8 ? EpiConsts::channel : EpiConsts::tensor;
  __device__ static float scale(float v, const Weight& W, int n, int m, const float* rowq, const float* ch, const float* ts) {
    if constexpr (kInt8) return v * (rowq[m] / 127.f) * (ch ? ch[n & 15] : W.channel_scale[n]);
    else return ts ? v * ts[0] * ts[1] : v * (*W.x_scale) * (*W.w_scale);
  }
};

// Lane's pieces of an item into registers (streaming loads, zeros past N or K; E: none are).
template <class F, bool E>
__device__ __forceinline__ void load_item(const Weight& W, int tile, int item, int lane, int nitems,
                                          uint4 (&v)[F::kVecs]) {
  const void* src[F::kVecs];
  bool ok[F::kVecs];
  F::template sources<E>(W, tile, item, lane, nitems, src, ok);
#pragma unroll
  for (int i = 0; i < F::kVecs; ++i) v[i] = ok[i] ? ldg_stream(src[i]) : make_uint4(0, 0, 0, 0);
}

// ---- activation staging ------------------------------------------------------------------------

struct Geometry {
  int nitems;   // 64-column items per 16-row tile
  int nchunks;  // items grouped by kKpg (int4: the quantization groups)
  int rounds;   // rounds per tile per warp
  int xs;       // bytes per token row of the staged activations
  int kp;       // staged columns (zero past K)
  int ngroups;  // int4 groups (0 otherwise)
  int red_off;  // byte offset of the reduction buffers
  int ring_off;  // byte offset of the cp.async ring (kernels with one)
  int block_stats;  // 1: block_row_stats (the whole block); 0: linear_row_stats (a warp per row)
  int early_rounds;  // register kernel: weight rounds issued before the wait on the previous kernel (1 or 2)
  int fdiv;  // 1: fp8 / int8_sq staging divides by __fdiv_rn instead of div_by (the same bits; timing)
  int all_rows;  // 1: the prologue (stage_x, block_row_stats) loads several rows' chunks at once; 0: a row at a time
  int ks;        // K split: blocks of a cluster per tile, each with nitems (1/ks of the weight's) and kp columns
  int stage_once;  // 1: one token with a norm or an amax loads x once (stage_x_*_once); 0: block_row_stats, stage_x
  int one_row_batch;  // 1: stage_x at one row issues kOneRowBatch chunks' loads at once; 0: a chunk at a time
  int epi_early;      // 1: the epilogue's scales copied to shared memory before the wait; 0: loaded in the epilogue
};

// ---- row statistics by the whole block: block_row_stats.cuh ----------------------------------
static_assert(kThreads == kRowStatsThreads, "the row statistics assume the streaming GEMV's block");

// Row m's chunk j (8 prologue-applied activations at column k = 8j, zeros past K) into the
// format's layout; for int4 also its group's sum (segments of G/8 consecutive lanes share a group:
// every lane of the warp calls this with the same m).
template <class F>
__device__ __forceinline__ void stage_chunk(const Weight& W, const Geometry& geo, uint8_t* smem, float* sums, int m,
                                            int j, bool live, const float (&f)[8], float x_div, const float* rowq) {
  const int k = j * 8;
  uint8_t* row = smem + m * geo.xs;
  if (live) {
    if constexpr (F::kX == XLayout::bf16_natural) {
      *reinterpret_cast<uint4*>(row + k * 2) = pack8(f);
    } else if constexpr (F::kX == XLayout::bf16_frag) {
      // chunk j = 8 columns of k16 step w (first or second half): pair p goes to lane t = p
      const int item = j / 8, c = j % 8, w = c / 2, half = c & 1;
      uint32_t* dst = reinterpret_cast<uint32_t*>(row + item * 128) + w * 2 + half;
#pragma unroll
      for (int p = 0; p < 4; ++p) dst[p * 8] = pack_bf16x2(f[2 * p], f[2 * p + 1]);
    } else {
      constexpr bool kInt8 = std::is_same_v<typename F::Acc, int>;
      const float div = kInt8 ? (rowq[m] > 0.f ? rowq[m] / 127.f : 1.f) : x_div;
      const float inv = __frcp_rn(div);
      uint32_t lo = 0, hi = 0;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float a = geo.fdiv ? __fdiv_rn(f[e], div) : div_by(f[e], div, inv);
        const float b = geo.fdiv ? __fdiv_rn(f[e + 4], div) : div_by(f[e + 4], div, inv);
        const uint32_t b0 = kInt8 ? static_cast<uint8_t>(f32_to_i8(a)) : f32_to_e4m3(a);
        const uint32_t b1 = kInt8 ? static_cast<uint8_t>(f32_to_i8(b)) : f32_to_e4m3(b);
        lo |= b0 << (8 * e);
        hi |= b1 << (8 * e);
      }
      *reinterpret_cast<uint2*>(row + k) = make_uint2(lo, hi);
    }
  }
  if constexpr (F::kGroups) {
    // the values the mma multiplies are the bf16-rounded ones: sum those
    const int seg = W.group_size / 8;
    float s = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) s += round_bf16(f[e]);
    for (int o = 1; o < seg; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (live && (threadIdx.x & (seg - 1)) == 0) sums[m * geo.ngroups + j / seg] = s;
  }
}

// Stages the prologue-applied activations of M tokens in the format's layout; for int4 also the
// per-group sums. With geo.all_rows (the default) and M > 1, each thread takes one chunk of 8
// columns of every row, kPrologueRows rows' loads issued together: K = 4,096 then costs two round
// trips to the L2 per thread per four rows. A row at a time (M = 1, or
// GRPST_CUDA_PROLOGUE_ALL_ROWS=0) the chunks of the M rows are dealt out in turn, one dependent
// load each: 16 round trips at 8 tokens, about 5 us of every kernel's prologue on an H200.
// With a K split the block stages only its columns [col0, col0 + kp) of the rows (row stride K).
// stage_x's chunks per thread loaded at once at one row (its caller passes 1, a chunk at a time,
// where the registers would spill).
constexpr int kOneRowBatch = 3;
template <class F, bool kOneRow, int kBatch = kOneRowBatch>
__device__ void stage_x(const LinearIn& in, const Weight& W, int M, const Geometry& geo, uint8_t* smem,
                        const float* rstd, const float* rowq, int col0 = 0) {
  const int K = W.K, nch = geo.kp / 8, lane = threadIdx.x & 31;
  float* sums = reinterpret_cast<float*>(smem + M * geo.xs);
  float x_div = 1.f;
  if constexpr (F::kX == XLayout::i8_natural && !std::is_same_v<typename F::Acc, int>) x_div = *W.x_scale;
  if constexpr (!kOneRow) {
    if (M > 1 && geo.all_rows) {
      // every lane of a warp takes part (stage_chunk's group sums shuffle), live or not
      for (int base = (threadIdx.x & ~31); base < nch; base += kThreads) {
        const int j = base + lane;
        const bool live = j < nch;
        load_rows8(in, M, K, col0 + j * 8, live && col0 + j * 8 < K, rstd, [&](int m, const float (&f)[8]) {
          stage_chunk<F>(W, geo, smem, sums, m, j, live, f, x_div, rowq);
        });
      }
      return;
    }
  }
  if (kBatch > 1 && M == 1 && geo.one_row_batch) {
    // One row (no statistics from x here: o_proj, down_proj at one token): kBatch chunks'
    // loads of x and the activation scale issued before any is staged, not one dependent round
    // trip to the L2 per chunk (down_proj's K = 12,288 is six per thread). The same bits.
    for (int base0 = (threadIdx.x & ~31); base0 < nch; base0 += kBatch * kThreads) {
      uint4 raw[kBatch], sc[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int j = base0 + b * kThreads + lane, k = col0 + j * 8;
        const bool has = j < nch && k < K;
        raw[b] = has ? __ldg(reinterpret_cast<const uint4*>(in.x + k)) : make_uint4(0, 0, 0, 0);
        sc[b] = has && in.act_scale ? __ldg(reinterpret_cast<const uint4*>(in.act_scale + k)) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int base = base0 + b * kThreads;
        if (base >= nch) break;  // the same for every lane of the warp (stage_chunk's shuffles)
        const int j = base + lane, k = col0 + j * 8;
        float f[8];
        unpack8(raw[b], f);
        if (j < nch && k < K) linear_transform8_loaded(in, k, rstd[0], sc[b], f);
        stage_chunk<F>(W, geo, smem, sums, 0, j, j < nch, f, x_div, rowq);
      }
    }
    return;
  }
  const int total = M * nch;
  for (int base = (threadIdx.x & ~31); base < total; base += kThreads) {
    const int idx = base + lane;
    const bool live = idx < total;
    const int m = live ? idx / nch : 0, j = live ? idx % nch : 0;
    float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (live && col0 + j * 8 < K) linear_load8(in, K, m, col0 + j * 8, rstd[m], f);
    stage_chunk<F>(W, geo, smem, sums, m, j, live, f, x_div, rowq);
  }
}

// One token, K <= kThreads * kStageOnceChunks * 8, with an RMSNorm (int8_sq, whose amax needs
// one more pass, takes stage_x_amax_once): instead of block_row_stats then stage_x, which load x
// twice (the second a dependent round trip to the L2 after the block's reduction, while the
// GEMV's first weights wait in registers), x is loaded once into RowChunks (block_row_stats.cuh),
// its 1 / rms reduced from there and the same registers staged: the same bits. rstd[0] gets
// 1 / rms; part is [kWarps * 8] of scratch. The caller synchronizes before reading the staging.
// Measured on an H200, decode steps at 512 keys, x loaded for each pass -> once: bf16 4.357 ->
// 4.280 ms, int4 2.116 -> 2.065, fp8 2.792 -> 2.742, int8_wo 2.891 -> 2.804, int8_sq 2.964 -> 2.802.
constexpr int kStageOnceChunks = 2;
template <class F>
__device__ void stage_x_once(const LinearIn& in, const Weight& W, const Geometry& geo, uint8_t* smem, float* rstd,
                             const float* rowq, float* part) {
  const int K = W.K, nch = geo.kp / 8, lane = threadIdx.x & 31;
  RowChunks<kStageOnceChunks, 1> rc;
  rc.load(in, K);
  // fp8's activation scale loaded with x, not after the reduction's barriers (a round trip there)
  float x_div = 1.f;
  if constexpr (F::kX == XLayout::i8_natural && !std::is_same_v<typename F::Acc, int>) x_div = *W.x_scale;
  const float r = row_chunks_stats(in, K, rc, false, rstd, nullptr, part);
  float* sums = reinterpret_cast<float*>(smem + geo.xs);
#pragma unroll
  for (int c = 0; c < kStageOnceChunks; ++c) {
    const int base = (static_cast<int>(threadIdx.x) & ~31) + kThreads * c;
    if (base >= nch) break;  // the same for every lane of the warp (stage_chunk's shuffles)
    const int j = base + lane;
    float f[8];
    rc.transform(in, K, c, r, f);
    stage_chunk<F>(W, geo, smem, sums, 0, j, j < nch, f, x_div, rowq);
  }
}

// int8_sq's one token, K <= kThreads * kStageOnceChunks * 8, with or without an RMSNorm: its
// per-token amax of the transformed row made block_row_stats load x once more (and stage_x a
// third time). Here x is loaded once; the sum of squares (with a norm), then the amax are reduced
// by the block from registers, in block_row_stats' order: the same bits. rstd[0] gets 1 / rms (1
// without a norm), amax[0] the amax; part is [kWarps * 8] of scratch. Unlike stage_x_once it keeps
// the transformed values (for the amax, then the staging) rather than RowChunks' raw chunks:
// through RowChunks (transformed twice) int8_sq's one-token step measured 2.861 ms against 2.802
// on an H200.
template <class F>
__device__ void stage_x_amax_once(const LinearIn& in, const Weight& W, const Geometry& geo, uint8_t* smem, float* rstd,
                                  float* amax, float* part) {
  const int K = W.K, n = K / 8, nch = geo.kp / 8, lane = threadIdx.x & 31;
  const uint4* row = reinterpret_cast<const uint4*>(in.x);
  float f[kStageOnceChunks][8];  // the row's chunks, then transformed (zeros past K)
  float w8[kStageOnceChunks][8];
  uint4 scale[kStageOnceChunks];
  float v = 0.f;
#pragma unroll
  for (int c = 0; c < kStageOnceChunks; ++c) {  // every load issued before any is used
    const int j = static_cast<int>(threadIdx.x) + kThreads * c;
    unpack8(j < n ? __ldg(row + j) : make_uint4(0, 0, 0, 0), f[c]);
    if (j < n && in.norm_w) load_f32x8(in.norm_w + j * 8, w8[c]);
    scale[c] = j < n && in.act_scale ? *reinterpret_cast<const uint4*>(in.act_scale + j * 8) : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int c = 0; c < kStageOnceChunks; ++c)
#pragma unroll
    for (int e = 0; e < 8; ++e) v = fmaf(f[c][e], f[c][e], v);  // zeros add nothing
  if (in.norm_w)
    block_reduce_one(v, [](float a, float b) { return a + b; },
                     [&](float sum) { return rsqrtf(sum / static_cast<float>(K) + in.eps); }, part, rstd);
  else if (threadIdx.x == 0)
    rstd[0] = 1.f;
  const float r = in.norm_w ? rstd[0] : 1.f;
  float m = 0.f;
#pragma unroll
  for (int c = 0; c < kStageOnceChunks; ++c) {
    const int j = static_cast<int>(threadIdx.x) + kThreads * c;
    if (j >= n) continue;
    float s8[8];  // linear_transform8, its operands from registers
    unpack8(scale[c], s8);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if (in.norm_w) f[c][e] = round_bf16(w8[c][e] * round_bf16(f[c][e] * r));
      if (in.act_scale) f[c][e] = round_bf16(f[c][e] * s8[e]);
      m = fmaxf(m, fabsf(f[c][e]));
    }
  }
  block_reduce_one(m, [](float a, float b) { return fmaxf(a, b); }, [](float t) { return t; }, part, amax);
  float* sums = reinterpret_cast<float*>(smem + geo.xs);
#pragma unroll
  for (int c = 0; c < kStageOnceChunks; ++c) {
    const int base = (static_cast<int>(threadIdx.x) & ~31) + kThreads * c;
    if (base >= nch) break;  // the same for every lane of the warp
    stage_chunk<F>(W, geo, smem, sums, 0, base + lane, base + lane < nch, f[c], 1.f, amax);
  }
}

}  // namespace
}  // namespace grpst::cuda
