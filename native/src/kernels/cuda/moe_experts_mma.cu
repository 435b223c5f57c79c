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
// int8_wo experts (WideInt8): the stage holds W's int8 rows (64 bytes each, unpadded), which the
// block widens to the bf16 tile the mma reads (exact: |q| <= 127) after the stage lands; the
// row's scale multiplies its fp32 sum in the epilogue, before the rounding, as in the tile kernel.
// fp8 / int8_sq experts (moe_experts_w8a8): WideFp8's e4m3 rows widened the same way (exact), and
// WideInt8's; x holds their rows already quantized (grouped, gate_up's too), and int8_sq's row
// scales join the weight row's in the epilogue.
// int4_awq experts (WideInt4): the stage holds W's nibble rows (32 bytes each), widened to the bf16
// tile as bf16((q - zero) * scale * input scale) (the group's scale and zero, gate_up's expert
// input scale folded into its weights' columns): one rounding of each weight, where the tile
// kernel and the CPU backend keep the decoded weights in fp32 and scale x.
#include "device_utils.cuh"
#include "mma_utils.cuh"
#include "linear_common.cuh"
#include "moe.h"
#include "moe_quant.cuh"

namespace grpst::cuda {
namespace {

constexpr int kBM = kMoeWideRows;  // grouped rows per tile
constexpr int kBN = 64;            // weight rows per block
constexpr int kBK = 64;            // K per stage
constexpr int kPitch = kBK + 8;    // bf16 per staged row (the 16-byte pad spreads ldmatrix's rows over the banks)
constexpr int kStages = 3;
constexpr int kThreads = 128;
static_assert(kBM == 64, "the warp layout covers 64 rows");

// The weight formats: how a stage holds W's rows and where the mma reads them as bf16.
//  WideBf16: W [64 x 64] bf16 in the stage, padded as X, read in place;
//  WideInt8: W [64 x 64] int8 in the stage (4 chunks of 16 bytes a row), widened by the block into
//            one bf16 tile (padded as X) before each k step's products; scales per weight row;
//  WideInt4: W [64 x 64] nibbles in the stage (4 chunks of 8 bytes a row), widened likewise with
//            the groups' scales and zeros.
struct WideBf16 {
  using Elem = bf16;
  static constexpr bool kScaled = false, kInt4 = false;
  static constexpr int kChunkElems = 8;                    // weights per copied chunk (16 bytes)
  static constexpr int kWBytes = kBN * kPitch * 2;         // W's part of a stage
  static constexpr int kWideBytes = 0;                     // the widened tile (none)
};
struct WideInt8 {
  using Elem = int8_t;
  static constexpr bool kScaled = true, kInt4 = false, kFp8 = false;
  static constexpr int kChunkElems = 16;
  static constexpr int kWBytes = kBN * kBK;
  static constexpr int kWideBytes = kBN * kPitch * 2;
};
struct WideFp8 : WideInt8 {  // e4m3 bytes in place of int8 ones (exact in bf16 too)
  using Elem = uint8_t;
  static constexpr bool kFp8 = true;
};
struct WideInt4 {
  using Elem = uint8_t;
  static constexpr bool kScaled = false, kInt4 = true;
  static constexpr int kChunkElems = 16;  // 8 bytes
  static constexpr int kWBytes = kBN * kBK / 2;
  static constexpr int kWideBytes = kBN * kPitch * 2;
};
template <class F>
__host__ __device__ constexpr int stage_bytes() {
  return kBM * kPitch * 2 + F::kWBytes;  // X then W
}
template <class F>
constexpr size_t smem_bytes() {
  return static_cast<size_t>(kStages) * stage_bytes<F>() + F::kWideBytes;
}

// kGateUp: x rows are tokens (row_token), the weight [E, N = 2 Im, K = H] has gate / up rows
//          interleaved, y [P, N / 2] gets bf16(silu(bf16(g)) * bf16(u)) (the dense SwiGLU epilogue);
// else:    x rows are the grouped rows (act), the weight is down [E, N = H, K = Im], y [P, N] bf16.
// F: WideBf16, WideInt8 or WideInt4; q its scales (ExpertQuant).
template <bool kGateUp, class F>
__global__ void __launch_bounds__(kThreads)
    moe_expert_mma_kernel(const bf16* __restrict__ x, const typename F::Elem* __restrict__ w_all, ExpertQuant q,
                          const int32_t* __restrict__ row_token, const MoeTile* __restrict__ tiles,
                          const int32_t* __restrict__ tile_count, int N, int K, bf16* __restrict__ y) {
  extern __shared__ __align__(16) uint8_t smem[];
  griddep_wait();
  griddep_launch_dependents();
  if (static_cast<int>(blockIdx.x) >= *tile_count) return;  // the grid's bound exceeds this step's tiles
  const MoeTile tile = tiles[blockIdx.x];
  const int n0 = blockIdx.y * kBN;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
  using E = typename F::Elem;
  // a weight row's storage: K elements, or K / 2 bytes of nibbles
  const size_t row_len = F::kInt4 ? static_cast<size_t>(K) / 2 : static_cast<size_t>(K);
  const E* w = w_all + static_cast<size_t>(tile.expert) * N * row_len;
  constexpr int kWChunks = kBK / F::kChunkElems;       // 16-byte chunks of a W row per stage
  constexpr int kWRowsPerPass = kThreads / kWChunks;   // W rows one pass of the block copies
  constexpr int kWPasses = kBN / kWRowsPerPass;

  // Each thread copies the 16-byte chunk (tid & 7) of rows (tid >> 3) + 16 i of X, and the chunk
  // (tid % kWChunks) of W's rows tid / kWChunks + kWRowsPerPass i.
  const int chunk = tid & 7, wchunk = tid % kWChunks, wrow = tid / kWChunks;
  const bf16* xsrc[4];
  const E* wsrc[kWPasses];
  bool xok[4], wok[kWPasses];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = (tid >> 3) + 16 * i;
    xok[i] = r < tile.rows;
    const int gr = tile.row0 + (xok[i] ? r : 0);
    xsrc[i] = x + static_cast<size_t>(kGateUp && !(F::kScaled && q.x_grouped) ? row_token[gr] : gr) * K + chunk * 8;
  }
#pragma unroll
  for (int i = 0; i < kWPasses; ++i) {
    const int r = wrow + kWRowsPerPass * i;
    wok[i] = n0 + r < N;
    wsrc[i] = w + static_cast<size_t>(wok[i] ? n0 + r : 0) * row_len + wchunk * F::kChunkElems / (F::kInt4 ? 2 : 1);
  }
  const int nk = (K + kBK - 1) / kBK;
  const auto stage_x = [&](int kt) { return reinterpret_cast<bf16*>(smem + (kt % kStages) * stage_bytes<F>()); };
  const auto load_stage = [&](int kt) {
    bf16* sx = stage_x(kt);
    uint8_t* sw = reinterpret_cast<uint8_t*>(sx + kBM * kPitch);
    const int k = kt * kBK;
    const bool kin = k + chunk * 8 < K;  // K is a multiple of 8 (bf16) / 16 (int8): a chunk is whole or outside
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = (tid >> 3) + 16 * i;
      cp_async16(sx + r * kPitch + chunk * 8, kin && xok[i] ? xsrc[i] + k : x, kin && xok[i]);
    }
    const bool win = k + wchunk * F::kChunkElems < K;
#pragma unroll
    for (int i = 0; i < kWPasses; ++i) {
      const int r = wrow + kWRowsPerPass * i;
      // bf16: rows padded to kPitch elements; int8: 64 bytes a row; int4: 32 bytes a row
      const bool on = win && wok[i];
      if constexpr (F::kInt4) {
        cp_async8(sw + r * (kBK / 2) + wchunk * 8, on ? static_cast<const void*>(wsrc[i] + k / 2) : static_cast<const void*>(w_all), on);
      } else {
        uint8_t* dst = sw + (F::kScaled ? r * kBK + wchunk * 16 : (r * kPitch + wchunk * 8) * 2);
        cp_async16(dst, on ? static_cast<const void*>(wsrc[i] + k) : static_cast<const void*>(w_all), on);
      }
    }
  };
  // int8: stage kt's W widened into the bf16 tile the products read (every thread 32 weights of one
  // row half); bf16: the stage itself.
  bf16* const wide = reinterpret_cast<bf16*>(smem + kStages * stage_bytes<F>());
  const auto b_tile = [&](int kt) -> const bf16* {
    const bf16* sw = stage_x(kt) + kBM * kPitch;
    if constexpr (F::kInt4) {
      // every thread 32 weights of one row half: 16 bytes of the stage, 8 weights a group piece
      const int r = tid >> 1, half = tid & 1, n = n0 + r, ngroups = K / q.group;
      const uint4 v = *reinterpret_cast<const uint4*>(reinterpret_cast<const uint8_t*>(sw) + r * (kBK / 2) + half * 16);
      const uint32_t words[4] = {v.x, v.y, v.z, v.w};
      const size_t gbase = (static_cast<size_t>(tile.expert) * N + (n < N ? n : 0)) * ngroups;
      const float* xs = kGateUp && q.x_scale ? q.x_scale + static_cast<size_t>(tile.expert) * K : nullptr;
#pragma unroll
      for (int p = 0; p < 4; ++p) {
        const int col = kt * kBK + half * 32 + 8 * p;
        float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (n < N && col < K) {
          const int g = col / q.group;
          const float sc = q.scale[gbase + g], zr = static_cast<float>(q.zero[gbase + g]);
#pragma unroll
          for (int e = 0; e < 8; ++e) f[e] = __fmul_rn(static_cast<float>((words[p] >> (4 * e)) & 15u) - zr, sc);
          if (xs) {
#pragma unroll
            for (int e = 0; e < 8; ++e) f[e] = __fmul_rn(f[e], xs[col + e]);
          }
        }
        *reinterpret_cast<uint4*>(wide + r * kPitch + half * 32 + 8 * p) = pack8(f);
      }
      __syncthreads();  // the tile is whole before any warp reads it
      return wide;
    } else if constexpr (!F::kScaled) {
      return sw;
    } else {
      const int r = tid >> 1, half = tid & 1;
      const uint4* src = reinterpret_cast<const uint4*>(reinterpret_cast<const uint8_t*>(sw) + r * kBK + half * 32);
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const uint4 q = src[c];
        const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float f[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            const uint32_t byte = (words[2 * h + e / 4] >> (8 * (e % 4))) & 0xffu;
            f[e] = F::kFp8 ? e4m3_to_f32(static_cast<uint8_t>(byte)) : static_cast<float>(static_cast<int8_t>(byte));
          }
          *reinterpret_cast<uint4*>(wide + r * kPitch + half * 32 + c * 16 + h * 8) = pack8(f);
        }
      }
      __syncthreads();  // the tile is whole before any warp reads it
      return wide;
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
    // stage kt landed for every thread; stage kt - 1 (and int8's widened tile) is free to refill
    __syncthreads();
    if (kt + kStages - 1 < nk) load_stage(kt + kStages - 1);
    cp_async_commit();
    const bf16* sx = stage_x(kt);
    const bf16* sw = b_tile(kt);
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
        float v0 = acc[mi][ni][2 * h], v1 = acc[mi][ni][2 * h + 1];
        const size_t row = static_cast<size_t>(tile.row0 + r);
        if constexpr (F::kScaled) {
          const float* sc = q.scale + static_cast<size_t>(tile.expert) * N + n;
          const float xs_row = q.x_row_scale ? q.x_row_scale[row] : 1.f;  // int8_sq: (x's * the row's) * sum
          v0 *= q.x_row_scale ? xs_row * sc[0] : sc[0];
          v1 *= q.x_row_scale ? xs_row * sc[1] : sc[1];
        }
        if constexpr (kGateUp) {
          y[row * (N / 2) + n / 2] = __float2bfloat16_rn(silu_bf16(round_bf16(v0)) * round_bf16(v1));
        } else {
          *reinterpret_cast<uint32_t*>(y + row * N + n) = pack_bf16x2(v0, v1);
        }
      }
}

