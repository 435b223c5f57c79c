// Qwen3-MoE's experts on the tensor cores, for steps of many tokens (prefill chunks): moe_group
// lists tiles of up to kMoeWideRows grouped rows of one expert, and each block multiplies one
// tile's rows by 64 rows of that expert's weight with mma.sync (bf16 in, fp32 sums), the weight
// read once per tile instead of once per kMoeTileRows rows, and the products on the tensor cores
// instead of CUDA-core FMAs (moe_experts.cu, which decode steps keep: at a few rows per expert both
// read each weight once, and that kernel needs no shared-memory staging).
//
// Block: 4 warps, an output tile of 64 grouped rows x 64 weight rows, K in steps of 64 through a
// three-stage cp.async ring: X [64 x 64] (rows gathered by row_token for gate_up) and W [64 x 64],
// each row padded to 72 bf16 so ldmatrix's eight row addresses fall in distinct banks. Warp w
// takes rows 32 (w & 1) .. +32 and weight rows 32 (w >> 1) .. +32: 2 x 4 m16n8k16 tiles per k16.
// Each output's sum runs over K in one fixed order whatever the tile's other rows are, so a row
// gets the same bits alone and in a batch (not the tile kernel's bits: another summation order).
#include "device_utils.cuh"
#include "mma_utils.cuh"
#include "linear_common.cuh"
#include "moe.h"

namespace grpst::cuda {
namespace {

constexpr int kBM = kMoeWideRows;  // grouped rows per tile
constexpr int kBN = 64;            // weight rows per block
constexpr int kBK = 64;            // K per stage
constexpr int kPitch = kBK + 8;    // bf16 per staged row (the 16-byte pad spreads ldmatrix's rows over the banks)
constexpr int kStages = 3;
constexpr int kThreads = 128;
constexpr int kStageElems = (kBM + kBN) * kPitch;  // X then W
constexpr size_t kSmemBytes = static_cast<size_t>(kStages) * kStageElems * 2;
static_assert(kBM == 64, "the warp layout covers 64 rows");

// kGateUp: x rows are tokens (row_token), the weight [E, N = 2 Im, K = H] has gate / up rows
//          interleaved, y [P, N / 2] gets bf16(silu(bf16(g)) * bf16(u)) (the dense SwiGLU epilogue);
// else:    x rows are the grouped rows (act), the weight is down [E, N = H, K = Im], y [P, N] bf16.
template <bool kGateUp>
__global__ void __launch_bounds__(kThreads)
    moe_expert_mma_kernel(const bf16* __restrict__ x, const bf16* __restrict__ w_all,
                          const int32_t* __restrict__ row_token, const MoeTile* __restrict__ tiles,
                          const int32_t* __restrict__ tile_count, int N, int K, bf16* __restrict__ y) {
  extern __shared__ __align__(16) bf16 smem[];
  griddep_wait();
  griddep_launch_dependents();
  if (static_cast<int>(blockIdx.x) >= *tile_count) return;  // the grid's bound exceeds this step's tiles
  const MoeTile tile = tiles[blockIdx.x];
  const int n0 = blockIdx.y * kBN;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  const bf16* w = w_all + static_cast<size_t>(tile.expert) * N * K;

  // Each thread copies the 16-byte chunk (tid & 7) of rows (tid >> 3) + 16 i of X and of W.
  const int chunk = tid & 7;
  const bf16* xsrc[4];
  const bf16* wsrc[4];
  bool xok[4], wok[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = (tid >> 3) + 16 * i;
    xok[i] = r < tile.rows;
    const int gr = tile.row0 + (xok[i] ? r : 0);
    xsrc[i] = x + static_cast<size_t>(kGateUp ? row_token[gr] : gr) * K + chunk * 8;
    wok[i] = n0 + r < N;
    wsrc[i] = w + static_cast<size_t>(wok[i] ? n0 + r : 0) * K + chunk * 8;
  }
  const int nk = (K + kBK - 1) / kBK;
  const auto load_stage = [&](int kt) {
    bf16* sx = smem + (kt % kStages) * kStageElems;
    bf16* sw = sx + kBM * kPitch;
    const int k = kt * kBK;
    const bool kin = k + chunk * 8 < K;  // K is a multiple of 8: a chunk is whole or outside
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = (tid >> 3) + 16 * i;
      cp_async16(sx + r * kPitch + chunk * 8, kin && xok[i] ? xsrc[i] + k : x, kin && xok[i]);
      cp_async16(sw + r * kPitch + chunk * 8, kin && wok[i] ? wsrc[i] + k : w_all, kin && wok[i]);
    }
  };

