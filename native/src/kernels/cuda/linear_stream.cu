// Weight-streaming tensor-core GEMV for decode (M <= 8 tokens), every weight format. Decode is
// bound by weight bytes, so the kernel is built around streaming them at copy bandwidth:
//  - a persistent grid (two 8-warp blocks per SM): the activations are normalised / quantized
//    into shared memory once per block, not once per 16 output rows;
//  - a warp owns 16 output rows (one m16n8 tile, tokens as the n columns) and a share of K; it
//    keeps two rounds of 16-byte weight loads in flight (the next round is issued before the
//    current one is multiplied), and the first round before waiting on the previous kernel; or,
//    in the ring variant (fp8 at one row), three rounds through a cp.async ring in shared memory;
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

#include "env_switch.h"
#include "linear_stream_formats.cuh"

namespace grpst::cuda {
namespace {

constexpr int kBlocksPerSm = 2;
// Shared memory a block may take (its activations grow with the rows and K); beyond it
// linear_stream_supported says no and the forward takes another kernel. Two blocks of more than
// ~97 KB ran one per SM on an H200 (the driver's carveout held 196 KB: bf16 down_proj alone at 4
// rows 40.2 us against 28.3 at 3), and asking for the largest carveout made every step of several
// rows slower (4-37%: the SMs reconfigure between kernels). So 96 KB, where the other kernels
// take those shapes faster in a step (bf16 b4 4.82 against 6.47 ms, int8_wo b4 3.57 against 3.99,
// int8_sq b8 6.16 against 6.59); int4 keeps 110 KB, its skinny kernel being slower still (b4 3.21
// against 3.46). GRPST_CUDA_STREAM_MAX_SMEM_KB overrides both (docs/benchmarks-gpu-passes.md).
template <class F>
size_t max_smem() {
  return static_cast<size_t>(env_int("GRPST_CUDA_STREAM_MAX_SMEM_KB", F::kGroups ? 110 : 96)) * 1024;
}
// The int4 / fp8 occupancy variant: three blocks per SM with half the loads per round (fewer
// registers), more warps to hide latency. Taken at one row for matrices of more 16-row tiles than
// the standard grid has blocks (at the 8B shape qkv, gate_up and lm_head, where it measured 4-10%
// faster on an H200; o_proj and down_proj, one tile per block, measured 25-40% slower with it).
// int4 with 128-column groups no longer takes it: since its scales load as row pairs (one 4-byte
// load, no wait at the load) two blocks per SM are as fast or faster at every 8B shape (gate_up
// 15.5 against 16.3 us with three, lm_head 73.2 against 75.0, qkv even).
// GRPST_CUDA_STREAM_OCCUPANCY=2 or 3 forces one for every shape (tests and benches).
constexpr int kDenseBlocksPerSm = 3;
constexpr size_t kDenseMaxSmem = 72 * 1024;


// ---- the kernel --------------------------------------------------------------------------------

constexpr int kGeneral = 0, kExactOne = 1, kExactRows = 2;  // the kernel's E

// S = 0: each warp keeps its next round in registers (two buffers). S >= 3: each warp's rounds
// go through a ring of S stages in shared memory that cp.async fills S - 1 rounds ahead (more
// bytes in flight per warp, no registers held for them); see ring_layout().
// E (exact geometry, see exact_geometry()): every round of every warp is full and in range, so
// item indices are compile-time offsets from the round's first item, with no range checks or
// branches per item (the kernel issues rather than waits: ncu on int4 at one token showed 9
// cycles per issued instruction, and the index arithmetic was a third of its instructions).
// E = kExactOne: one token, and every lane reads token 0's activations (the other seven mma
// columns are copies nobody stores); E = kExactRows: 2-8 tokens.
template <class F, int BPS, int S, int E>
__global__ void __launch_bounds__(kThreads, BPS) linear_stream_kernel(LinearIn in, Weight W, LinearOut out, int M,
                                                                      Geometry geo) {
  using Acc = typename F::Acc;
  constexpr int U = F::kU, V = F::kVecs, KPG = F::kKpg, GPR = U / KPG;
  constexpr bool kExact = E != kGeneral, kOne = E == kExactOne;
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
  auto chunk_of = [&](int r, int u) {
    if constexpr (E != kGeneral) return warp + kWarps * (r * GPR + u / KPG);  // U % KPG == 0
    return warp + kWarps * ((r * U + u) / KPG);
  };
  auto item_of = [&](int r, int u) {
    if constexpr (E != kGeneral) return warp * KPG + kWarps * U * r + kWarps * KPG * (u / KPG) + u % KPG;
    const int c = chunk_of(r, u), it = c * KPG + (r * U + u) % KPG;
    return c < geo.nchunks && it < geo.nitems ? it : -1;
  };

  uint4 bufA[U][V], bufB[U][V];
  uint32_t sA[GPR], zA[GPR], sB[GPR], zB[GPR];  // int4: (scale, 128 + zero) of rows (g, g + 8)

  // The ring (S > 0), per warp: S stages of [U][V][32 lanes] 16-byte weight pieces, each lane's
  // own, then (int4) S stages of [GPR][16] words: a group's 16 row scales (8 words, copied by
  // lanes 0-7) and 16 row zeros (lanes 8-15), which every lane of the warp reads.
  constexpr int kStageVecs = U * V * 32;
  uint4* ring = reinterpret_cast<uint4*>(smem + geo.ring_off) + static_cast<size_t>(warp) * S * kStageVecs;
  uint32_t* sring = reinterpret_cast<uint32_t*>(smem + geo.ring_off + static_cast<size_t>(kWarps) * S * kStageVecs * 16) +
                    warp * S * GPR * 16;
  auto issue_round = [&](int slot, int tile_, int r_) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = item_of(r_, u);
      const void* src[V];
      bool ok[V];
      if (kExact || it >= 0) {
        F::template sources<kExact>(W, tile_, it, lane, geo.nitems, src, ok);
      } else {
#pragma unroll
        for (int v = 0; v < V; ++v) src[v] = W.data, ok[v] = false;
      }
#pragma unroll
      for (int v = 0; v < V; ++v) cp_async16(ring + (slot * U + u) * V * 32 + v * 32 + lane, src[v], ok[v]);
    }
    if constexpr (F::kGroups) {
#pragma unroll
      for (int q = 0; q < GPR; ++q) {
        const int c = chunk_of(r_, q * KPG);
        if ((!kExact && c >= geo.nchunks) || lane >= 16 || (lane >= 8 && !W.group_zero)) continue;
        const Off<kExact> gb = (static_cast<Off<kExact>>(tile_) * geo.ngroups + c) * 16;
        const void* base = lane < 8 ? W.group_scale : W.group_zero;
        cp_async4(sring + (slot * GPR + q) * 16 + lane, reinterpret_cast<const uint32_t*>(static_cast<const uint16_t*>(base) + gb) + (lane & 7));
      }
    }
  };
  auto read_round = [&](int slot, uint4 (&buf)[U][V], uint32_t (&sc)[GPR], uint32_t (&zc)[GPR]) {
#pragma unroll
    for (int u = 0; u < U; ++u)
#pragma unroll
      for (int v = 0; v < V; ++v) buf[u][v] = ring[(slot * U + u) * V * 32 + v * 32 + lane];
    if constexpr (F::kGroups) {
#pragma unroll
      for (int q = 0; q < GPR; ++q) {
        const uint32_t* h = sring + (slot * GPR + q) * 16;  // 8 scale words, 8 zero words (row pairs)
        sc[q] = h[g];
        zc[q] = W.group_zero ? h[8 + g] : 0x43084308u;
      }
    }
  };
  // Round q of this block's work: tile blockIdx.x + (q / R) * gridDim.x, round q % R of it.
  constexpr int kSlots = S > 0 ? S : 1;
  auto issue_nth = [&](int q) {
    if (q < total) issue_round(q % kSlots, blockIdx.x + (q / R) * gridDim.x, q % R);
    cp_async_commit();
  };
  auto load_round = [&](uint4 (&buf)[U][V], uint32_t (&sc)[GPR], uint32_t (&zc)[GPR], int tile, int r) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = item_of(r, u);
      if (kExact || it >= 0) load_item<F, kExact>(W, tile, it, lane, geo.nitems, buf[u]);
    }
    if constexpr (F::kGroups) {
#pragma unroll
      for (int q = 0; q < GPR; ++q) {
        const int c = chunk_of(r, q * KPG);
        sc[q] = zc[q] = 0x43084308u;  // 136: unused when c is out of range
        if (kExact || c < geo.nchunks) {
          // One 4-byte load of rows (g, g + 8) per array (repack_int4's row pairs), used as loaded:
          // the register is first read when the group is finished, a round later.
          const Off<kExact> gw = (static_cast<Off<kExact>>(tile) * geo.ngroups + c) * 8 + g;
          sc[q] = __ldg(reinterpret_cast<const uint32_t*>(W.group_scale) + gw);
          if (W.group_zero) zc[q] = __ldg(reinterpret_cast<const uint32_t*>(W.group_zero) + gw);
        }
      }
    }
  };

  // The weights do not depend on the previous kernel: the first round or two go out before the
  // wait, so they are in flight through the previous kernel's tail and this one's prologue (the
  // projections of one tile per block have only 2-6 rounds per warp; each one not in flight then
  // is a memory latency after the prologue).
  // (Not int4 with 64-column groups: its scales and zeros per item leave no registers for a second
  // round across the prologue; it spilled.)
  int tile = blockIdx.x;
  constexpr bool kEarlyB = S == 0 && !(F::kGroups && KPG == 1);
  const bool early_b = kEarlyB && geo.early_rounds > 1 && total > 1;
  if constexpr (S > 0) {
    for (int q = 0; q < S - 1; ++q) issue_nth(q);
  } else {
    if (total > 0) load_round(bufA, sA, zA, tile, 0);
    if (early_b) load_round(bufB, sB, zB, R > 1 ? tile : tile + gridDim.x, R > 1 ? 1 : 0);
  }
  griddep_wait();
  griddep_launch_dependents();
  if (geo.block_stats) {
    __shared__ float part[kWarps * 8];
    constexpr bool kAmax = F::kX == XLayout::i8_natural && std::is_same_v<Acc, int>;
    stream_row_stats<kOne>(in, M, W.K, kAmax, geo.all_rows, rstd, rowq, part);
  } else {
    linear_row_stats(in, M, W.K, F::kX == XLayout::i8_natural && std::is_same_v<Acc, int>, rstd, rowq);
  }
  __syncthreads();
  stage_x<F, kOne>(in, W, M, geo, smem, rstd, rowq);
  __syncthreads();

  Acc acc[4] = {0, 0, 0, 0};
  int r = 0, tile_iter = 0;
  const bool x_ok = kOne || g < M;
  const uint8_t* x_row = smem + (kOne ? 0 : g) * geo.xs;  // one token: every lane reads token 0

  auto compute_round = [&](const uint4 (&buf)[U][V], const uint32_t (&sc)[GPR], const uint32_t (&zc)[GPR]) {
    Acc ag[4] = {0, 0, 0, 0};
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = item_of(r, u);
      if (kExact || it >= 0) {
        uint4 x[2] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
        if (x_ok) {
          const uint8_t* row = x_row;
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
          if (kExact || c < geo.nchunks) {
            const int q = u / KPG;
            const float s0 = bf16_lo(sc[q]), s1 = bf16_hi(sc[q]);
            const float z0 = bf16_lo(zc[q]), z1 = bf16_hi(zc[q]);
            // one token: every column holds token 0; only column 0 is stored
            const float x0 = kOne ? sums[c] : 2 * t < M ? sums[(2 * t) * geo.ngroups + c] : 0.f;
            const float x1 = kOne ? 0.f : 2 * t + 1 < M ? sums[(2 * t + 1) * geo.ngroups + c] : 0.f;
            acc[0] = fmaf(s0, ag[0] - z0 * x0, acc[0]);
            acc[2] = fmaf(s1, ag[2] - z1 * x0, acc[2]);
            if constexpr (!kOne) {  // one token: column 1 is never stored
              acc[1] = fmaf(s0, ag[1] - z0 * x1, acc[1]);
              acc[3] = fmaf(s1, ag[3] - z1 * x1, acc[3]);
            }
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

  if constexpr (S > 0) {
    for (int q = 0; q < total; ++q) {
      cp_async_wait<S - 2>();  // round q has landed (the S - 2 rounds after it may still be in flight)
      __syncwarp();            // lanes see the scales others copied; all are done with round q - 1
      issue_nth(q + S - 1);    // into round q - 1's stage
      read_round(q % kSlots, bufA, sA, zA);
      compute_round(bufA, sA, zA);
      if (++r == R) {
        r = 0;
        finish_tile();
      }
    }
    return;
  }

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
    if (qd + 1 < total && !(qd == 0 && early_b)) load_round(bufB, sB, zB, nt, nr);
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

// Bytes of a ring stage, all warps of a block: the weight pieces, and int4's scales and zeros.
template <class F>
constexpr size_t ring_stage_bytes() {
  return static_cast<size_t>(kWarps) * (F::kU * F::kVecs * 32 * 16 + (F::kGroups ? F::kU / F::kKpg * 16 * 4 : 0));
}

template <class F, int S = 0>
size_t smem_bytes(const Geometry& geo) {
  const size_t red_end = static_cast<size_t>(geo.red_off) + 2 * kWarps * 16 * 8 * sizeof(typename F::Acc);
  return S == 0 ? red_end : (red_end + 15) / 16 * 16 + S * ring_stage_bytes<F>();
}

// Weight rounds the register kernel issues before its wait on the previous kernel: two, but one
// for int8_wo at one token and for int4 (GRPST_CUDA_STREAM_EARLY_ROUNDS=1|2 forces either).
// Measured on an H200, decode steps at 512 keys: fp8 b1 2.830 -> 2.815 ms, int8_sq 3.047 ->
// 3.005, bf16 4.368 -> 4.353, b4 0.6-1.1% faster in every quantized format; int8_wo b1 2.860 ->
// 2.955, slower; int4 (since its scales load as row pairs) b1 2.121 against 2.220, b8 4.874
// against 4.917, b4 even (docs/benchmarks-gpu-passes.md).
template <class F>
int early_rounds_for(int forced, int M) {
  if (forced == 1 || forced == 2) return forced;
  if constexpr (F::kGroups) return 1;
  return std::is_same_v<F, FmtInt8Wo> && M == 1 ? 1 : 2;
}

// The variant switches (tests and benchmarks flip them between launches), read once per call:
// GRPST_CUDA_STREAM_RING=0|1 and GRPST_CUDA_STREAM_OCCUPANCY=2|3 force a variant at any row count
// (-1 / 0: the measured defaults below); GRPST_CUDA_STREAM_EXACT=0 turns the exact kernel off.
// GRPST_CUDA_STREAM_BLOCK_STATS=0|1: the row statistics by one warp per row (0) or by the whole
// block (1) at every row count (default: the block at one token, and for int8_sq, whose amax
// needs them, at every count; see stream_row_stats). GRPST_CUDA_STREAM_FDIV=1: the fp8 / int8_sq
// activations divided by __fdiv_rn in the staging (div_by gives the same bits in fewer steps).
// GRPST_CUDA_PROLOGUE_ALL_ROWS=0: the prologue (x staged, the block's row statistics) takes the rows
// one after another, not all at once (the same bits).
struct Switches {
  int ring = env_int("GRPST_CUDA_STREAM_RING", -1);
  int occupancy = env_int("GRPST_CUDA_STREAM_OCCUPANCY", 0);
  bool exact = env_int("GRPST_CUDA_STREAM_EXACT", 1) != 0;
  int block_stats = env_int("GRPST_CUDA_STREAM_BLOCK_STATS", -1);
  int early_rounds = env_int("GRPST_CUDA_STREAM_EARLY_ROUNDS", 0);
  int fdiv = env_int("GRPST_CUDA_STREAM_FDIV", 0) != 0 ? 1 : 0;
  int all_rows = env_int("GRPST_CUDA_PROLOGUE_ALL_ROWS", 1) != 0 ? 1 : 0;
};

// Whether the exact kernel (E) applies: whole 16-row tiles, K a whole number of items (int4: of
// groups), every warp's share of a tile a whole number of full rounds (at the 8B shape every
// projection and the LM head), weights under 2 GiB (32-bit offsets).
template <class F>
bool exact_geometry(const Weight& w, const Geometry& geo, const Switches& sw) {
  if (!sw.exact || w.N % 16 != 0 || geo.kp != w.K || geo.nitems * 64 != w.K) return false;
  if (static_cast<int64_t>(w.N) * w.K >= (int64_t{1} << 31)) return false;  // 32-bit offsets (Off<true>)
  return geo.nchunks % kWarps == 0 && (geo.nchunks / kWarps * F::kKpg) % F::kU == 0;
}

thread_local bool t_last_exact = false;

template <class F, int BPS = kBlocksPerSm, int S = 0>
Status launch_stream(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex,
                     const Switches& sw) {
  Geometry geo = geometry<F>(w, M);
  geo.ring_off = static_cast<int>((smem_bytes<F>(geo) + 15) / 16 * 16);
  const size_t smem = smem_bytes<F, S>(geo);
  const bool exact = exact_geometry<F>(w, geo, sw);
  const bool amax = F::kX == XLayout::i8_natural && std::is_same_v<typename F::Acc, int>;
  geo.block_stats = sw.block_stats == 0 || sw.block_stats == 1 ? sw.block_stats : amax || M == 1 ? 1 : 0;
  geo.early_rounds = early_rounds_for<F>(sw.early_rounds, M);
  geo.fdiv = sw.fdiv;
  geo.all_rows = sw.all_rows;
  t_last_exact = exact;
  auto kernel = !exact ? linear_stream_kernel<F, BPS, S, kGeneral>
                : M == 1 ? linear_stream_kernel<F, BPS, S, kExactOne>
                         : linear_stream_kernel<F, BPS, S, kExactRows>;
  GRPST_TRY(allow_smem("linear_stream", kernel, smem));
  const int ntiles = ceil_div(w.N, 16);
  const int blocks = std::min(ntiles, BPS * sm_count());
  return launch("linear_stream", kernel, dim3(blocks), dim3(kThreads), smem, ex, in, w, out, M, geo);
}

template <class F, int S = 0>
bool fits(const Weight& w, int M, size_t limit = max_smem<F>()) {
  return smem_bytes<F, S>(geometry<F>(w, M)) <= limit;
}

// The cp.async ring variant (two blocks per SM, rounds of half the loads, kRingStages of them:
// three in flight per warp), where its shared memory fits. Measured at one row on an H200: fp8
// 3.50 ms per decode step against 3.77 with the register buffers (gate_up 29.0 against 33.7 us,
// lm_head 164 against 190), so fp8 takes it where the exact one-token kernel does not apply (that
// one, fewer instructions per load, beat it: 3.02 against 3.15 ms); int4 3.63 against 3.51 (its
// instructions, not its loads, bind), so int4 does not.
constexpr int kRingStages = 4;

// Launches FHalf (the format at half the loads per round) with the ring when wanted and it fits;
// *taken false otherwise.
template <class FHalf>
Status launch_ring(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex,
                   const Switches& sw, bool by_default, bool* taken) {
  const bool wanted = sw.ring == 0 || sw.ring == 1 ? sw.ring == 1 : by_default && M == 1;
  *taken = wanted && fits<FHalf, kRingStages>(w, M);
  if (!*taken) return ok_status();
  return launch_stream<FHalf, kBlocksPerSm, kRingStages>(in, w, out, M, ex, sw);
}

// Whether to take the occupancy variant F (three blocks per SM); see kDenseBlocksPerSm.
template <class F>
bool dense_wanted(const Weight& w, int M, const Switches& sw, bool by_default = true) {
  if (!fits<F>(w, M, kDenseMaxSmem)) return false;
  if (sw.occupancy == 2 || sw.occupancy == 3) return sw.occupancy == 3;
  return by_default && M == 1 && ceil_div(w.N, 16) > kBlocksPerSm * sm_count();
}

}  // namespace

bool linear_stream_last_exact() { return t_last_exact; }

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
  const Switches sw;
  switch (w.format) {
    case WeightFormat::bf16: return launch_stream<FmtBf16>(in, w, out, M, ex, sw);
    case WeightFormat::int8_wo: return launch_stream<FmtInt8Wo>(in, w, out, M, ex, sw);
    case WeightFormat::fp8: {
      // The exact one-token kernel at two blocks per SM beat the ring and three blocks per SM at
      // every projection and the LM head of the 8B shape (docs/benchmarks-gpu.md); the ring and the
      // occupancy variant stay the defaults where it does not apply.
      const bool exact = exact_geometry<FmtNatural8<false>>(w, geometry<FmtNatural8<false>>(w, M), sw);
      bool taken = false;
      const Status st = launch_ring<FmtNatural8<false, 2>>(in, w, out, M, ex, sw, !exact, &taken);
      if (taken) return st;
      if (dense_wanted<FmtNatural8<false, 2>>(w, M, sw, !exact))
        return launch_stream<FmtNatural8<false, 2>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
      return launch_stream<FmtNatural8<false>>(in, w, out, M, ex, sw);
    }
    case WeightFormat::int8_sq: return launch_stream<FmtNatural8<true>>(in, w, out, M, ex, sw);
    case WeightFormat::int4_awq:
      if (w.group_size == 64) {
        if (dense_wanted<FmtInt4<1, 4>>(w, M, sw)) return launch_stream<FmtInt4<1, 4>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
        return launch_stream<FmtInt4<1>>(in, w, out, M, ex, sw);
      }
      if (w.group_size == 128) {
        bool taken = false;
        const Status st = launch_ring<FmtInt4<2, 4>>(in, w, out, M, ex, sw, false, &taken);
        if (taken) return st;
        // two blocks per SM by default (see kDenseBlocksPerSm); the occupancy switch still forces three
        if (dense_wanted<FmtInt4<2, 4>>(w, M, sw, false)) return launch_stream<FmtInt4<2, 4>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
        return launch_stream<FmtInt4<2>>(in, w, out, M, ex, sw);
      }
      if (dense_wanted<FmtInt4<4, 4>>(w, M, sw)) return launch_stream<FmtInt4<4, 4>, kDenseBlocksPerSm>(in, w, out, M, ex, sw);
      return launch_stream<FmtInt4<4>>(in, w, out, M, ex, sw);
  }
  return invalid("linear_stream", "unknown weight format");
}

}  // namespace grpst::cuda