// Both projections of the listed tiles in format F: gate_up + SwiGLU into act, then down into out.
template <class F>
Status launch_wide(const char* op, const bf16* x, const typename F::Elem* gate_up, const ExpertQuant& gq,
                   const typename F::Elem* down, const ExpertQuant& dq, const int32_t* row_token, const MoeTile* tiles,
                   const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act, bf16* out, const Exec& ex) {
  if (H % F::kChunkElems != 0 || Im % F::kChunkElems != 0)
    return invalid(op, F::kChunkElems == 16 ? "hidden and expert sizes must be multiples of 16" : "hidden and expert sizes must be multiples of 8");
  if (F::kScaled && (!gq.scale || !dq.scale)) return invalid(op, "int8_wo experts need their per-row scales");
  if constexpr (F::kInt4) GRPST_TRY(check_int4_quant(op, gq, dq, H, Im));
  if (max_tiles <= 0) return ok_status();
  constexpr size_t smem = smem_bytes<F>();
  GRPST_TRY(allow_smem(op, moe_expert_mma_kernel<true, F>, smem));
  GRPST_TRY(allow_smem(op, moe_expert_mma_kernel<false, F>, smem));
  GRPST_TRY(launch(op, moe_expert_mma_kernel<true, F>, dim3(max_tiles, ceil_div(2 * Im, kBN)), dim3(kThreads), smem, ex,
                   x, gate_up, gq, row_token, tiles, tile_count, 2 * Im, H, act));
  return launch(op, moe_expert_mma_kernel<false, F>, dim3(max_tiles, ceil_div(H, kBN)), dim3(kThreads), smem, ex,
                static_cast<const bf16*>(act), down, dq, row_token, tiles, tile_count, H, Im, out);
}

}  // namespace

