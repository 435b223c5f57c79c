// Stream-K for the warp-specialized weight-only GEMM (linear_wo_ws.cuh): where its 256-row blocks
// leave SMs idle in their one wave (the 8B model's gate_up: 96 blocks of 64 steps on 132 SMs), the
// grid is one block per SM and the blocks share the (block of rows, step) work evenly, tile-major:
// block b takes steps [b U / B, (b + 1) U / B) of U = T * nkb. With fewer tiles than blocks a
// block's range holds at most two pieces: the tail of one tile and the head of the next.
//
// A tile cut into pieces is finished by the piece that arrives last: every piece writes its sums
// as its registers hold them (fragment order, coalesced) into its slot of the scratch, counts
// itself on the tile's counter, and the last adds the slots in piece order (the result does not
// depend on timing) and stores from its registers. Nothing goes through shared memory, so the
// ring keeps streaming the block's next piece meanwhile.
#pragma once
#include "linear_wo_tiled_parts.cuh"

namespace grpst::cuda {
namespace {

// One piece of a block's work: steps [kb0, kb0 + steps) of tile `tile` (256 weight rows), piece
// `index` of the tile's `count`.
struct WsPiece {
  int tile = 0, kb0 = 0, steps = 0, index = 0, count = 1;
};
// Stage c of a block's two pieces (the first piece's steps, then the second's): its tile and its
// 64-column step of K.
__device__ __forceinline__ int ws_stage_tile(const WsPiece (&piece)[2], int c) {
  return c < piece[0].steps ? piece[0].tile : piece[1].tile;
}
__device__ __forceinline__ int ws_stage_kb(const WsPiece (&piece)[2], int c) {
  return c < piece[0].steps ? piece[0].kb0 + c : piece[1].kb0 + c - piece[0].steps;
}

// The block that holds global step u of U over B blocks (the largest b with b U / B <= u); the
// host's plan sizes the scratch with it too.
__host__ __device__ __forceinline__ int ws_block_of(long long u, long long U, int B) {
  return static_cast<int>(((u + 1) * B - 1) / U);
}

// This block's pieces under stream-K (T tiles of nkb steps over gridDim.x blocks, more blocks than
// tiles); the second has no steps where the range ends in its first tile.
__device__ __forceinline__ void ws_stream_k_pieces(int T, int nkb, WsPiece (&p)[2]) {
  const long long U = static_cast<long long>(T) * nkb;
  const int B = gridDim.x, b = blockIdx.x;
  const long long lo = U * b / B, hi = U * (b + 1) / B;
  long long u = lo;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    p[i] = WsPiece{};
    if (u >= hi) continue;
    const int t = static_cast<int>(u / nkb);
    const long long tile_end = static_cast<long long>(t + 1) * nkb, end = hi < tile_end ? hi : tile_end;
    const int first = ws_block_of(static_cast<long long>(t) * nkb, U, B);
    const int last = ws_block_of(static_cast<long long>(t + 1) * nkb - 1, U, B);
    p[i] = WsPiece{t, static_cast<int>(u - static_cast<long long>(t) * nkb), static_cast<int>(end - u), b - first,
                   last - first + 1};
    u = end;
  }
}

// This block's work: under stream-K its pieces (above); else one K slice (blockIdx.y of `splits`)
// of one tile (blockIdx.x), the second piece empty.
template <bool StreamK>
__device__ __forceinline__ void ws_block_pieces(int T, int nkb, int splits, WsPiece (&p)[2]) {
  if constexpr (StreamK) {
    ws_stream_k_pieces(T, nkb, p);
  } else {
    const int kb0 = static_cast<int>(static_cast<long long>(nkb) * blockIdx.y / splits);
    p[0] = WsPiece{static_cast<int>(blockIdx.x), kb0,
                   static_cast<int>(static_cast<long long>(nkb) * (blockIdx.y + 1) / splits) - kb0,
                   static_cast<int>(blockIdx.y), splits};
    p[1] = WsPiece{};
  }
}

// Stores a consumer warp's sums (its 16-row tile of the block's 256 rows; element e of acc[0][j]
// is row g (+ 8 for e >= 2), token 8 j + 2 t4 + (e & 1)) through the epilogue. SwiGLU pairs
// rows 2p and 2p + 1 (gate, up), which lie in lanes 4 apart.
template <class Dec, int J>
__device__ __forceinline__ void ws_store_regs(const float (&acc)[1][J][4], const Weight& W, const LinearOut& out, int M,
                                              int tile) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  const int N = W.N;
#pragma unroll
  for (int j = 0; j < J; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int n = tile * 256 + warp * 16 + g + (e >= 2 ? 8 : 0), m = j * 8 + 2 * t4 + (e & 1);
      const float v = acc[0][j][e];
      if (out.epi == Epilogue::swiglu) {
        const float up = __shfl_xor_sync(0xffffffffu, v, 4);  // (every lane: before any branch)
        if ((g & 1) == 0 && m < M && n < N)
          linear_store_swiglu(out, N, m, n / 2, Dec::scale(v, W, n), Dec::scale(up, W, n + 1));
      } else if (m < M && n < N) {
        linear_store(out, N, m, n, Dec::scale(v, W, n));
      }
    }
}