  float acc[2][4][4];
#pragma unroll
  for (int a = 0; a < 2; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[a][b][c] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < nk) load_stage(s);
    cp_async_commit();
  }
  const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
  // ldmatrix row addresses: A (16 x 16) rows lane % 16, columns 8 (lane / 16); B (two n8 tiles x
  // k16 from W [n][k]) rows (lane & 7) + 8 (lane >> 4), columns 8 ((lane >> 3) & 1).
  const int a_row = lane & 15, a_col = (lane >> 4) * 8;
  const int b_row = (lane & 7) + ((lane >> 4) << 3), b_col = ((lane >> 3) & 1) * 8;
  for (int kt = 0; kt < nk; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // stage kt landed for every thread; stage kt - 1 is free to refill
    if (kt + kStages - 1 < nk) load_stage(kt + kStages - 1);
    cp_async_commit();
    const bf16* sx = smem + (kt % kStages) * kStageElems;
    const bf16* sw = sx + kBM * kPitch;
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      uint32_t af[2][4], bfr[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) ldmatrix_x4(af[mi], sx + (wm + 16 * mi + a_row) * kPitch + kk + a_col);
#pragma unroll
      for (int nj = 0; nj < 2; ++nj) ldmatrix_x4(bfr[nj], sw + (wn + 16 * nj + b_row) * kPitch + kk + b_col);
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nj = 0; nj < 2; ++nj) mma_bf16_x2(acc[mi][2 * nj], acc[mi][2 * nj + 1], af[mi], bfr[nj]);
    }
  }
  cp_async_wait_all();

  // C fragment: (row g, columns 2t, 2t + 1) in c[0], c[1] and row g + 8 in c[2], c[3]; the two
  // columns are one (gate, up) pair for gate_up (n0 and the tiles' columns are even).
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int ni = 0; ni < 4; ++ni)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = wm + 16 * mi + g + 8 * h, n = n0 + wn + 8 * ni + 2 * t;
        if (r >= tile.rows || n >= N) continue;
        const float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
        const size_t row = static_cast<size_t>(tile.row0 + r);
        if constexpr (kGateUp) {
          y[row * (N / 2) + n / 2] = __float2bfloat16_rn(silu_bf16(round_bf16(v0)) * round_bf16(v1));
        } else {
          *reinterpret_cast<uint32_t*>(y + row * N + n) = pack_bf16x2(v0, v1);
        }
      }
}

}  // namespace

Status moe_experts_wide(const bf16* x, const bf16* gate_up, const bf16* down, const int32_t* row_token,
                        const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act,
                        bf16* out, const Exec& ex) {
  if (H % 8 != 0 || Im % 8 != 0) return invalid("moe_experts_wide", "hidden and expert sizes must be multiples of 8");
  if (max_tiles <= 0) return ok_status();
  GRPST_TRY(allow_smem("moe_experts_wide", moe_expert_mma_kernel<true>, kSmemBytes));
  GRPST_TRY(allow_smem("moe_experts_wide", moe_expert_mma_kernel<false>, kSmemBytes));
  GRPST_TRY(launch("moe_experts_wide gate_up", moe_expert_mma_kernel<true>, dim3(max_tiles, ceil_div(2 * Im, kBN)),
                   dim3(kThreads), kSmemBytes, ex, x, gate_up, row_token, tiles, tile_count, 2 * Im, H, act));
  return launch("moe_experts_wide down", moe_expert_mma_kernel<false>, dim3(max_tiles, ceil_div(H, kBN)),
                dim3(kThreads), kSmemBytes, ex, static_cast<const bf16*>(act), down, row_token, tiles, tile_count, H,
                Im, out);
}

}  // namespace grpst::cuda