Status moe_expert_wide_w8a8(bool gate_up, bool fp8, const bf16* xq, const uint8_t* w, const ExpertQuant& q,
                            const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int N, int K, bf16* y,
                            const Exec& ex) {
  const char* op = gate_up ? "moe_experts_w8a8 wide gate_up" : "moe_experts_w8a8 wide down";
  if (N % 16 != 0 || K % 16 != 0) return invalid(op, "hidden and expert sizes must be multiples of 16");
  if (!q.scale || !q.x_grouped) return invalid(op, "8-bit experts need their row scales and quantized rows");
  if (max_tiles <= 0) return ok_status();
  const int32_t* no_tokens = nullptr;  // (x_grouped: rows are read by grouped row)
  const auto run = [&](auto kernel, const auto* wt) {
    constexpr size_t smem = smem_bytes<WideInt8>();  // WideFp8's too
    GRPST_TRY(allow_smem(op, kernel, smem));
    return launch(op, kernel, dim3(max_tiles, ceil_div(N, kBN)), dim3(kThreads), smem, ex, xq, wt, q, no_tokens, tiles,
                  tile_count, N, K, y);
  };
  const int8_t* w8 = reinterpret_cast<const int8_t*>(w);
  if (fp8) return gate_up ? run(moe_expert_mma_kernel<true, WideFp8>, w) : run(moe_expert_mma_kernel<false, WideFp8>, w);
  return gate_up ? run(moe_expert_mma_kernel<true, WideInt8>, w8) : run(moe_expert_mma_kernel<false, WideInt8>, w8);
}

