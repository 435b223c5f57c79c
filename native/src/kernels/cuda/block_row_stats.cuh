// Row statistics of the activations (RMSNorm's 1 / rms, int8_sq's per-row amax) computed by the
// whole thread block: the streaming GEMV's prologue (linear_stream_kernel.cuh) and the GEMM paths'
// activation kernels (quantize.cu, one row per block) share them, so both normalize a row with the
// same bits. Blocks of kRowStatsThreads threads.
#pragma once
#include "device_utils.cuh"
#include "kernels.h"
#include "linear_common.cuh"

namespace grpst::cuda {
namespace {

constexpr int kRowStatsWarps = 8;
constexpr int kRowStatsThreads = kRowStatsWarps * 32;

// The prologue runs after the wait on the previous kernel, with the first weights already in
// flight, and each dependent round trip to the L2 in it (~0.3 us) delays the whole kernel.
// int8_sq's per-token amax of a(x) came from one warp per row walking all K columns, twice with a
// norm (rstd, then amax): at one token a sixth of its qkv kernel (12.2 against 10.1 us) and
// 0.97 ms of its decode step. Here every thread of the block takes chunks of the row, issuing
// kStatsBatch loads before using any, and the block reduces them. The runtime takes this at one
// token for every format (the other formats' steps 0.6-1% faster) and for int8_sq at every count
// (several tokens four rows at a time, block_rows_reduce); with 2-8 tokens the others keep one
// warp per row, even or faster than the block's four rows at a time (int4 b8 4.34 against 4.45 ms
// per step, int8_wo 4.05 against 4.15; docs/benchmarks-gpu-passes.md).
constexpr int kStatsBatch = 6;  // 8-column chunks per thread per batch: 12,288 columns in one

// One value per row m < M from every thread's chunks j = threadIdx.x + kRowStatsThreads * i of row m,
// combined per warp (op) and then across warps through part [kRowStatsWarps][8] into out[m]. `chunk`
// turns a loaded chunk (8 bf16) at column k into the thread's running value.
template <class Chunk, class Op>
__device__ __forceinline__ void block_row_reduce(const LinearIn& in, int M, int K, float init, Chunk&& chunk, Op&& op,
                                                  float* part, float* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n = K / 8;
  for (int m = 0; m < M; ++m) {
    const uint4* row = reinterpret_cast<const uint4*>(in.x + static_cast<size_t>(m) * K);
    float v = init;
    for (int j0 = threadIdx.x; j0 < n; j0 += kRowStatsThreads * kStatsBatch) {
      uint4 raw[kStatsBatch];
#pragma unroll
      for (int b = 0; b < kStatsBatch; ++b) {
        const int j = j0 + b * kRowStatsThreads;
        raw[b] = j < n ? __ldg(row + j) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int b = 0; b < kStatsBatch; ++b)
        if (j0 + b * kRowStatsThreads < n) v = chunk(m, (j0 + b * kRowStatsThreads) * 8, raw[b], v);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (lane == 0) part[warp * 8 + m] = v;
  }
  __syncthreads();
  if (threadIdx.x < M) {
    float v = part[threadIdx.x];
    for (int w = 1; w < kRowStatsWarps; ++w) v = op(v, part[w * 8 + threadIdx.x]);
    out[threadIdx.x] = v;
  }
}

// The same reduction over rows [0, M) kPrologueRows at a time (M <= 8): every thread loads its chunk
// of each of those rows before using any, so K = 4,096 costs two round trips to the L2 per four
// rows (block_row_reduce, a row at a time: one or two per row). Each thread adds its chunks of a
// row in the same order as block_row_reduce and the reduction is the same: the same bits.
template <class Chunk, class Op>
__device__ __forceinline__ void block_rows_reduce(const LinearIn& in, int M, int K, float init, Chunk&& chunk, Op&& op,
                                                   float* part, float* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n = K / 8;
  for (int m0 = 0; m0 < M; m0 += kPrologueRows) {
    float v[kPrologueRows];
#pragma unroll
    for (int i = 0; i < kPrologueRows; ++i) v[i] = init;
    for (int j = threadIdx.x; j < n; j += kRowStatsThreads) {
      uint4 raw[kPrologueRows];
#pragma unroll
      for (int i = 0; i < kPrologueRows; ++i)
        raw[i] = m0 + i < M ? __ldg(reinterpret_cast<const uint4*>(in.x + static_cast<size_t>(m0 + i) * K) + j)
                            : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int i = 0; i < kPrologueRows; ++i)
        if (m0 + i < M) v[i] = chunk(m0 + i, j * 8, raw[i], v[i]);
    }
#pragma unroll
    for (int i = 0; i < kPrologueRows; ++i) {
      if (m0 + i >= M) break;
      float r = v[i];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) r = op(r, __shfl_xor_sync(0xffffffffu, r, o));
      if (lane == 0) part[warp * 8 + m0 + i] = r;
    }
  }
  __syncthreads();
  if (threadIdx.x < M) {
    float r = part[threadIdx.x];
    for (int w = 1; w < kRowStatsWarps; ++w) r = op(r, part[w * 8 + threadIdx.x]);
    out[threadIdx.x] = r;
  }
}

template <bool kOneRow, class Chunk, class Op>
__device__ __forceinline__ void block_reduce_rows(const LinearIn& in, int M, int K, bool all_rows, float init,
                                              Chunk&& chunk, Op&& op, float* part, float* out) {
  if (!kOneRow && all_rows && M > 1) block_rows_reduce(in, M, K, init, chunk, op, part, out);
  else block_row_reduce(in, M, K, init, chunk, op, part, out);
}

// rstd[m] (1 without a norm) and, for int8_sq, amax[m] of a(x) for rows [0, M), M <= 8; the
// caller synchronizes before reading them.
template <bool kOneRow>
__device__ __forceinline__ void block_row_stats(const LinearIn& in, int M, int K, bool want_amax, bool all_rows,
                                                 float* rstd, float* amax, float* part) {
  if (in.norm_w) {
    auto sq = [&](int, int, const uint4& raw, float v) {
      float f[8];
      unpack8(raw, f);
#pragma unroll
      for (int e = 0; e < 8; ++e) v = fmaf(f[e], f[e], v);
      return v;
    };
    block_reduce_rows<kOneRow>(in, M, K, all_rows, 0.f, sq, [](float a, float b) { return a + b; }, part, rstd);
    // the thread that wrote row m's sum of squares turns it into rstd
    if (threadIdx.x < M) rstd[threadIdx.x] = rsqrtf(rstd[threadIdx.x] / static_cast<float>(K) + in.eps);
  } else if (threadIdx.x < M) {
    rstd[threadIdx.x] = 1.f;
  }
  if (!want_amax) return;
  __syncthreads();  // rstd is read below; part is reused
  auto mx = [&](int m, int k, const uint4& raw, float v) {
    float f[8];
    unpack8(raw, f);
    linear_transform8(in, k, rstd[m], f);
#pragma unroll
    for (int e = 0; e < 8; ++e) v = fmaxf(v, fabsf(f[e]));
    return v;
  };
  block_reduce_rows<kOneRow>(in, M, K, all_rows, 0.f, mx, [](float a, float b) { return fmaxf(a, b); }, part, amax);
}

// ---- one row loaded once ------------------------------------------------------------------------
// block_row_stats then a staging pass load the row two or three times (statistics, int8_sq's amax,
// the values), each a dependent round trip to the L2 after a reduction of the block. With up to C
// chunks of 8 columns per thread (chunk j = threadIdx.x + kRowStatsThreads * c) the row, its norm
// weights and its activation scales fit in registers: loaded once, the statistics reduced from
// them in block_row_reduce's order (the same bits), and the prologue applied from them. kNorm:
// the row has a norm (in.norm_w set), known at compile time or checked (kMaybeNorm).
constexpr int kMaybeNorm = 2;
template <int C, int kNorm>
struct RowChunks {
  uint4 raw[C], scale[C];
  float w8[C][8];
  __device__ __forceinline__ bool norm(const LinearIn& in) const { return kNorm == 1 || (kNorm == kMaybeNorm && in.norm_w); }
  __device__ __forceinline__ static bool has(int c, int K) { return static_cast<int>(threadIdx.x) + kRowStatsThreads * c < K / 8; }

