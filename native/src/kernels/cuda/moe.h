// Qwen3-MoE's sparse MLP on the GPU (bf16, int8_wo, int4_awq, fp8 or int8_sq experts), as the CPU backend computes it
// (native/src/model/moe_mlp.cpp) for each token x [H] (already RMS-normalised):
//   p = softmax(W_router x)          [E] fp32
//   the k largest p (ties: the lower expert), divided by their sum when norm_topk_prob
//   y = sum over those experts, in expert order, of p_j * down_j(silu(gate_j x) * up_j x)
// Four launches (steps of many tokens take moe_experts_wide's tensor-core tiles), none of which needs the host to know how the tokens were routed (so a decode
// step stays capturable in a CUDA graph):
//   moe_route    router logits, softmax and top k per token
//   moe_group    the step's (token, rank) pairs grouped by expert into tiles of up to
//                kMoeTileRows rows of one expert, listed on the device
//   moe_experts  per tile: gate_up + SwiGLU, then down, each expert's weights read once per tile
//   moe_combine  each token's expert outputs weighted and summed in expert order, added to the
//                residual stream
// The grids are sized from the step's token count (a bound on the tiles), and tiles past the
// ones listed exit at once. CPU twins: ref::moe_* in test/gpu/kernels/reference_moe.cpp.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "cuda_status.h"

