// LoRA adapters on the GPU (vLLM's multi-LoRA serving, computed as PEFT computes an unmerged
// layer): after a projection, rows that run an adapter add scale * B (A x) to its output. Each
// row names its adapter through a device table, so one step (and one captured CUDA graph) mixes
// rows of the base model and of several adapters, and a graph stays valid while adapters come
// and go: only the table's contents change. The CPU twin is grpst::lora_add
// (native/src/runtime/lora.cpp) and ref::lora_add in the kernel harness.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "cuda_status.h"

namespace grpst::cuda {

// The projections in PEFT's order, as grpst::LoraTarget numbers them.
constexpr int kLoraTargetCount = 7;
enum LoraTargetIndex : int { kLoraQ = 0, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown };
// Output columns per block of LoraProj::bt (grpst::kLoraCols: the CPU runner's layout, kept).
constexpr int kLoraBlockCols = 64;

// One adapted projection of one layer, in device memory.
struct LoraProj {
  const __nv_bfloat16* a = nullptr;   // [rank, in]
  const __nv_bfloat16* bt = nullptr;  // [ceil(out / 64)][rank][64]: B transposed in blocks of 64 outputs
  int rank = 0;                       // 0: this projection is not adapted
  float scale = 0.f;                  // lora_alpha / rank (or / sqrt(rank), rsLoRA)
};

// One step's rows and their adapters. rows[m] is the adapter's table [layers][kLoraTargetCount]
// for token row m, or null for a row of the base model; t is the scratch between A and B.
struct LoraStep {
  const LoraProj* const* rows = nullptr;  // [M] device pointers; null `rows`: no adapters this step
  float* t = nullptr;                     // [M, 3, max_rank] fp32: A x of up to three targets
  int max_rank = 0;                       // the largest rank t holds
};

// The targets of one projection call that share its input, with where each writes in y: output
// column j of target i lands at y[m, offset[i] + j * stride] (QKV: q, k, v side by side;
// gate_up: gate and up interleaved, stride 2).
struct LoraSite {
  int first_target = 0;  // LoraTargetIndex of the first
  int count = 1;         // 1..3 consecutive targets
  int in = 0;            // input features
  int out[3] = {0, 0, 0};
  int offset[3] = {0, 0, 0};
  int stride = 1;
};

// y[m, offset + j * stride] = bf16(y + scale * sum_r (A a(x_m))[r] B[j, r]) for every row m with an
// adapter adapting the site's targets at `layer`. a(x) is the projection's input as the base layer
// saw it: x itself, or with norm_w (x then the residual stream, [M, in]) its RMSNorm as rmsnorm()
// rounds it. A a(x) and B (A a(x)) are summed in fp32, rounded once when added. `in` must be a
// multiple of 8, x and every A 16-byte aligned.
Status lora_add(const LoraStep& step, int layer, const LoraSite& site, const __nv_bfloat16* x /*[M, in]*/,
                const float* norm_w /*[in] or null*/, float eps, __nv_bfloat16* y /*[M, ldy]*/, int64_t ldy, int M,
                const Exec& ex);

// gate_up's update and its SwiGLU in one pass: gate_up is the projection's output as stored
// ([M, 2I], gate and up interleaved, not activated); out[m, j] = bf16(bf16(silu(g)) * u) of the
// updated (g, u) (each rounded to bf16 first, as lora_add would store them), for every row: rows
// of the base model get the SwiGLU alone. x and norm_w as for lora_add (the MLP's input norm).
Status lora_add_swiglu(const LoraStep& step, int layer, const __nv_bfloat16* x /*[M, in]*/, const float* norm_w,
                       float eps, int in, const __nv_bfloat16* gate_up /*[M, 2I]*/, __nv_bfloat16* out /*[M, I]*/,
                       int I, int M, const Exec& ex);

}  // namespace grpst::cuda
