// Weight-streaming tensor-core GEMV for decode (M <= 8 tokens), every weight format. Decode is
// bound by weight bytes, so the kernel is built around streaming them at copy bandwidth:
//  - a persistent grid (two 8-warp blocks per SM): the activations are normalised / quantized
//    into shared memory once per block, not once per 16 output rows;
//  - a warp owns 16 output rows (one m16n8 tile, tokens as the n columns) and a share of K; it
//    keeps two rounds of 16-byte weight loads in flight (the next round is issued before the
//    current one is multiplied), and the first round before waiting on the previous kernel;
//  - weights feed mma.sync A fragments straight from the loaded registers:
//      bf16      natural [N,K]: lane (g, t) loads rows g, g+8 at k = 64i + 16t; the k order inside
//                the mma is permuted, and the activations are read with the same permutation
//      fp8/int8_sq natural [N,K]: the same permutation with m16n8k32 e4m3 / s8 mma
//      int8_wo   fragment-packed (repack_int8_wo): bytes -> exact bf16 through the fp32 magic
//      int4_awq  fragment-packed (repack_int4): nibble | 0x4300 is the bf16 of 128 + q, so the
//                mma sums (128 + q) x per group; the group is finished in fp32 as
//                s * (sum - (128 + z) * sum(x)) with sum(x) per group staged with the activations
//  - the K shares of a tile are summed through shared memory, then the fused epilogue (scales,
//    residual add, SwiGLU, fp32 logits).
#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "device_utils.cuh"
#include "kernels.h"
#include "linear_common.cuh"
#include "mma_utils.cuh"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kBlocksPerSm = 2;
constexpr size_t kMaxSmem = 110 * 1024;  // two blocks per SM
// The int4 / fp8 occupancy variant: three blocks per SM with half the loads per round (fewer
// registers), more warps to hide latency. Taken at one row for matrices of more 16-row tiles than
// the standard grid has blocks (at the 8B shape qkv, gate_up and lm_head, where it measured 4-10%
// faster on an H200; o_proj and down_proj, one tile per block, measured 25-40% slower with it).
// GRPST_CUDA_STREAM_OCCUPANCY=2 or 3 forces one for every shape (tests and benches).
constexpr int kDenseBlocksPerSm = 3;
constexpr size_t kDenseMaxSmem = 72 * 1024;

enum class XLayout { bf16_natural, bf16_frag, i8_natural };

// ---- formats -----------------------------------------------------------------------------------
// kVecs uint4 per lane per item (64 k columns of 16 rows); kU items per round; kKpg items per
// group (int4; 1 otherwise).

