// Qwen3-MoE's experts on the GPU (bf16, int8_wo, int4_awq, fp8 or int8_sq weights), tile by tile (moe_group
// lists the tiles on the device): each warp streams two rows of one expert's weight once and
// multiplies them with all of the tile's rows (up to kMoeTileRows), which sit in registers as
// partial sums. At one decode token this reads exactly the chosen experts' weights once; a larger
// step reads each chosen expert's weights once per tile of its rows. Then moe_combine adds each
// token's weighted expert outputs to the residual stream in expert order.
#include <algorithm>
#include <type_traits>

#include "device_utils.cuh"
#include "linear_common.cuh"
#include "mma_utils.cuh"
#include "moe.h"
#include "moe_quant.cuh"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 2;  // weight rows; for gate_up one (gate, up) pair: one SwiGLU output
constexpr int kBatch = 8;        // chunks of 8 weights of each row a lane loads at once

// How the tile kernel reads a weight row: 8 elements per chunk, one chunk per lane at a time.
//  bf16:    16-byte chunks of 8 bf16, no scale;
//  int8_wo: 8-byte chunks of 8 int8 (exact in fp32), one fp32 scale per row (output channel)
//           applied to the row's warp sum, as the dense int8_wo epilogue applies it;
//  fp8:     8-byte chunks of 8 e4m3, a scale per row as int8_wo (moe_experts_w8a8: x quantized);
//  int4:    4-byte chunks of 8 nibbles (element 2j the low nibble of byte j), each weight
//           (q - zero) * scale of its group in fp32, as the CPU backend decodes it (a chunk lies in
//           one group: the group is a multiple of 8).
struct Bf16Rows {
  using Elem = bf16;
  using Chunk = uint4;
  static constexpr bool kScaled = false, kGroups = false;
  __device__ static const Elem* row(const Elem* w, size_t r, int K) { return w + r * K; }
  __device__ static Chunk load(const Elem* row, int j) { return ldg_stream(reinterpret_cast<const uint4*>(row) + j); }
  __device__ static Chunk zero() { return make_uint4(0, 0, 0, 0); }
  __device__ static void unpack(const Chunk& c, float* f, float, float) { unpack8(c, f); }
};
// int8 (int8_wo, int8_sq) or e4m3 (fp8) weights E: one byte each, exact in fp32.
template <class E>
struct ByteRows {
  using Elem = E;
  using Chunk = uint2;
  static constexpr bool kScaled = true, kGroups = false;
  __device__ static const Elem* row(const Elem* w, size_t r, int K) { return w + r * K; }
  __device__ static Chunk load(const Elem* row, int j) { return ldg_stream8(reinterpret_cast<const uint2*>(row) + j); }
  __device__ static Chunk zero() { return make_uint2(0, 0); }
  __device__ static float value(uint32_t byte) {
    if constexpr (std::is_same_v<E, int8_t>) return static_cast<float>(static_cast<int8_t>(byte));
    else return e4m3_to_f32(static_cast<uint8_t>(byte));
  }
  __device__ static void unpack(const Chunk& c, float* f, float, float) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      f[e] = value(c.x >> (8 * e));
      f[4 + e] = value(c.y >> (8 * e));
    }
  }
};
using Int8Rows = ByteRows<int8_t>;
using Fp8Rows = ByteRows<uint8_t>;  // e4m3 bytes, the row's scale as int8_wo's
struct Int4Rows {
  using Elem = uint8_t;
  using Chunk = uint32_t;
  static constexpr bool kScaled = false, kGroups = true;
  __device__ static const Elem* row(const Elem* w, size_t r, int K) { return w + r * (K / 2); }
  __device__ static Chunk load(const Elem* row, int j) { return ldg_stream32(reinterpret_cast<const uint32_t*>(row) + j); }
  __device__ static Chunk zero() { return 0u; }
  __device__ static void unpack(const Chunk& c, float* f, float scale, float zero) {
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = __fmul_rn(static_cast<float>((c >> (4 * e)) & 15u) - zero, scale);
  }
};

