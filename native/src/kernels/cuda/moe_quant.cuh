// The quantization parameters the MoE expert kernels take beside the weights (the tile kernel,
// moe_experts.cu; the wide tiles, moe_experts_mma.cu), how each format fills them, and the checks
// both launchers make of int4's.
#pragma once
#include <string>
#include <utility>

#include "cuda_status.h"
#include "moe.h"

namespace grpst::cuda {

// Null / 0 where the format has none.
struct ExpertQuant {
  const float* scale = nullptr;    // int8_wo, fp8, int8_sq: [E, N] one per row; int4: [E, N, K / group] one per group
  const uint8_t* zero = nullptr;   // int4: [E, N, K / group]
  const float* x_scale = nullptr;  // int4 gate_up: [E, K] the expert's AWQ input scale (null: none)
  int group = 0;                   // int4: weights per group along K, a multiple of 8
  // fp8 / int8_sq (moe_experts_w8a8): x holds the grouped rows already quantized (their values in
  // bf16, exact), gate_up's too, so rows are read by grouped row and not through row_token; int8_sq's
  // per-row scales [P] multiply each sum with the weight row's scale, as (x_row_scale * scale) * sum.
  bool x_grouped = false;
  const float* x_row_scale = nullptr;
};

// int8_wo: gate_up's and down's per-row scales.
inline std::pair<ExpertQuant, ExpertQuant> int8_quant(const float* gate_up_scale, const float* down_scale) {
  ExpertQuant gq, dq;
  gq.scale = gate_up_scale;
  dq.scale = down_scale;
  return {gq, dq};
}

// int4_awq: gate_up's (with the input scales) and down's groups.
inline std::pair<ExpertQuant, ExpertQuant> int4_quant(const MoeInt4Experts& w) {
  ExpertQuant gq, dq;
  gq.scale = w.gate_up_scale;
  gq.zero = w.gate_up_zero;
  gq.x_scale = w.pre_quant_scale;
  gq.group = w.gate_up_group;
  dq.scale = w.down_scale;
  dq.zero = w.down_zero;
  dq.group = w.down_group;
  return {gq, dq};
}

// int4's scales and zeros present, and groups a multiple of 8 that divide their rows (gate_up's
// H, down's Im): a chunk of 8 weights then lies in one group.
inline Status check_int4_quant(const char* op, const ExpertQuant& gq, const ExpertQuant& dq, int H, int Im) {
  if (!gq.scale || !gq.zero || !dq.scale || !dq.zero) return invalid(op, "int4 experts need their group scales and zeros");
  for (const auto& [q, K] : {std::pair<const ExpertQuant&, int>{gq, H}, {dq, Im}})
    if (q.group < 8 || q.group % 8 != 0 || K % q.group != 0)
      return invalid(op, "int4 groups must be a multiple of 8 that divides the row (" + std::to_string(q.group) +
                             " for " + std::to_string(K) + ")");
  return ok_status();
}

// One projection of moe_experts_w8a8 over rows quantized as ExpertQuant says (x_grouped): kGateUp
// writes SwiGLU's bf16 outputs [P, N / 2], else bf16 [P, N]. The tile kernel (moe_experts.cu) and
// the tensor-core tiles (moe_experts_mma.cu, H and Im multiples of 16); fp8: e4m3 weights, else int8.
Status moe_expert_rows_w8a8(bool gate_up, bool fp8, const __nv_bfloat16* xq, const uint8_t* w, const ExpertQuant& q,
                            const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int N, int K, __nv_bfloat16* y,
                            const Exec& ex);
Status moe_expert_wide_w8a8(bool gate_up, bool fp8, const __nv_bfloat16* xq, const uint8_t* w, const ExpertQuant& q,
                            const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int N, int K, __nv_bfloat16* y,
                            const Exec& ex);

}  // namespace grpst::cuda
