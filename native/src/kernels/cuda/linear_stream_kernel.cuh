// The weight-streaming tensor-core GEMV's kernel (linear_stream.cu chooses its variant and
// launches it). Decode is bound by weight bytes, so it is built around streaming them at copy
// bandwidth:
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
//    residual add, SwiGLU, fp32 logits);
//  - where the activations of all rows do not fit a block's shared memory (down_proj, K = 12,288,
//    from 4 rows of bf16), or where halving fp8 / int8_sq's quantizing staging pays (ksplit_for),
//    KS blocks of a thread-block cluster share each tile, each staging and multiplying 1/KS of K;
//    after a cluster barrier each block finishes 1/KS of the tile's outputs from all KS blocks'
//    partial sums, read in rank order through distributed shared memory.
#pragma once
#include <cooperative_groups.h>

#include <type_traits>

#include "linear_stream_formats.cuh"

namespace grpst::cuda {
namespace {

// ---- the kernel --------------------------------------------------------------------------------

constexpr int kGeneral = 0, kExactOne = 1, kExactRows = 2;  // the kernel's E

// Whether the kernel copies its first tile's residual before its wait (the parameters tested
// where needed rather than a flag kept in a register).
__device__ __forceinline__ bool y_settled(const LinearOut& out, int N) {
  return out.epi == Epilogue::residual_add && out.residual_settled && N % 8 == 0;
}
// And its first tile's channel scales (whole tiles, 16-byte aligned).
__device__ __forceinline__ bool channels_early(const Weight& W) {
  return W.N % 16 == 0 && (reinterpret_cast<uintptr_t>(W.channel_scale) & 15) == 0;
}

// S = 0: each warp keeps its next round in registers (two buffers). S >= 3: each warp's rounds
// go through a ring of S stages in shared memory that cp.async fills S - 1 rounds ahead (more
// bytes in flight per warp, no registers held for them); see ring_layout().
// E (exact geometry, see exact_geometry()): every round of every warp is full and in range, so
// item indices are compile-time offsets from the round's first item, with no range checks or
// branches per item (the kernel issues rather than waits: ncu on int4 at one token showed 9
// cycles per issued instruction, and the index arithmetic was a third of its instructions).
// E = kExactOne: one token, and every lane reads token 0's activations (the other seven mma
// columns are copies nobody stores); E = kExactRows: 2-8 tokens.
// KS > 1 (the K split; register kernel, formats without groups): block rank h of cluster c takes
// items [h * nitems, (h + 1) * nitems) of cluster c's tiles; geo.nitems / nchunks / kp are its share.
template <class F, int BPS, int S, int E, int KS = 1>
__global__ void __launch_bounds__(kThreads, BPS) linear_stream_kernel(LinearIn in, Weight W, LinearOut out, int M,
                                                                      Geometry geo) {
  using Acc = typename F::Acc;
  constexpr int U = F::kU, V = F::kVecs, KPG = F::kKpg, GPR = U / KPG;
  constexpr bool kExact = E != kGeneral, kOne = E == kExactOne;
  static_assert(U % KPG == 0, "groups must not straddle rounds");
  static_assert(KS == 1 || (S == 0 && !F::kGroups && E != kExactOne), "the K split: register kernel, no groups, rows");
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ float rstd[8], rowq[8];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int ntiles = (W.N + 15) / 16;
  // clusters of KS blocks (one block each without the split) step through the tiles
  const int h = KS > 1 ? static_cast<int>(blockIdx.x) % KS : 0;
  const int cid = static_cast<int>(blockIdx.x) / KS, ncl = static_cast<int>(gridDim.x) / KS;
  const int item0 = h * geo.nitems, wnitems = geo.nitems * KS;  // the weight's item offset and items per tile
  const int my_tiles = cid < ntiles ? (ntiles - 1 - cid) / ncl + 1 : 0;
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
    if (q < total) issue_round(q % kSlots, cid + (q / R) * ncl, q % R);
    cp_async_commit();
  };
  auto load_round = [&](uint4 (&buf)[U][V], uint32_t (&sc)[GPR], uint32_t (&zc)[GPR], int tile, int r) {
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = item_of(r, u);
      if (kExact || it >= 0) load_item<F, kExact>(W, tile, item0 + it, lane, wnitems, buf[u]);
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
  // The residual add's old y of the block's first tile, where y was written two kernels or more
  // before this one (LinearOut::residual_settled): copied into shared memory before the wait, so
  // that the tile's epilogue does not wait on a round trip to the L2 after its products. By
  // cp.async (through the L2, and no register held: one kept across the kernel made its one-token
  // variants spill), 16 bytes per row and half tile; rows of N % 8 != 0 load in the epilogue.
  // With the ring its copies join the first round's group.
  __shared__ __align__(16) uint16_t y_pre[kStreamMaxRows][16];
  if (y_settled(out, W.N) && cid < ntiles && static_cast<int>(threadIdx.x) < 2 * M) {
    const int m = threadIdx.x >> 1, n = cid * 16 + 8 * (threadIdx.x & 1);
    if (n < W.N) cp_async16(&y_pre[m][8 * (threadIdx.x & 1)], static_cast<const bf16*>(out.y) + static_cast<size_t>(m) * W.N + n, true);
  }
  // The epilogue's constants, copied the same way: fp8's tensor scales, and int8_wo / int8_sq's
  // channel scales of the first tile (where they lie whole and 16-byte aligned); in the epilogue
  // each was a dependent load after the reduction.
  __shared__ __align__(16) float epi_pre[16 + 2];  // [16] channel scales of the first tile, x_scale, w_scale
  if constexpr (F::kEpi == EpiConsts::tensor) {
    if (geo.epi_early && threadIdx.x < 2) cp_async4(&epi_pre[16 + threadIdx.x], threadIdx.x ? W.w_scale : W.x_scale);
  } else if constexpr (F::kEpi == EpiConsts::channel) {
    if (geo.epi_early && channels_early(W) && cid < ntiles && threadIdx.x < 4)
      cp_async16(&epi_pre[4 * threadIdx.x], W.channel_scale + cid * 16 + 4 * threadIdx.x, true);
  }
  int tile = cid;
  constexpr bool kEarlyB = S == 0 && !(F::kGroups && KPG == 1);
  const bool early_b = kEarlyB && geo.early_rounds > 1 && total > 1;
  if constexpr (S > 0) {
    for (int q = 0; q < S - 1; ++q) issue_nth(q);
  } else {
    if (total > 0) load_round(bufA, sA, zA, tile, 0);
    if (early_b) load_round(bufB, sB, zB, R > 1 ? tile : tile + ncl, R > 1 ? 1 : 0);
  }
  griddep_wait();
  griddep_launch_dependents();
  __shared__ float part[kWarps * 8];
  constexpr bool kAmax = F::kX == XLayout::i8_natural && std::is_same_v<Acc, int>;
  // One token with a norm or an amax loads x once (not in the three-blocks-per-SM variants: their
  // registers would spill).
  constexpr bool kOnceOk = kOne && BPS <= 2;
  bool once = false;
  if constexpr (kOnceOk)
    once = geo.block_stats && geo.stage_once && (kAmax || in.norm_w) && geo.kp / 8 <= kThreads * kStageOnceChunks;
  if constexpr (kOnceOk) {
    if constexpr (kAmax) {
      if (once) stage_x_amax_once<F>(in, W, geo, smem, rstd, rowq, part);
    } else {
      if (once) stage_x_once<F>(in, W, geo, smem, rstd, rowq, part);
    }
  }
  if (!once) {
    if (geo.block_stats) block_row_stats<kOne>(in, M, W.K, kAmax, geo.all_rows, rstd, rowq, part);
    else linear_row_stats(in, M, W.K, kAmax, rstd, rowq);
    __syncthreads();
    // (the batched one-row staging compiled only where one row can take it, and not in the three
    // blocks per SM variants, whose registers it made spill)
    constexpr int kBatch = BPS <= 2 && E != kExactRows ? kOneRowBatch : 1;
    stage_x<F, kOne, kBatch>(in, W, M, geo, smem, rstd, rowq, KS > 1 ? item0 * 64 : 0);
  }
  if constexpr (S == 0) cp_async_wait_all();  // y_pre, epi_pre (the ring's first wait covers them)
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
    // With the K split: every block's share of the tile is in its rb (the other buffer of the
    // pair is the next tile's, so no second barrier before this one is written again).
    if constexpr (KS > 1) cooperative_groups::this_cluster().sync();
    else __syncthreads();
    auto row_sum = [&](int rr, int m) {
      Acc s = 0;
#pragma unroll
      for (int q = 0; q < KS; ++q) {
        const Acc* qb = KS > 1 ? cooperative_groups::this_cluster().map_shared_rank(rb, q) : rb;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) s += qb[(w * 16 + rr) * 8 + m];
      }
      return static_cast<float>(s);
    };
    const int N = W.N;
    const int first = h * kThreads + static_cast<int>(threadIdx.x);  // each block of a cluster a 1/KS share
    const float* ch = F::kEpi == EpiConsts::channel && geo.epi_early && tile_iter == 0 && channels_early(W) ? epi_pre : nullptr;
    const float* ts = geo.epi_early ? epi_pre + 16 : nullptr;
    if (out.epi == Epilogue::swiglu) {
      for (int idx = first; idx < 8 * M; idx += KS * kThreads) {
        const int p = idx / M, m = idx % M, n = tile * 16 + 2 * p;
        if (n + 1 >= N) continue;
        const float gate = F::scale(row_sum(2 * p, m), W, n, m, rowq, ch, ts);
        const float up = F::scale(row_sum(2 * p + 1, m), W, n + 1, m, rowq, ch, ts);
        linear_store_swiglu(out, N, m, n / 2, gate, up);
      }
    } else {
      for (int idx = first; idx < 16 * M; idx += KS * kThreads) {
        const int rr = idx / M, m = idx % M, n = tile * 16 + rr;
        if (n >= N) continue;
        const float v = F::scale(row_sum(rr, m), W, n, m, rowq, ch, ts);
        if (tile_iter == 0 && y_settled(out, N)) linear_store_residual(out, N, m, n, v, y_pre[m][rr]);
        else linear_store(out, N, m, n, v);
      }
    }
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
    ++tile_iter;
    tile += ncl;
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
      nt = tile + ncl;
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
  // the other blocks of the cluster may still be reading this one's partial sums
  if constexpr (KS > 1) cooperative_groups::this_cluster().sync();
}

}  // namespace
}  // namespace grpst::cuda