// One tile's rows times weight rows [2 w, 2 w + 2) of its expert (w = the warp's index in the
// grid's y), the sums of each lane's strided chunks of 8 weights reduced across the warp.
//  kGateUp: x rows are tokens (row_token; grouped rows where q.x_grouped), the weight [E, N = 2 Im, K = H] has gate / up rows
//           interleaved, y [P, N / 2] gets bf16(bf16(silu(g)) * u) as the dense SwiGLU epilogue;
//  else:    x rows are the grouped rows themselves (act), the weight is down [E, N = H, K = Im],
//           y [P, N] gets the two outputs rounded to bf16.
// F (Bf16Rows, Int8Rows, Fp8Rows, Int4Rows) is the weights' format; q its scales: int8_wo's, fp8's and
// int8_sq's per row, each multiplying its row's sum before the rounding above (int8_sq's with the x
// row's own scale); int4's per group, with zeros, applied to
// each weight, and for gate_up the expert's input scale applied to x (in fp32, as the CPU backend
// scales its copy of the rows).
// A row's result does not depend on the tile's other rows: the same bits in every batch.
template <bool kGateUp, class F>
__global__ void __launch_bounds__(kWarps * 32)
    moe_expert_rows_kernel(const bf16* __restrict__ x, const typename F::Elem* __restrict__ w_all, ExpertQuant q,
                           const int32_t* __restrict__ row_token, const MoeTile* __restrict__ tiles,
                           const int32_t* __restrict__ tile_count, int N, int K, bf16* __restrict__ y) {
  griddep_wait();
  griddep_launch_dependents();
  if (static_cast<int>(blockIdx.x) >= *tile_count) return;  // the grid's bound exceeds this step's tiles
  const MoeTile tile = tiles[blockIdx.x];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int n0 = (blockIdx.y * kWarps + warp) * kRowsPerWarp;
  if (n0 >= N) return;
  const size_t r0 = static_cast<size_t>(tile.expert) * N + n0;  // the warp's first weight row
  const typename F::Elem* w0 = F::row(w_all, r0, K);
  const typename F::Elem* w1 = F::row(w_all, r0 + 1, K);
  float s0 = 1.f, s1 = 1.f;
  if constexpr (F::kScaled) {
    s0 = q.scale[r0];
    s1 = q.scale[r0 + 1];
  }
  // int4: the two rows' group scales and zeros [K / group], and the expert's input scale [K]
  const int ngroups = F::kGroups ? K / q.group : 0;
  const float* gs0 = F::kGroups ? q.scale + r0 * ngroups : nullptr;
  const uint8_t* gz0 = F::kGroups ? q.zero + r0 * ngroups : nullptr;
  const float4* xs = F::kGroups && kGateUp && q.x_scale ? reinterpret_cast<const float4*>(q.x_scale + static_cast<size_t>(tile.expert) * K) : nullptr;
  const uint4* xr[kMoeTileRows];
#pragma unroll
  for (int m = 0; m < kMoeTileRows; ++m) {
    const int r = tile.row0 + (m < tile.rows ? m : 0);
    const int src = kGateUp && !(F::kScaled && q.x_grouped) ? row_token[r] : r;
    xr[m] = reinterpret_cast<const uint4*>(x + static_cast<size_t>(src) * K);
  }
  float acc0[kMoeTileRows], acc1[kMoeTileRows];
#pragma unroll
  for (int m = 0; m < kMoeTileRows; ++m) acc0[m] = acc1[m] = 0.f;
  const int n8 = K / 8;
  // kBatch chunks of both rows are loaded before any is used: a warp keeps 2 x kBatch x 512 bytes
  // of bf16 (256 of int8) in flight (at Qwen3-30B-A3B's gate_up, K = 2,048, its whole share in one
  // batch), where loading chunk by chunk left the short rows latency-bound. The per-lane order of
  // the sums is unchanged.
  for (int j0 = lane; j0 < n8; j0 += 32 * kBatch) {
    typename F::Chunk wa[kBatch], wb[kBatch];
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int j = j0 + 32 * u;
      wa[u] = j < n8 ? F::load(w0, j) : F::zero();
      wb[u] = j < n8 ? F::load(w1, j) : F::zero();
    }
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int j = j0 + 32 * u;
      if (j >= n8) break;
      float a[8], b[8];
      if constexpr (F::kGroups) {
        const int g = 8 * j / q.group;
        F::unpack(wa[u], a, gs0[g], static_cast<float>(gz0[g]));
        F::unpack(wb[u], b, gs0[ngroups + g], static_cast<float>(gz0[ngroups + g]));
      } else {
        F::unpack(wa[u], a, 1.f, 0.f);
        F::unpack(wb[u], b, 1.f, 0.f);
      }
      float xsc[8];
      if (xs) {
        const float4 lo = xs[2 * j], hi = xs[2 * j + 1];
        xsc[0] = lo.x, xsc[1] = lo.y, xsc[2] = lo.z, xsc[3] = lo.w, xsc[4] = hi.x, xsc[5] = hi.y, xsc[6] = hi.z, xsc[7] = hi.w;
      }
#pragma unroll
      for (int m = 0; m < kMoeTileRows; ++m) {
        if (m >= tile.rows) break;
        float xf[8];
        unpack8(xr[m][j], xf);
        if (xs) {
#pragma unroll
          for (int e = 0; e < 8; ++e) xf[e] = __fmul_rn(xf[e], xsc[e]);
        }
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          acc0[m] = fmaf(a[e], xf[e], acc0[m]);
          acc1[m] = fmaf(b[e], xf[e], acc1[m]);
        }
      }
    }
  }