struct FmtBf16 {
  static constexpr XLayout kX = XLayout::bf16_natural;
  static constexpr int kVecs = 4, kU = 2, kKpg = 1;
  static constexpr bool kGroups = false;
  using Acc = float;
  __device__ static void load(const Weight& W, int tile, int item, int lane, int nitems, uint4 (&v)[kVecs]) {
    const int g = lane >> 2, t = lane & 3;
    const int k = item * 64 + 16 * t;
    const bf16* base = static_cast<const bf16*>(W.data);
    const int r0 = tile * 16 + g, r1 = r0 + 8;
    const uint4 z = make_uint4(0, 0, 0, 0);
    const bool a0 = r0 < W.N, a1 = r1 < W.N, k0 = k < W.K, k1 = k + 8 < W.K;
    v[0] = a0 && k0 ? ldg_stream(base + static_cast<size_t>(r0) * W.K + k) : z;
    v[1] = a0 && k1 ? ldg_stream(base + static_cast<size_t>(r0) * W.K + k + 8) : z;
    v[2] = a1 && k0 ? ldg_stream(base + static_cast<size_t>(r1) * W.K + k) : z;
    v[3] = a1 && k1 ? ldg_stream(base + static_cast<size_t>(r1) * W.K + k + 8) : z;
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
  __device__ static float scale(float v, const Weight&, int, int, const float*) { return v; }
};

__device__ __forceinline__ float i8_byte_to_f32(uint32_t xored, int i) {
  // xored = bytes ^ 0x80: 2^23 + (q + 128) as a float, minus that offset, is q exactly
  return __uint_as_float(__byte_perm(xored, 0x4B000000u, 0x7440u + i)) - 8388736.f;
}

struct FmtInt8Wo {
  static constexpr XLayout kX = XLayout::bf16_frag;
  static constexpr int kVecs = 2, kU = 4, kKpg = 1;
  static constexpr bool kGroups = false;
  using Acc = float;
  __device__ static void load(const Weight& W, int tile, int item, int lane, int nitems, uint4 (&v)[kVecs]) {
    const uint4* p = reinterpret_cast<const uint4*>(W.data) + ((static_cast<size_t>(tile) * nitems + item) * 32 + lane) * 2;
    v[0] = ldg_stream(p);
    v[1] = ldg_stream(p + 1);
  }
  // x: 8 words, (b0, b1) of the four k16 steps.
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    const uint32_t w8[8] = {v[0].x, v[0].y, v[0].z, v[0].w, v[1].x, v[1].y, v[1].z, v[1].w};
    const uint32_t xb[8] = {x[0].x, x[0].y, x[0].z, x[0].w, x[1].x, x[1].y, x[1].z, x[1].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const uint32_t x0 = w8[2 * w] ^ 0x80808080u, x1 = w8[2 * w + 1] ^ 0x80808080u;
      uint32_t a[4];
      a[0] = pack_bf16x2(i8_byte_to_f32(x0, 0), i8_byte_to_f32(x0, 1));
      a[1] = pack_bf16x2(i8_byte_to_f32(x0, 2), i8_byte_to_f32(x0, 3));
      a[2] = pack_bf16x2(i8_byte_to_f32(x1, 0), i8_byte_to_f32(x1, 1));
      a[3] = pack_bf16x2(i8_byte_to_f32(x1, 2), i8_byte_to_f32(x1, 3));
      mma_bf16(acc, a, xb[2 * w], xb[2 * w + 1]);
    }
  }
  __device__ static float scale(float v, const Weight& W, int n, int, const float*) { return v * W.channel_scale[n]; }
};

template <int KPG, int U = 8>
struct FmtInt4 {
  static constexpr XLayout kX = XLayout::bf16_frag;
  static constexpr int kVecs = 1, kU = U, kKpg = KPG;
  static constexpr bool kGroups = true;
  using Acc = float;
  __device__ static void load(const Weight& W, int tile, int item, int lane, int nitems, uint4 (&v)[kVecs]) {
    v[0] = ldg_stream(reinterpret_cast<const uint4*>(W.data) + (static_cast<size_t>(tile) * nitems + item) * 32 + lane);
  }
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    const uint32_t words[4] = {v[0].x, v[0].y, v[0].z, v[0].w};
    const uint32_t xb[8] = {x[0].x, x[0].y, x[0].z, x[0].w, x[1].x, x[1].y, x[1].z, x[1].w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t a[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = ((words[w] >> (4 * i)) & 0x000F000Fu) | 0x43004300u;
      mma_bf16(acc, a, xb[2 * w], xb[2 * w + 1]);
    }
  }
  __device__ static float scale(float v, const Weight&, int, int, const float*) { return v; }
};

template <bool kInt8, int U = 4>
struct FmtNatural8 {
  static constexpr XLayout kX = XLayout::i8_natural;
  static constexpr int kVecs = 2, kU = U, kKpg = 1;
  static constexpr bool kGroups = false;
  using Acc = std::conditional_t<kInt8, int, float>;
  __device__ static void load(const Weight& W, int tile, int item, int lane, int nitems, uint4 (&v)[kVecs]) {
    const int g = lane >> 2, t = lane & 3;
    const int k = item * 64 + 16 * t;
    const uint8_t* base = static_cast<const uint8_t*>(W.data);
    const int r0 = tile * 16 + g, r1 = r0 + 8;
    const uint4 z = make_uint4(0, 0, 0, 0);
    v[0] = r0 < W.N && k < W.K ? ldg_stream(base + static_cast<size_t>(r0) * W.K + k) : z;
    v[1] = r1 < W.N && k < W.K ? ldg_stream(base + static_cast<size_t>(r1) * W.K + k) : z;
  }
  // x: 16 bytes (k = 64i + 16t .. +15) in x[0].
  __device__ static void compute(const uint4 (&v)[kVecs], const uint4 (&x)[2], Acc (&acc)[4]) {
    uint32_t a[4];
    a[0] = v[0].x; a[1] = v[1].x; a[2] = v[0].y; a[3] = v[1].y;
    if constexpr (kInt8) mma_s8(acc, a, x[0].x, x[0].y); else mma_e4m3(acc, a, x[0].x, x[0].y);
    a[0] = v[0].z; a[1] = v[1].z; a[2] = v[0].w; a[3] = v[1].w;
    if constexpr (kInt8) mma_s8(acc, a, x[0].z, x[0].w); else mma_e4m3(acc, a, x[0].z, x[0].w);
  }
  __device__ static float scale(float v, const Weight& W, int n, int m, const float* rowq) {
    if constexpr (kInt8) return v * (rowq[m] / 127.f) * W.channel_scale[n];
    else return v * (*W.x_scale) * (*W.w_scale);
  }
};

