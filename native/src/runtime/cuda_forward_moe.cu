// Qwen3-MoE's sparse layers in the CUDA forward: after attention, the post-attention norm of the
// residual stream is routed (router logits, softmax, top k) and run through the chosen experts,
// whose weighted outputs are added to the stream in expert order, as the CPU backend does
// (native/src/model/moe_mlp.cpp). The kernels (kernels/cuda/moe.h) group the step's tokens by
// expert on the device and are launched over a bound on the tiles taken from the token count
// alone, so no step reads anything back and decode steps are captured in graphs like dense ones.
// Steps of many tokens (prefill) take the tensor-core expert tiles (moe_experts_wide).
#include <algorithm>

#include "cuda_forward.h"

namespace grpst::cuda {

Status Forward::allocate_moe() {
  const MoeDims& m = dims_.moe;
  if (m.experts == 0) return ok_status();
  const size_t T = limits_.max_tokens, E = m.experts, P = T * m.top_k, H = dims_.hidden, Im = m.intermediate;
  const size_t tiles = moe_max_tiles(static_cast<int>(P), static_cast<int>(E));
  // fp8 / int8_sq experts quantize each projection's input rows first (moe_experts_w8a8).
  bool w8a8 = false;
  for (const LayerWeights& l : w_.layers)
    w8a8 = w8a8 || (l.moe.on() && (l.moe.format == WeightFormat::fp8 || l.moe.format == WeightFormat::int8_sq));
  const size_t xq_bytes = w8a8 ? P * std::max(H, Im) * 2 : 0, xs_bytes = w8a8 ? P * 4 : 0;
  // One allocation, each array at a 256-byte boundary.
  const size_t sizes[] = {T * H * 2, T * E * 4, P * 4, P * 4, P * 4, P * 4, tiles * sizeof(MoeTile), 4, P * Im * 2, P * H * 2,
                          xq_bytes, xs_bytes};
  size_t total = 0;
  for (size_t b : sizes) total += (b + 255) / 256 * 256;
  void* base = nullptr;
  GRPST_CUDA_CHECK("Forward MoE scratch", cudaMalloc(&base, total));
  allocations_.push_back(base);
  scratch_bytes_ += total;
  char* p = static_cast<char*>(base);
  constexpr int kArrays = sizeof(sizes) / sizeof(sizes[0]);
  void* at[kArrays];
  for (int i = 0; i < kArrays; ++i) {
    at[i] = p;
    p += (sizes[i] + 255) / 256 * 256;
  }
  moe_.xn = static_cast<bf16*>(at[0]);
  moe_.logits = static_cast<float*>(at[1]);
  moe_.choice = static_cast<int32_t*>(at[2]);
  moe_.weight = static_cast<float*>(at[3]);
  moe_.slot = static_cast<int32_t*>(at[4]);
  moe_.row_token = static_cast<int32_t*>(at[5]);
  moe_.tiles = static_cast<MoeTile*>(at[6]);
  moe_.tile_count = static_cast<int32_t*>(at[7]);
  moe_.act = static_cast<bf16*>(at[8]);
  moe_.out = static_cast<bf16*>(at[9]);
  moe_.xq = w8a8 ? static_cast<bf16*>(at[10]) : nullptr;
  moe_.xs = w8a8 ? static_cast<float*>(at[11]) : nullptr;
  return ok_status();
}

Status Forward::moe_mlp(int layer, const LayerWeights& lw, int T, const Exec& ex) {
  const MoeDims& m = dims_.moe;
  const int H = dims_.hidden, E = m.experts, K = m.top_k, P = T * K;
  if (!moe_.xn) return invalid("Forward::moe_mlp", "no MoE scratch (the dimensions give no experts)");
  // The router and every expert read the same normalised rows: materialised once, with the
  // rounding the dense gate_up's fused prologue applies.
  LinearIn in;
  in.x = h_;
  in.norm_w = lw.post_norm;
  in.eps = dims_.eps;
  GRPST_TRY(linear_prologue(in, moe_.xn, T, H, ex));
  GRPST_TRY(moe_route(moe_.xn, lw.moe.router, T, H, E, K, m.norm_topk, moe_.logits, moe_.choice, moe_.weight, ex));
  // Prefill-sized steps: tiles of up to kMoeWideRows rows on the tensor cores, each expert's
  // weights read once per 64 of its rows (quantized ones widened to bf16 in shared memory, where H
  // and Im are multiples of 16); decode steps: the tile kernel (a few rows per expert).
  const MoeWeights& w = lw.moe;
  // else bf16 (Forward::create admits no other)
  const bool int8 = w.format == WeightFormat::int8_wo, int4 = w.format == WeightFormat::int4_awq;
  const bool w8a8 = w.format == WeightFormat::fp8 || w.format == WeightFormat::int8_sq;
  const bool wide_fits = w.format == WeightFormat::bf16 || (H % 16 == 0 && m.intermediate % 16 == 0);
  const bool wide = wide_fits && moe_wide_min_tokens_ > 0 && T >= moe_wide_min_tokens_;
  const int tile_rows = wide ? kMoeWideRows : kMoeTileRows;
  GRPST_TRY(moe_group(moe_.choice, P, K, E, moe_.slot, moe_.row_token, moe_.tiles, moe_.tile_count, ex, tile_rows));
  const int max_tiles = moe_max_tiles(P, E, tile_rows);
  if (w8a8) {
    if (!moe_.xq) return invalid("Forward::moe_mlp", "no scratch for 8-bit experts' inputs");
    GRPST_TRY(moe_experts_w8a8(moe_.xn, w.w8a8, moe_.choice, moe_.slot, moe_.tiles, moe_.tile_count, max_tiles, T, K, H,
                               m.intermediate, wide, moe_.xq, moe_.xs, moe_.act, moe_.out, ex));
  } else if (int4) {
    const auto experts = wide ? moe_experts_wide_int4 : moe_experts_int4;
    GRPST_TRY(experts(moe_.xn, w.int4, moe_.row_token, moe_.tiles, moe_.tile_count, max_tiles, H, m.intermediate,
                      moe_.act, moe_.out, ex));
  } else if (int8) {
    const auto experts = wide ? moe_experts_wide_int8 : moe_experts_int8;
    GRPST_TRY(experts(moe_.xn, static_cast<const int8_t*>(w.gate_up), w.gate_up_scale, static_cast<const int8_t*>(w.down),
                      w.down_scale, moe_.row_token, moe_.tiles, moe_.tile_count, max_tiles, H, m.intermediate, moe_.act,
                      moe_.out, ex));
  } else {
    const auto experts = wide ? moe_experts_wide : moe_experts;
    GRPST_TRY(experts(moe_.xn, static_cast<const bf16*>(w.gate_up), static_cast<const bf16*>(w.down), moe_.row_token,
                      moe_.tiles, moe_.tile_count, max_tiles, H, m.intermediate, moe_.act, moe_.out, ex));
  }
  if (taps_) {
    const ExpertTapInputs seen{moe_.xn, moe_.act, moe_.choice, moe_.slot, moe_.row_token, moe_.tiles, moe_.tile_count,
                               max_tiles, T, K, E, H, m.intermediate};
    GRPST_TRY(taps_->expert_inputs(layer, seen, ex));
  }
  return moe_combine(moe_.out, moe_.choice, moe_.weight, moe_.slot, T, H, K, h_, ex);
}

}  // namespace grpst::cuda