namespace grpst::cuda {

// Grouped rows of one expert per tile: the rows a tile's warps keep in registers while each
// weight row streams past once.
constexpr int kMoeTileRows = 8;
// Grouped rows per tile of moe_experts_wide (tensor cores), for steps of many tokens.
constexpr int kMoeWideRows = 64;
// Tokens in a step from which the forward takes the wide tiles (GRPST_CUDA_MOE_WIDE_MIN_TOKENS
// overrides it; 0 never). Below it decode batches keep the tile kernel: on the H100, one
// Qwen3-30B-A3B sparse layer took the wide tiles 0.87-0.96x the tile kernel's speed at 1-32
// tokens and 1.24x at 64, 2.2x at 128, 11x at 2,048 (`grpst_gpu_harness moe`,
// docs/benchmarks-moe.md).
constexpr int kMoeWideMinTokens = 64;
// Limits of the routing kernel: each lane of a warp holds at most 32 experts' taken bits.
constexpr int kMoeMaxExperts = 1024;
constexpr int kMoeMaxTopK = 32;

// A tile of grouped rows [row0, row0 + rows) that all chose `expert`.
struct MoeTile {
  int expert;
  int row0;
  int rows;
  int pad;
};

// Tiles of up to tile_rows rows a step of `pairs` (token, rank) pairs over E experts can need at
// most: every expert's last tile may be partial, and at most min(E, pairs) experts are chosen.
inline int moe_max_tiles(int pairs, int E, int tile_rows = kMoeTileRows) {
  return (pairs + tile_rows - 1) / tile_rows + (pairs < E ? pairs : E);
}

// logits[t] = router . x[t] in fp32 (x and router bf16); then per token the softmax over the E
// logits, the K largest probabilities falling (ties: the lower expert) as choice[t, j], and their
// weights (divided by the K probabilities' sum when norm_topk).
Status moe_route(const __nv_bfloat16* x /*[T,H]*/, const __nv_bfloat16* router /*[E,H]*/, int T, int H, int E, int K,
                 bool norm_topk, float* logits /*[T,E]*/, int32_t* choice /*[T,K]*/, float* weight /*[T,K]*/,
                 const Exec& ex);

// Groups the P = T * K pairs by expert (pairs of one expert in pair order): slot[p] is the grouped
// row of pair p, row_token[r] the token of grouped row r, and tiles[0, *tile_count) the tiles of
// up to tile_rows rows (kMoeTileRows, or kMoeWideRows for moe_experts_wide) in expert order. One
// warp: a step's pairs are few, and the order stays the same on every run.
Status moe_group(const int32_t* choice /*[P]*/, int P, int K, int E, int32_t* slot /*[P]*/,
                 int32_t* row_token /*[P]*/, MoeTile* tiles /*[moe_max_tiles(P, E, tile_rows)]*/,
                 int32_t* tile_count /*[1]*/, const Exec& ex, int tile_rows = kMoeTileRows);

// Calibration statistics of each expert's inputs (column_abs_stats per expert, kernels.h): for every
// listed tile, abs_max[e, c] = max(abs_max[e, c], max |x[row_of[r], c]|) and abs_sum[e, c] += sum
// |x[row_of[r], c]| over its rows r (row_of null: x's grouped row r itself, as act is laid out), e the
// tile's expert, and rows_seen[e] (when not null) += its rows. Rows summed in fp32 per tile, the tiles'
// sums in fp64 in an order that varies; accumulates into what the buffers hold.
Status expert_column_abs_stats(const __nv_bfloat16* x /*[T or P, cols]*/, const int32_t* row_of /*[P] or null*/,
                               const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int cols,
                               float* abs_max /*[E, cols]*/, double* abs_sum /*[E, cols]*/,
                               unsigned long long* rows_seen /*[E] or null*/, const Exec& ex);

// Every listed tile's rows through its expert: act[r] = SwiGLU(gate_up_e . x[row_token[r]]) with
// the dense layers' rounding (gate_up rows interleaved gate_0, up_0, gate_1, ...), then
// out[r] = bf16(down_e . act[r]). max_tiles: the grid's bound (moe_max_tiles of the step).
Status moe_experts(const __nv_bfloat16* x /*[T,H]*/, const __nv_bfloat16* gate_up /*[E,2Im,H]*/,
                   const __nv_bfloat16* down /*[E,H,Im]*/, const int32_t* row_token /*[P]*/,
                   const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im,
                   __nv_bfloat16* act /*[P,Im]*/, __nv_bfloat16* out /*[P,H]*/, const Exec& ex);
// The same with int8_wo experts: int8 weights stacked and interleaved as above, one fp32 scale per
// weight row (gate_up_scale interleaved like its rows); each row's fp32 sum of int8 weight times
// activation is multiplied by its scale before the rounding: act[r] = bf16(silu_bf16(bf16(g sg))
// * bf16(u su)), out[r] = bf16(down sum * s).
Status moe_experts_int8(const __nv_bfloat16* x /*[T,H]*/, const int8_t* gate_up /*[E,2Im,H]*/,
                        const float* gate_up_scale /*[E,2Im]*/, const int8_t* down /*[E,H,Im]*/,
                        const float* down_scale /*[E,H]*/, const int32_t* row_token /*[P]*/, const MoeTile* tiles,
                        const int32_t* tile_count, int max_tiles, int H, int Im, __nv_bfloat16* act /*[P,Im]*/,
                        __nv_bfloat16* out /*[P,H]*/, const Exec& ex);

// int4_awq experts as the engine stores them, stacked over the experts (gate_up's rows interleaved
// gate_0, up_0, gate_1, ... as above, with their group scales and zeros): nibbles [E, 2Im, H/2] and
// [E, H, Im/2] (element 2j the low nibble of byte j); per group of `group` weights along a row an
// fp32 scale and a uint8 zero, w = (q - zero) * scale; pre_quant_scale [E, H], AWQ's per-expert
// scale of gate_up's input (the experts share the norm it would fold into; null: none).
struct MoeInt4Experts {
  const uint8_t* gate_up = nullptr;         // [E, 2Im, H/2]
  const float* gate_up_scale = nullptr;     // [E, 2Im, H/gate_up_group]
  const uint8_t* gate_up_zero = nullptr;    // [E, 2Im, H/gate_up_group]
  const float* pre_quant_scale = nullptr;   // [E, H] or null
  int gate_up_group = 0;
  const uint8_t* down = nullptr;            // [E, H, Im/2]
  const float* down_scale = nullptr;        // [E, H, Im/down_group]
  const uint8_t* down_zero = nullptr;       // [E, H, Im/down_group]
  int down_group = 0;
};
// moe_experts with int4_awq experts on the tile kernel (decode steps): x [T, H] scaled by the
// expert's pre_quant_scale in fp32, each row's fp32 sum of decoded weight times x, then the same
// roundings as the other formats. Groups: multiples of 8 dividing the row.
Status moe_experts_int4(const __nv_bfloat16* x /*[T,H]*/, const MoeInt4Experts& w, const int32_t* row_token /*[P]*/,
                        const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im,
                        __nv_bfloat16* act /*[P,Im]*/, __nv_bfloat16* out /*[P,H]*/, const Exec& ex);

// moe_experts_int4 on the tensor cores (the wide tiles): each stage's nibble rows widened in shared
// memory to bf16((q - zero) * scale * input scale), one rounding of each weight (the tile kernel
// keeps them in fp32 and scales x instead); H and Im multiples of 16.
Status moe_experts_wide_int4(const __nv_bfloat16* x /*[T,H]*/, const MoeInt4Experts& w,
                             const int32_t* row_token /*[P]*/, const MoeTile* tiles, const int32_t* tile_count,
                             int max_tiles, int H, int Im, __nv_bfloat16* act /*[P,Im]*/,
                             __nv_bfloat16* out /*[P,H]*/, const Exec& ex);

// fp8 / int8_sq experts (both operands 8-bit), stacked and interleaved as above; null where the
// format has none.
struct MoeW8A8Experts {
  bool fp8 = false;                             // e4m3 weights, static input scales; else int8_sq
  const uint8_t* gate_up = nullptr;             // [E, 2Im, H] e4m3 or int8
  const float* gate_up_scale = nullptr;         // [E, 2Im] fp8: input_scale * weight_scale; int8_sq: the row's
  const uint8_t* down = nullptr;                // [E, H, Im]
  const float* down_scale = nullptr;            // [E, H] likewise
  const float* gate_up_input_scale = nullptr;   // fp8: [E] gate/up's shared static input scale
  const float* down_input_scale = nullptr;      // fp8: [E]
  const float* pre_quant_scale = nullptr;       // int8_sq: [E, H] SmoothQuant's factors of gate_up's input, or null
};
// The listed tiles through 8-bit experts (moe_w8a8.cu): each projection's input rows quantized per
// grouped row first (fp8: e4m3(v / input scale); int8_sq: by the row's amax / 127 after the
// factors) into xq [P, max(H, Im)] as exact bf16 values (xs [P]: int8_sq's row scales), then the
// tile kernel or, `wide`, the tensor-core tiles (H and Im multiples of 16; moe_group's tiles of
// that size) with each row's fp32 sum times (int8_sq: x row scale *) its weight row's scale and the
// roundings above. choice / slot as moe_route / moe_group wrote them.
Status moe_experts_w8a8(const __nv_bfloat16* x /*[T,H]*/, const MoeW8A8Experts& w, const int32_t* choice /*[P]*/,
                        const int32_t* slot /*[P]*/, const MoeTile* tiles, const int32_t* tile_count, int max_tiles,
                        int T, int K, int H, int Im, bool wide, __nv_bfloat16* xq, float* xs,
                        __nv_bfloat16* act /*[P,Im]*/, __nv_bfloat16* out /*[P,H]*/, const Exec& ex);

// moe_experts on the tensor cores for tiles of up to kMoeWideRows rows (moe_group with that
// tile_rows): the same results within fp32 summation order (moe_experts_mma.cu).
Status moe_experts_wide(const __nv_bfloat16* x /*[T,H]*/, const __nv_bfloat16* gate_up /*[E,2Im,H]*/,
                        const __nv_bfloat16* down /*[E,H,Im]*/, const int32_t* row_token /*[P]*/,
                        const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im,
                        __nv_bfloat16* act /*[P,Im]*/, __nv_bfloat16* out /*[P,H]*/, const Exec& ex);
// moe_experts_int8 on the tensor cores (the same tiles): each stage's int8 weight rows widened to
// bf16 in shared memory, the row scales applied to the fp32 sums as there; H and Im multiples of 16.
Status moe_experts_wide_int8(const __nv_bfloat16* x /*[T,H]*/, const int8_t* gate_up /*[E,2Im,H]*/,
                             const float* gate_up_scale /*[E,2Im]*/, const int8_t* down /*[E,H,Im]*/,
                             const float* down_scale /*[E,H]*/, const int32_t* row_token /*[P]*/,
                             const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int H, int Im,
                             __nv_bfloat16* act /*[P,Im]*/, __nv_bfloat16* out /*[P,H]*/, const Exec& ex);

// h[t] = bf16(h[t] + bf16(sum over the token's K experts in expert order of weight * out[slot]))
// with the sum in fp32.
Status moe_combine(const __nv_bfloat16* out /*[P,H]*/, const int32_t* choice /*[T,K]*/, const float* weight /*[T,K]*/,
                   const int32_t* slot /*[T,K]*/, int T, int H, int K, __nv_bfloat16* h /*[T,H]*/, const Exec& ex);

}  // namespace grpst::cuda