  // Every load issued before any is used. x is the row itself (row 0 of in.x).
  __device__ __forceinline__ void load(const LinearIn& in, int K) {
    const uint4* row = reinterpret_cast<const uint4*>(in.x);
#pragma unroll
    for (int c = 0; c < C; ++c) {
      const int j = static_cast<int>(threadIdx.x) + kRowStatsThreads * c;
      const bool h = has(c, K);
      raw[c] = h ? __ldg(row + j) : make_uint4(0, 0, 0, 0);
      if (h && norm(in)) load_f32x8(in.norm_w + j * 8, w8[c]);
      scale[c] = h && in.act_scale ? *reinterpret_cast<const uint4*>(in.act_scale + j * 8) : make_uint4(0, 0, 0, 0);
    }
  }
  // linear_load8's transform of chunk c (zeros past K), its operands from registers.
  __device__ __forceinline__ void transform(const LinearIn& in, int K, int c, float r, float (&f)[8]) const {
    unpack8(raw[c], f);
    if (!has(c, K)) return;
    float s8[8];
    unpack8(scale[c], s8);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if (norm(in)) f[e] = round_bf16(w8[c][e] * round_bf16(f[e] * r));
      if (in.act_scale) f[e] = round_bf16(f[e] * s8[e]);
    }
  }
};

