// CPU twins of the Qwen3-MoE kernels (native/src/kernels/cuda/moe.h): routing as the CPU backend
// takes it (native/src/model/moe_mlp.cpp), the grouping the kernels list, and the experts and the
// combine with the kernels' rounding points; dot products in double.
#pragma once
#include <cstdint>
#include <vector>

#include "../../../native/src/kernels/cuda/moe.h"
#include "reference.h"

namespace ref {

using VI = std::vector<int32_t>;

// logits[t, e] = router[e] . x[t], in double rounded to fp32.
void moe_router_logits(const V16& x /*[T,H]*/, const V16& router /*[E,H]*/, int T, int H, int E, VF& logits);
// From fp32 logits: softmax, the K largest (ties: the lower expert), weights renormalised when
// norm_topk: MoeMlp::route's arithmetic.
void moe_route_from_logits(const VF& logits /*[T,E]*/, int T, int E, int K, bool norm_topk, VI& choice, VF& weight);
// Pairs grouped by expert in pair order: slot [P], row_token [P], and the tiles (expert, row0,
// rows) of at most tile_rows rows in expert order, flattened as 3 ints each.
void moe_group(const VI& choice, int P, int K, int E, VI& slot, VI& row_token, VI& tiles,
               int tile_rows = grpst::cuda::kMoeTileRows);
// Each expert's calibration totals over the grouped rows of the tiles (3 ints each, as moe_group
// lists them): abs_max / abs_sum [E, cols] of |x[row_of[r]]| (row_of empty: x's row r), rows_seen [E]
// the rows each expert took.
void moe_expert_column_abs_stats(const V16& x, const VI& row_of, const VI& tiles, int cols, VF& abs_max,
                                 std::vector<double>& abs_sum, std::vector<uint64_t>& rows_seen);
// act[r] = SwiGLU(gate_up_e . x[row_token[r]]), out[r] = bf16(down_e . act[r]) for the grouped rows
// r, e their expert; act and out are bf16 values as floats. act_in, when not null, is the
// down projection's input instead of this twin's own act (to check the down kernel alone).
void moe_experts(const V16& x /*[T,H]*/, const V16& gate_up /*[E,2Im,H]*/, const V16& down /*[E,H,Im]*/,
                 const VI& row_token, const VI& row_expert, int P, int H, int Im, VF& act, VF& out,
                 const VF* act_in = nullptr);
// The same with int8_wo experts: int8 weights laid out as above, one fp32 scale per weight row
// (gate_up_scale [E, 2Im] interleaved like its rows, down_scale [E, H]), each row's sum multiplied
// by its scale before the rounding.
void moe_experts_int8(const V16& x /*[T,H]*/, const std::vector<int8_t>& gate_up /*[E,2Im,H]*/,
                      const VF& gate_up_scale /*[E,2Im]*/, const std::vector<int8_t>& down /*[E,H,Im]*/,
                      const VF& down_scale /*[E,H]*/, const VI& row_token, const VI& row_expert, int P, int H, int Im,
                      VF& act, VF& out, const VF* act_in = nullptr);
// int4 weights as the engine stores them: nibbles [rows, K/2] (element 2j the low nibble of byte j),
// per group of `group` weights along a row an fp32 scale and a uint8 zero [rows, K/group].
struct Int4Matrix {
  std::vector<uint8_t> q, zero;
  VF scale;
  int group = 0;
};
// The same with int4_awq experts (gate_up [E,2Im,H] interleaved as above, down [E,H,Im]), each weight
// (q - zero) * scale; gate_up's input scaled per expert by pre_quant_scale [E,H] in fp32 (null: none).
// wide: as the tensor-core tiles take them, each weight rounded to bf16 once, gate_up's multiplied
// by its column's input scale before that rounding (x itself unscaled).
void moe_experts_int4(const V16& x /*[T,H]*/, const Int4Matrix& gate_up, const VF* pre_quant_scale,
                      const Int4Matrix& down, const VI& row_token, const VI& row_expert, int P, int H, int Im, VF& act,
                      VF& out, const VF* act_in = nullptr, bool wide = false);
// fp8 / int8_sq experts as moe_experts_w8a8 takes them (weights [E,2Im,H] interleaved and [E,H,Im] as
// e4m3 or int8 bytes, a scale per weight row).
struct W8A8Experts {
  bool fp8 = false;
  std::vector<uint8_t> gate_up, down;
  VF gate_up_scale, down_scale;                 // [E,2Im], [E,H]: fp8 input_scale * weight_scale
  VF gate_up_input_scale, down_input_scale;     // fp8 [E]
  VF pre_quant_scale;                           // int8_sq [E,H], or empty
};
// Each grouped row's input quantized as the dense fp8 / int8_sq twins quantize (fp8: e4m3(v / input
// scale); int8_sq: v times the expert's factors in fp32, then v / (amax / 127) rounded and clamped,
// the row's scale amax / 127), the products exact and summed in double, each sum times (int8_sq:
// the row's scale *) its weight row's scale, then the roundings of the other formats. act_in as above.
void moe_experts_w8a8(const V16& x /*[T,H]*/, const W8A8Experts& w, const VI& row_token, const VI& row_expert, int P,
                      int H, int Im, VF& act, VF& out, const VF* act_in = nullptr);
// h[t] = bf16(h[t] + bf16(sum in expert order of weight * out[slot])), the sum in fp32 with fma
// as the kernel adds.
void moe_combine(const V16& out /*[P,H]*/, const VI& choice, const VF& weight, const VI& slot, int T, int H, int K,
                 V16& h);

}  // namespace ref