// ---- activation staging ------------------------------------------------------------------------

struct Geometry {
  int nitems;   // 64-column items per 16-row tile
  int nchunks;  // items grouped by kKpg (int4: the quantization groups)
  int rounds;   // rounds per tile per warp
  int xs;       // bytes per token row of the staged activations
  int kp;       // staged columns (zero past K)
  int ngroups;  // int4 groups (0 otherwise)
  int red_off;  // byte offset of the reduction buffers
};

// Stages the prologue-applied activations of M tokens in the format's layout; for int4 also the
// per-group sums (segments of G/8 consecutive lanes share a group).
template <class F>
__device__ void stage_x(const LinearIn& in, const Weight& W, int M, const Geometry& geo, uint8_t* smem,
                        const float* rstd, const float* rowq) {
  const int K = W.K, nch = geo.kp / 8;
  float* sums = reinterpret_cast<float*>(smem + M * geo.xs);
  const int seg = F::kGroups ? W.group_size / 8 : 1;
  float x_div = 1.f;
  if constexpr (F::kX == XLayout::i8_natural && !std::is_same_v<typename F::Acc, int>) x_div = *W.x_scale;
  const int total = M * nch;
  for (int base = (threadIdx.x & ~31); base < total; base += kThreads) {
    const int idx = base + (threadIdx.x & 31);
    const bool live = idx < total;
    const int m = live ? idx / nch : 0, j = live ? idx % nch : 0;
    const int k = j * 8;
    float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (live && k < K) linear_load8(in, K, m, k, rstd[m], f);
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
        uint32_t lo = 0, hi = 0;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float a = __fdiv_rn(f[e], div), b = __fdiv_rn(f[e + 4], div);
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
      float s = 0.f;
#pragma unroll
      for (int e = 0; e < 8; ++e) s += round_bf16(f[e]);
      for (int o = 1; o < seg; o <<= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      if (live && (threadIdx.x & (seg - 1)) == 0) sums[m * geo.ngroups + j / seg] = s;
    }
  }
}

// ---- the kernel --------------------------------------------------------------------------------