// The consumer warpgroups' barrier (named barrier 1: the producer warp is not in it).
template <int kThreads>
__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(kThreads) : "memory");
}

// Finishes one piece (consumer threads only, all of them): stored at once when the tile is whole,
// else through the scratch by the last piece to arrive. last: a __shared__ flag.
template <class Dec, int J, int kConsumers>
__device__ __forceinline__ void ws_finish_piece(float (&acc)[1][J][4], const Weight& W, const LinearOut& out, int M,
                                                const WsPiece& p, int T, float* partial, int* counters, int& last) {
  if (p.count == 1) {
    ws_store_regs<Dec, J>(acc, W, out, M, p.tile);
    return;
  }
  // slot [piece][tile]: J float4 per thread, [j][thread] (consecutive threads, consecutive float4)
  constexpr size_t kSlotQuads = static_cast<size_t>(J) * kConsumers;
  float4* mine = reinterpret_cast<float4*>(partial) + (static_cast<size_t>(p.index) * T + p.tile) * kSlotQuads;
#pragma unroll
  for (int j = 0; j < J; ++j)
    mine[j * kConsumers + threadIdx.x] = make_float4(acc[0][j][0], acc[0][j][1], acc[0][j][2], acc[0][j][3]);
  __threadfence();
  consumers_sync<kConsumers>();
  if (threadIdx.x == 0) {
    const int arrived = atomicAdd(counters + p.tile, 1);
    last = arrived == p.count - 1;
    if (last) counters[p.tile] = 0;  // ready for the next launch
  }
  consumers_sync<kConsumers>();
  if (!last) return;
  __threadfence();
  const float4* col = reinterpret_cast<const float4*>(partial) + static_cast<size_t>(p.tile) * kSlotQuads + threadIdx.x;
  const size_t stride = static_cast<size_t>(T) * kSlotQuads;  // float4s between pieces
#pragma unroll
  for (int j = 0; j < J; ++j) {
    float4 v = __ldcg(col + j * kConsumers);
    for (int q = 1; q < p.count; ++q) {
      const float4 w = __ldcg(col + q * stride + j * kConsumers);
      v.x += w.x;
      v.y += w.y;
      v.z += w.z;
      v.w += w.w;
    }
    acc[0][j][0] = v.x;
    acc[0][j][1] = v.y;
    acc[0][j][2] = v.z;
    acc[0][j][3] = v.w;
  }
  ws_store_regs<Dec, J>(acc, W, out, M, p.tile);
}

}  // namespace
}  // namespace grpst::cuda
