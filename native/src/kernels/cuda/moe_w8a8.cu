// Qwen3-MoE's fp8 and int8_sq experts: weights and activations both 8-bit. Each projection's input
// rows are quantized first, one grouped row per (token, rank) pair, as the dense fp8 / int8_sq
// linears quantize theirs (quantize.cu: the same division, rounding and clamping):
//   fp8:     e4m3(v / input_scale), the expert's static input scale (gate and up share one);
//   int8_sq: round(v / (amax / 127)) clamped to +-127, amax the row's own after SmoothQuant's
//            per-expert factors (gate_up's input only; down's fold into up's rows at build time).
// The quantized values are written as bf16 (exact: e4m3 and |q| <= 127 fit its 8 bits), so the
// expert kernels' bf16 x paths read them (moe_experts.cu's tile kernel for decode steps, the
// tensor-core tiles for wide ones, each widening its 8-bit weights exactly): the products are those
// of 8-bit tensor cores, summed in fp32; each sum times (int8_sq: x row scale *) the weight row's
// scale (fp8: input_scale * weight_scale), then the bf16 roundings of the other formats.
#include "device_utils.cuh"
#include "linear_common.cuh"
#include "moe.h"
#include "moe_quant.cuh"

namespace grpst::cuda {
namespace {

constexpr int kThreads = 128;

// One block per pair p: its grouped row r = slot[p] of expert e = choice[p], read from src[p / K]
// (by_token: gate_up's input, the token's normalised row) or src[r] (down's: the SwiGLU outputs),
// L columns; pqs [E, L] multiplies the values first in fp32 (null: none). fp8 divides by div[e];
// int8_sq by the row's amax / 127, kept in xs[r]. xq [P, L] gets the values as bf16.
__global__ void __launch_bounds__(kThreads)
    moe_quantize_rows_kernel(const bf16* __restrict__ src, bool by_token, const int32_t* __restrict__ choice,
                             const int32_t* __restrict__ slot, int K, int L, bool fp8, const float* __restrict__ div_e,
                             const float* __restrict__ pqs, bf16* __restrict__ xq, float* __restrict__ xs) {
  __shared__ float scratch[33];
  griddep_wait();
  griddep_launch_dependents();
  const int p = blockIdx.x, r = slot[p], e = choice[p];
  const uint4* row = reinterpret_cast<const uint4*>(src + static_cast<size_t>(by_token ? p / K : r) * L);
  const float* s = pqs ? pqs + static_cast<size_t>(e) * L : nullptr;
  const auto load = [&](int j, float (&f)[8]) {
    unpack8(row[j], f);
    if (s) {
#pragma unroll
      for (int i = 0; i < 8; ++i) f[i] = __fmul_rn(f[i], s[8 * j + i]);
    }
  };
  float div = 1.f;
  if (fp8) {
    div = div_e[e];
  } else {
    float amax = 0.f;  // (fmaxf keeps the other operand where one is NaN, as the CPU's max skips NaN)
    for (int j = threadIdx.x; j < L / 8; j += kThreads) {
      float f[8];
      load(j, f);
#pragma unroll
      for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(f[i]));
    }
    amax = block_max(amax, scratch);
    if (threadIdx.x == 0) xs[r] = amax / 127.f;
    if (amax > 0.f) div = amax / 127.f;
  }
  const float inv = __frcp_rn(div);
  uint4* out = reinterpret_cast<uint4*>(xq + static_cast<size_t>(r) * L);
  for (int j = threadIdx.x; j < L / 8; j += kThreads) {
    float f[8];
    load(j, f);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float v = div_by(f[i], div, inv);
      f[i] = fp8 ? e4m3_to_f32(f32_to_e4m3(v)) : static_cast<float>(f32_to_i8(v));
    }
    out[j] = pack8(f);
  }
}

}  // namespace

Status moe_experts_w8a8(const bf16* x, const MoeW8A8Experts& w, const int32_t* choice, const int32_t* slot,
                        const MoeTile* tiles, const int32_t* tile_count, int max_tiles, int T, int K, int H, int Im,
                        bool wide, bf16* xq, float* xs, bf16* act, bf16* out, const Exec& ex) {
  const char* op = "moe_experts_w8a8";
  // (every refusal before the first launch: nothing runs of a call that fails)
  if (H % 8 != 0 || Im % 8 != 0) return invalid(op, "hidden and expert sizes must be multiples of 8");
  if (wide && (H % 16 != 0 || Im % 16 != 0))
    return invalid(op, "the tensor-core tiles need hidden and expert sizes that are multiples of 16");
  if (!w.gate_up || !w.down || !w.gate_up_scale || !w.down_scale)
    return invalid(op, "8-bit experts need their weights and row scales");
  if (w.fp8 && (!w.gate_up_input_scale || !w.down_input_scale)) return invalid(op, "fp8 experts need their input scales");
  const int P = T * K;
  if (P <= 0) return ok_status();
  ExpertQuant gq, dq;
  gq.scale = w.gate_up_scale;
  dq.scale = w.down_scale;
  gq.x_grouped = dq.x_grouped = true;
  gq.x_row_scale = dq.x_row_scale = w.fp8 ? nullptr : xs;
  const auto projection = wide ? moe_expert_wide_w8a8 : moe_expert_rows_w8a8;
  GRPST_TRY(launch("moe_experts_w8a8 quantize gate_up input", moe_quantize_rows_kernel, dim3(P), dim3(kThreads), 0, ex, x,
                   true, choice, slot, K, H, w.fp8, w.gate_up_input_scale, w.fp8 ? nullptr : w.pre_quant_scale, xq, xs));
  GRPST_TRY(projection(true, w.fp8, xq, w.gate_up, gq, tiles, tile_count, max_tiles, 2 * Im, H, act, ex));
  GRPST_TRY(launch("moe_experts_w8a8 quantize down input", moe_quantize_rows_kernel, dim3(P), dim3(kThreads), 0, ex,
                   static_cast<const bf16*>(act), false, choice, slot, K, Im, w.fp8, w.down_input_scale,
                   static_cast<const float*>(nullptr), xq, xs));
  return projection(false, w.fp8, xq, w.down, dq, tiles, tile_count, max_tiles, H, Im, out, ex);
}

}  // namespace grpst::cuda
