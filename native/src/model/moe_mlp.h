// The sparse MLP of a Qwen3-MoE layer on the CPU, as transformers' Qwen3MoeSparseMoeBlock
// computes it for each token x [H]:
//   p = softmax(W_router x)                    [E], fp32
//   the k largest p (ties: the lower expert), divided by their sum when norm_topk_prob
//   y = sum over those experts j of p_j * down_j(silu(gate_j x) * up_j x)
// A step's tokens are grouped by expert, so each chosen expert's projections run once per step
// over its tokens; each token's k outputs are then added in its own rank order, so a token's
// result does not depend on the other tokens of the step.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "grpst/cpu_kernels.h"
#include "grpst/forward_observer.h"
#include "grpst/model_config.h"
#include "grpst/tensor_store.h"
#include "grpst/thread_pool.h"
#include "model/qwen3_weights.h"

namespace grpst {

class MoeMlp {
 public:
  /** Scratch for steps of up to max_tokens tokens (nothing when the model has no experts). */
  void reserve(const ModelConfig& cfg, int max_tokens);
  /**
   * y[T, H] = the expert mixture of x[T, H] through layer L's router and experts. With an observer
   * (calibration), each expert's input rows and down_proj input are reported as layer `layer`'s.
   */
  void forward(const Qwen3Layer& L, const float* x, float* y, int T, const CpuKernels& k, ThreadPool& pool,
               ForwardObserver* observer = nullptr, int layer = 0);

 private:
  /** choice_ / weight_ from logits_ for T tokens; start_ / slot_: the tokens grouped by expert. */
  void route(int T);
  float* grouped(const std::unique_ptr<AlignedBuffer>& b) const { return static_cast<float*>(b->ptr); }

  int H_ = 0, E_ = 0, K_ = 0, Im_ = 0;
  bool norm_topk_ = false;
  std::vector<float> logits_;    // [T, E] router logits, then probabilities
  std::vector<int32_t> choice_;  // [T, K] expert of each (token, rank), ranks by falling p
  std::vector<float> weight_;    // [T, K] its weight
  std::vector<int32_t> start_;   // [E + 1] first grouped row of each expert
  std::vector<int32_t> slot_;    // [T, K] grouped row holding (token, rank)
  std::vector<int32_t> token_;   // [T * K] token of each grouped row
  std::vector<int32_t> next_;    // [E] route()'s next free grouped row of each expert
  std::vector<int32_t> order_;   // [E] route()'s experts of one token, ordered by probability
  std::unique_ptr<AlignedBuffer> xs_, gate_, up_, ys_;  // grouped rows: [T*K, H], [T*K, Im] x2, [T*K, H]
};

}  // namespace grpst