#pragma unroll
  for (int m = 0; m < kMoeTileRows; ++m) {
    if (m >= tile.rows) break;
    float g = warp_sum(acc0[m]), u = warp_sum(acc1[m]);
    if (lane != m) continue;
    const size_t row = static_cast<size_t>(tile.row0 + m);
    if constexpr (F::kScaled) {
      if (q.x_row_scale) {  // int8_sq: (x's scale * the weight row's) * sum, as the CPU backend
        const float xs_row = q.x_row_scale[row];
        g *= xs_row * s0;
        u *= xs_row * s1;
      } else {
        g *= s0;
        u *= s1;
      }
    }
    if constexpr (kGateUp) {
      y[row * (N / 2) + n0 / 2] = __float2bfloat16_rn(silu_bf16(round_bf16(g)) * round_bf16(u));
    } else {
      y[row * N + n0] = __float2bfloat16_rn(g);
      y[row * N + n0 + 1] = __float2bfloat16_rn(u);
    }
  }
}

// Both projections of the listed tiles in format F: gate_up + SwiGLU into act, then down into out.
template <class F>
Status launch_experts(const char* name, const bf16* x, const typename F::Elem* gate_up, const ExpertQuant& gate_up_q,
                      const typename F::Elem* down, const ExpertQuant& down_q, const int32_t* row_token,
                      const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act,
                      bf16* out, const Exec& ex) {
  if (H % 8 != 0 || Im % 8 != 0) return invalid(name, "hidden and expert sizes must be multiples of 8");
  if constexpr (F::kScaled) {
    if (!gate_up_q.scale || !down_q.scale) return invalid(name, "int8_wo experts need their per-row scales");
  }
  if constexpr (F::kGroups) GRPST_TRY(check_int4_quant(name, gate_up_q, down_q, H, Im));
  if (max_tiles <= 0) return ok_status();
  const int rows_per_block = kWarps * kRowsPerWarp;
  GRPST_TRY(launch("moe_experts gate_up", moe_expert_rows_kernel<true, F>,
                   dim3(max_tiles, ceil_div(2 * Im, rows_per_block)), dim3(kWarps * 32), 0, ex, x, gate_up, gate_up_q,
                   row_token, tiles, tile_count, 2 * Im, H, act));
  return launch("moe_experts down", moe_expert_rows_kernel<false, F>, dim3(max_tiles, ceil_div(H, rows_per_block)),
                dim3(kWarps * 32), 0, ex, static_cast<const bf16*>(act), down, down_q, row_token, tiles, tile_count,
                H, Im, out);
}

// One block per token: thread 0 orders the token's K experts (distinct) by expert, then each
// thread adds 8 columns' weighted outputs in that order in fp32 and the sum to the residual.
__global__ void __launch_bounds__(128)
    moe_combine_kernel(const bf16* __restrict__ out /*[P,H]*/, const int32_t* __restrict__ choice,
                       const float* __restrict__ weight, const int32_t* __restrict__ slot, int H, int K,
                       bf16* __restrict__ h /*[T,H]*/) {
  __shared__ int32_t s_expert[kMoeMaxTopK], s_slot[kMoeMaxTopK];
  __shared__ float s_weight[kMoeMaxTopK];
  griddep_wait();
  griddep_launch_dependents();
  const size_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    for (int j = 0; j < K; ++j) {  // insertion sort by expert
      const int32_t e = choice[t * K + j], s = slot[t * K + j];
      const float wt = weight[t * K + j];
      int i = j;
      for (; i > 0 && s_expert[i - 1] > e; --i) {
        s_expert[i] = s_expert[i - 1];
        s_slot[i] = s_slot[i - 1];
        s_weight[i] = s_weight[i - 1];
      }
      s_expert[i] = e;
      s_slot[i] = s;
      s_weight[i] = wt;
    }
  }
  __syncthreads();
  uint4* hr = reinterpret_cast<uint4*>(h + t * H);
  for (int c = threadIdx.x; c < H / 8; c += blockDim.x) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int j = 0; j < K; ++j) {
      float o[8];
      unpack8(reinterpret_cast<const uint4*>(out + static_cast<size_t>(s_slot[j]) * H)[c], o);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] = fmaf(s_weight[j], o[e], acc[e]);
    }
    float f[8];
    unpack8(hr[c], f);