template <class F, int BPS>
__global__ void __launch_bounds__(kThreads, BPS) linear_stream_kernel(LinearIn in, Weight W, LinearOut out, int M,
                                                                      Geometry geo) {
  using Acc = typename F::Acc;
  constexpr int U = F::kU, V = F::kVecs, KPG = F::kKpg, GPR = U / KPG;
  static_assert(U % KPG == 0, "groups must not straddle rounds");
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ float rstd[8], rowq[8];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int ntiles = (W.N + 15) / 16;
  const int my_tiles = blockIdx.x < ntiles ? (ntiles - 1 - blockIdx.x) / gridDim.x + 1 : 0;
  const int R = geo.rounds, total = my_tiles * R;
  const float* sums = reinterpret_cast<const float*>(smem + M * geo.xs);
  Acc* red = reinterpret_cast<Acc*>(smem + geo.red_off);  // [2][kWarps][16][8]

  // Slot u of round r: the warp's (r * U + u)-th item of the tile: chunk warp + kWarps * (j / KPG).
  auto chunk_of = [&](int r, int u) { return warp + kWarps * ((r * U + u) / KPG); };
  auto item_of = [&](int r, int u) {
    const int c = chunk_of(r, u), it = c * KPG + (r * U + u) % KPG;
    return c < geo.nchunks && it < geo.nitems ? it : -1;
  };

  uint4 bufA[U][V], bufB[U][V];
  uint32_t sA[GPR], zA[GPR], sB[GPR], zB[GPR];  // int4: (scale, 128 + zero) of rows (g, g + 8)
  auto load_round = [&](uint4 (&buf)[U][V], uint32_t (&sc)[GPR], uint32_t (&zc)[GPR], int tile, int r) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = item_of(r, u);
      if (it >= 0) F::load(W, tile, it, lane, geo.nitems, buf[u]);
    }
    if constexpr (F::kGroups) {
#pragma unroll
      for (int q = 0; q < GPR; ++q) {
        const int c = chunk_of(r, q * KPG);
        sc[q] = zc[q] = 0x43084308u;  // 136: unused when c is out of range
        if (c < geo.nchunks) {
          const size_t gb = (static_cast<size_t>(tile) * geo.ngroups + c) * 16;
          const uint16_t* sp = reinterpret_cast<const uint16_t*>(W.group_scale) + gb;
          sc[q] = static_cast<uint32_t>(__ldg(sp + g)) | (static_cast<uint32_t>(__ldg(sp + g + 8)) << 16);
          if (W.group_zero) {
            const uint16_t* zp = reinterpret_cast<const uint16_t*>(W.group_zero) + gb;
            zc[q] = static_cast<uint32_t>(__ldg(zp + g)) | (static_cast<uint32_t>(__ldg(zp + g + 8)) << 16);
          }
        }
      }
    }
  };

  int tile = blockIdx.x;
  if (total > 0) load_round(bufA, sA, zA, tile, 0);
  griddep_wait();
  griddep_launch_dependents();
  linear_row_stats(in, M, W.K, F::kX == XLayout::i8_natural && std::is_same_v<Acc, int>, rstd, rowq);
  __syncthreads();
  stage_x<F>(in, W, M, geo, smem, rstd, rowq);
  __syncthreads();

  Acc acc[4] = {0, 0, 0, 0};
  int r = 0, tile_iter = 0;
  const bool x_ok = g < M;

  auto compute_round = [&](const uint4 (&buf)[U][V], const uint32_t (&sc)[GPR], const uint32_t (&zc)[GPR]) {
    Acc ag[4] = {0, 0, 0, 0};
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = item_of(r, u);
      if (it >= 0) {
        uint4 x[2] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
        if (x_ok) {
          const uint8_t* row = smem + g * geo.xs;
          if constexpr (F::kX == XLayout::bf16_natural) {
            const uint4* p = reinterpret_cast<const uint4*>(row + (it * 64 + 16 * t) * 2);
            x[0] = p[0];
            x[1] = p[1];
          } else if constexpr (F::kX == XLayout::bf16_frag) {
            const uint4* p = reinterpret_cast<const uint4*>(row + it * 128 + t * 32);
            x[0] = p[0];
            x[1] = p[1];
          } else {
            x[0] = *reinterpret_cast<const uint4*>(row + it * 64 + 16 * t);
          }
        }
        if constexpr (F::kGroups) F::compute(buf[u], x, ag);
        else F::compute(buf[u], x, acc);
      }
      if constexpr (F::kGroups) {
        if (u % KPG == KPG - 1) {
          const int c = chunk_of(r, u);
          if (c < geo.nchunks) {
            const int q = u / KPG;
            const float s0 = bf16_lo(sc[q]), s1 = bf16_hi(sc[q]);
            const float z0 = bf16_lo(zc[q]), z1 = bf16_hi(zc[q]);
            const float x0 = 2 * t < M ? sums[(2 * t) * geo.ngroups + c] : 0.f;
            const float x1 = 2 * t + 1 < M ? sums[(2 * t + 1) * geo.ngroups + c] : 0.f;
            acc[0] = fmaf(s0, ag[0] - z0 * x0, acc[0]);
            acc[1] = fmaf(s0, ag[1] - z0 * x1, acc[1]);
            acc[2] = fmaf(s1, ag[2] - z1 * x0, acc[2]);
            acc[3] = fmaf(s1, ag[3] - z1 * x1, acc[3]);
          }
          ag[0] = ag[1] = ag[2] = ag[3] = 0;
        }
      }
    }
  };

  // The K shares of the tile are summed through shared memory, then the fused epilogue.
  auto finish_tile = [&]() {
    Acc* rb = red + (tile_iter & 1) * (kWarps * 16 * 8);
    Acc* mine = rb + warp * 16 * 8;
    mine[g * 8 + 2 * t] = acc[0];
    mine[g * 8 + 2 * t + 1] = acc[1];
    mine[(g + 8) * 8 + 2 * t] = acc[2];
    mine[(g + 8) * 8 + 2 * t + 1] = acc[3];
    __syncthreads();
    auto row_sum = [&](int rr, int m) {
      Acc s = 0;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) s += rb[(w * 16 + rr) * 8 + m];
      return static_cast<float>(s);
    };
    const int N = W.N;
    if (out.epi == Epilogue::swiglu) {
      for (int idx = threadIdx.x; idx < 8 * M; idx += kThreads) {
        const int p = idx / M, m = idx % M, n = tile * 16 + 2 * p;
        if (n + 1 >= N) continue;
        const float gate = F::scale(row_sum(2 * p, m), W, n, m, rowq);
        const float up = F::scale(row_sum(2 * p + 1, m), W, n + 1, m, rowq);
        linear_store_swiglu(out, N, m, n / 2, gate, up);
      }
    } else {
      for (int idx = threadIdx.x; idx < 16 * M; idx += kThreads) {
        const int rr = idx / M, m = idx % M, n = tile * 16 + rr;
        if (n < N) linear_store(out, N, m, n, F::scale(row_sum(rr, m), W, n, m, rowq));
      }
    }
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
    ++tile_iter;
    tile += gridDim.x;
  };

  // Rounds alternate between the two buffers; the next round is loaded before this one is used.
  auto next_pos = [&](int& nt, int& nr) {
    nr = r + 1;
    nt = tile;
    if (nr == R) {
      nr = 0;
      nt = tile + gridDim.x;
    }
  };
  for (int qd = 0; qd < total; qd += 2) {
    int nt, nr;
    next_pos(nt, nr);
    if (qd + 1 < total) load_round(bufB, sB, zB, nt, nr);
    compute_round(bufA, sA, zA);
    if (++r == R) {
      r = 0;
      finish_tile();
    }
    if (qd + 1 >= total) break;
    next_pos(nt, nr);
    if (qd + 2 < total) load_round(bufA, sA, zA, nt, nr);
    compute_round(bufB, sB, zB);
    if (++r == R) {
      r = 0;
      finish_tile();
    }
  }
}