Status moe_experts_wide(const bf16* x, const bf16* gate_up, const bf16* down, const int32_t* row_token,
                        const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act,
                        bf16* out, const Exec& ex) {
  return launch_wide<WideBf16>("moe_experts_wide", x, gate_up, {}, down, {}, row_token, tiles, tile_count, max_tiles, H,
                               Im, act, out, ex);
}

Status moe_experts_wide_int8(const bf16* x, const int8_t* gate_up, const float* gate_up_scale, const int8_t* down,
                             const float* down_scale, const int32_t* row_token, const MoeTile* tiles,
                             const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act, bf16* out,
                             const Exec& ex) {
  const auto [gq, dq] = int8_quant(gate_up_scale, down_scale);
  return launch_wide<WideInt8>("moe_experts_wide_int8", x, gate_up, gq, down, dq, row_token, tiles, tile_count,
                               max_tiles, H, Im, act, out, ex);
}

Status moe_experts_wide_int4(const bf16* x, const MoeInt4Experts& w, const int32_t* row_token, const MoeTile* tiles,
                             const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act, bf16* out,
                             const Exec& ex) {
  const auto [gq, dq] = int4_quant(w);
  return launch_wide<WideInt4>("moe_experts_wide_int4", x, w.gate_up, gq, w.down, dq, row_token, tiles, tile_count,
                               max_tiles, H, Im, act, out, ex);
}

}  // namespace grpst::cuda