#pragma unroll
    for (int e = 0; e < 8; ++e) f[e] = f[e] + round_bf16(acc[e]);
    hr[c] = pack8(f);
  }
}

}  // namespace

Status moe_experts(const bf16* x, const bf16* gate_up, const bf16* down, const int32_t* row_token,
                   const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act, bf16* out,
                   const Exec& ex) {
  return launch_experts<Bf16Rows>("moe_experts", x, gate_up, {}, down, {}, row_token, tiles, tile_count, max_tiles, H,
                                  Im, act, out, ex);
}

Status moe_experts_int8(const bf16* x, const int8_t* gate_up, const float* gate_up_scale, const int8_t* down,
                        const float* down_scale, const int32_t* row_token, const MoeTile* tiles,
                        const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act, bf16* out,
                        const Exec& ex) {
  const auto [gq, dq] = int8_quant(gate_up_scale, down_scale);
  return launch_experts<Int8Rows>("moe_experts_int8", x, gate_up, gq, down, dq, row_token, tiles, tile_count,
                                  max_tiles, H, Im, act, out, ex);
}

Status moe_experts_int4(const bf16* x, const MoeInt4Experts& w, const int32_t* row_token, const MoeTile* tiles,
                        const int32_t* tile_count, int max_tiles, int H, int Im, bf16* act, bf16* out,
                        const Exec& ex) {
  const auto [gq, dq] = int4_quant(w);
  return launch_experts<Int4Rows>("moe_experts_int4", x, w.gate_up, gq, w.down, dq, row_token, tiles, tile_count,
                                  max_tiles, H, Im, act, out, ex);
}

Status moe_expert_rows_w8a8(bool gate_up, bool fp8, const bf16* xq, const uint8_t* w, const ExpertQuant& q,
                            const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int N, int K, bf16* y,
                            const Exec& ex) {
  if (N % 2 != 0 || K % 8 != 0) return invalid("moe_experts_w8a8", "hidden and expert sizes must be multiples of 8");
  if (!q.scale || !q.x_grouped) return invalid("moe_experts_w8a8", "8-bit experts need their row scales and quantized rows");
  if (max_tiles <= 0) return ok_status();
  const int32_t* no_tokens = nullptr;  // (x_grouped: rows are read by grouped row)
  const char* name = gate_up ? "moe_experts_w8a8 gate_up" : "moe_experts_w8a8 down";
  const auto run = [&](auto kernel, const auto* wt) {
    return launch(name, kernel, dim3(max_tiles, ceil_div(N, kWarps * kRowsPerWarp)), dim3(kWarps * 32), 0, ex, xq, wt,
                  q, no_tokens, tiles, tile_count, N, K, y);
  };
  const int8_t* w8 = reinterpret_cast<const int8_t*>(w);
  if (fp8) return gate_up ? run(moe_expert_rows_kernel<true, Fp8Rows>, w) : run(moe_expert_rows_kernel<false, Fp8Rows>, w);
  return gate_up ? run(moe_expert_rows_kernel<true, Int8Rows>, w8) : run(moe_expert_rows_kernel<false, Int8Rows>, w8);
}

Status moe_combine(const bf16* out, const int32_t* choice, const float* weight, const int32_t* slot, int T, int H,
                   int K, bf16* h, const Exec& ex) {
  if (H % 8 != 0) return invalid("moe_combine", "hidden size must be a multiple of 8");
  if (K < 1 || K > kMoeMaxTopK) return invalid("moe_combine", "top k must be between 1 and 32");
  return launch("moe_combine", moe_combine_kernel, dim3(T), dim3(128), 0, ex, out, choice, weight, slot, H, K, h);
}

}  // namespace grpst::cuda