int sm_count() {
  static int count = 0;
  if (count == 0) {
    int dev = 0;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || count <= 0) count = 132;
  }
  return count;
}

template <class F>
Geometry geometry(const Weight& w, int M) {
  Geometry geo{};
  geo.nitems = ceil_div(w.K, 64);
  geo.nchunks = ceil_div(geo.nitems, F::kKpg);
  const int ipw = ceil_div(geo.nchunks, kWarps) * F::kKpg;
  geo.rounds = ceil_div(ipw, F::kU);
  geo.kp = geo.nitems * 64;
  if (F::kGroups) {
    geo.ngroups = ceil_div(w.K, w.group_size);
    geo.kp = geo.ngroups * w.group_size;
  }
  switch (F::kX) {
    case XLayout::bf16_natural: geo.xs = geo.kp * 2 + 16; break;
    case XLayout::bf16_frag: geo.xs = geo.nitems * 128 + 16; break;
    case XLayout::i8_natural: geo.xs = (geo.kp + 127) / 128 * 128 + 64; break;
  }
  // the int4 staging writes whole groups: make room for the frag layout of kp columns
  if (F::kGroups) geo.xs = std::max(geo.xs, geo.kp / 64 * 128 + 16);
  const int sums = F::kGroups ? (M * geo.ngroups * 4 + 15) / 16 * 16 : 0;
  geo.red_off = M * geo.xs + sums;
  return geo;
}

template <class F>
size_t smem_bytes(const Geometry& geo) {
  return static_cast<size_t>(geo.red_off) + 2 * kWarps * 16 * 8 * sizeof(typename F::Acc);
}