// One value per thread reduced by the block as block_row_reduce reduces a row (the warp, then the
// warps in order); thread 0 writes finish(total) to *out; every thread must call it, and it
// synchronizes before and after. part is [kRowStatsWarps * 8].
template <class Op, class Finish>
__device__ __forceinline__ void block_reduce_one(float v, Op op, Finish finish, float* part, float* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (lane == 0) part[warp * 8] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = part[0];
    for (int w = 1; w < kRowStatsWarps; ++w) t = op(t, part[w * 8]);
    *out = finish(t);
  }
  __syncthreads();
}

// block_row_stats for one row held in RowChunks: rstd[0] (1 without a norm) and, with want_amax,
// amax[0] of the transformed row; returns rstd[0].
template <int C, int kNorm>
__device__ __forceinline__ float row_chunks_stats(const LinearIn& in, int K, const RowChunks<C, kNorm>& rc, bool want_amax,
                                                  float* rstd, float* amax, float* part) {
  float r = 1.f;
  if (rc.norm(in)) {
    float v = 0.f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      float f[8];
      unpack8(rc.raw[c], f);  // zeros past K add nothing
#pragma unroll
      for (int e = 0; e < 8; ++e) v = fmaf(f[e], f[e], v);
    }
    block_reduce_one(v, [](float a, float b) { return a + b; },
                     [&](float sum) { return rsqrtf(sum / static_cast<float>(K) + in.eps); }, part, rstd);
    r = rstd[0];
  } else if (threadIdx.x == 0) {
    rstd[0] = 1.f;
  }
  if (want_amax) {
    float m = 0.f;
#pragma unroll
    for (int c = 0; c < C; ++c) {
      float f[8];
      rc.transform(in, K, c, r, f);
#pragma unroll
      for (int e = 0; e < 8; ++e) m = fmaxf(m, fabsf(f[e]));
    }
    block_reduce_one(m, [](float a, float b) { return fmaxf(a, b); }, [](float t) { return t; }, part, amax);
  }
  return r;
}

}  // namespace
}  // namespace grpst::cuda