template <class F, int BPS = kBlocksPerSm>
Status launch_stream(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  const Geometry geo = geometry<F>(w, M);
  const size_t smem = smem_bytes<F>(geo);
  auto kernel = linear_stream_kernel<F, BPS>;
  GRPST_TRY(allow_smem("linear_stream", kernel, smem));
  const int ntiles = ceil_div(w.N, 16);
  const int blocks = std::min(ntiles, BPS * sm_count());
  return launch("linear_stream", kernel, dim3(blocks), dim3(kThreads), smem, ex, in, w, out, M, geo);
}

template <class F>
bool fits(const Weight& w, int M, size_t max_smem = kMaxSmem) {
  return smem_bytes<F>(geometry<F>(w, M)) <= max_smem;
}

// Whether to take the occupancy variant F (three blocks per SM); see kDenseBlocksPerSm.
template <class F>
bool dense_wanted(const Weight& w, int M) {
  if (!fits<F>(w, M, kDenseMaxSmem)) return false;
  const char* env = std::getenv("GRPST_CUDA_STREAM_OCCUPANCY");
  if (env && (env[0] == '2' || env[0] == '3')) return env[0] == '3';
  return M == 1 && ceil_div(w.N, 16) > kBlocksPerSm * sm_count();
}

}  // namespace

bool linear_stream_supported(const Weight& w, int M) {
  if (M < 1 || M > kStreamMaxRows || w.N <= 0 || w.K <= 0) return false;
  switch (w.format) {
    case WeightFormat::bf16: return w.K % 8 == 0 && fits<FmtBf16>(w, M);
    case WeightFormat::int8_wo: return fits<FmtInt8Wo>(w, M);
    case WeightFormat::fp8: return w.K % 16 == 0 && fits<FmtNatural8<false>>(w, M);
    case WeightFormat::int8_sq: return w.K % 16 == 0 && fits<FmtNatural8<true>>(w, M);
    case WeightFormat::int4_awq:
      if (w.group_size == 64) return fits<FmtInt4<1>>(w, M);
      if (w.group_size == 128) return fits<FmtInt4<2>>(w, M);
      if (w.group_size == 256) return fits<FmtInt4<4>>(w, M);
      return false;
  }
  return false;
}

Status linear_stream(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (!linear_stream_supported(w, M))
    return invalid("linear_stream", "unsupported shape or format (check linear_stream_supported first)");
  if (out.epi == Epilogue::swiglu && w.N % 2 != 0) return invalid("linear_stream", "SwiGLU needs an even N");
  switch (w.format) {
    case WeightFormat::bf16: return launch_stream<FmtBf16>(in, w, out, M, ex);
    case WeightFormat::int8_wo: return launch_stream<FmtInt8Wo>(in, w, out, M, ex);
    case WeightFormat::fp8:
      if (dense_wanted<FmtNatural8<false, 2>>(w, M))
        return launch_stream<FmtNatural8<false, 2>, kDenseBlocksPerSm>(in, w, out, M, ex);
      return launch_stream<FmtNatural8<false>>(in, w, out, M, ex);
    case WeightFormat::int8_sq: return launch_stream<FmtNatural8<true>>(in, w, out, M, ex);
    case WeightFormat::int4_awq:
      if (w.group_size == 64) {
        if (dense_wanted<FmtInt4<1, 4>>(w, M)) return launch_stream<FmtInt4<1, 4>, kDenseBlocksPerSm>(in, w, out, M, ex);
        return launch_stream<FmtInt4<1>>(in, w, out, M, ex);
      }
      if (w.group_size == 128) {
        if (dense_wanted<FmtInt4<2, 4>>(w, M)) return launch_stream<FmtInt4<2, 4>, kDenseBlocksPerSm>(in, w, out, M, ex);
        return launch_stream<FmtInt4<2>>(in, w, out, M, ex);
      }
      if (dense_wanted<FmtInt4<4, 4>>(w, M)) return launch_stream<FmtInt4<4, 4>, kDenseBlocksPerSm>(in, w, out, M, ex);
      return launch_stream<FmtInt4<4>>(in, w, out, M, ex);
  }
  return invalid("linear_stream", "unknown weight format");
}

}  // namespace grpst::cuda
