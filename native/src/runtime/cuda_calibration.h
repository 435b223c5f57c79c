// Calibration on the GPU: the taps a forward pass shows its capture points (cuda_forward.h
// ForwardTaps) reduce each point's input to per-column |x| max and sum on the device, keep the
// k / v maxima, and copy out only the rows the observer samples. flush() hands the totals to a
// ForwardObserver, which merges them as it merges the CPU runner's rows. A sparse layer's experts'
// inputs are reduced the same way, per expert (their totals [experts, cols] on the device), with
// only the sampled tokens' rows copied out.
#pragma once
#include <memory>
#include <vector>

#include "grpst/forward_observer.h"
#include "grpst/model_config.h"
#include "runtime/cuda_forward.h"
#include "runtime/cuda_weights.h"

namespace grpst {

class CalibrationTaps final : public cuda::ForwardTaps {
 public:
  /** Device buffers for every layer's totals and a step of up to `max_tokens` rows. Throws Error. */
  CalibrationTaps(const ModelConfig& cfg, int max_tokens);

  /** Executed rows of the next step whose inputs are kept as samples. */
  void set_sample_rows(std::vector<int> rows) { sample_rows_ = std::move(rows); }
  /**
   * Whether the next step reduces a sparse layer's experts' inputs, and the executed rows of the
   * tokens whose expert rows are kept as samples, in the order the observer numbers them.
   */
  void set_expert_samples(bool on, std::vector<int> rows) {
    experts_on_ = on;
    expert_sample_rows_ = std::move(rows);
  }

  cuda::Status linear_input(int layer, int point, const cuda::bf16* x, int rows, int cols, const float* norm_w,
                            float eps, const cuda::Exec& ex) override;
  cuda::Status kv(int layer, const cuda::bf16* qkv, const int32_t* positions, const float* q_norm_w,
                  const float* k_norm_w, float eps, const cuda::Rope& rope, int T, const cuda::Exec& ex) override;

  /**
   * A sparse layer's experts' inputs: each expert's per-column totals reduced on the device, and the
   * sampled tokens' rows (gate/up input and down input per expert they went to) copied out. Waits
   * for the step so far only where the step has sampled tokens.
   */
  cuda::Status expert_inputs(int layer, const cuda::ExpertTapInputs& in, const cuda::Exec& ex) override;

  /** Waits for `stream`, reports every point's totals since the last flush to `obs`, and zeroes them. Throws Error. */
  void flush(ForwardObserver& obs, cudaStream_t stream);

 private:
  struct Point {
    int cols = 0;
    float* abs_max = nullptr;    // [cols], device
    double* abs_sum = nullptr;   // [cols], device
    std::vector<uint16_t> samples;  // [kept, cols] bf16 bits, host
  };
  struct LayerTaps {
    Point in[4];
    float* k_max = nullptr;  // [kv_dim], device: max |k| per channel (the observer wants the overall max)
    float* v_max = nullptr;  // [kv_dim], device
  };
  // One sparse layer's experts, allocated at its first step: [0] their gate/up input (H columns),
  // [1] their down input (Im).
  struct ExpertLayerTaps {
    int experts = 0;
    int cols[2] = {0, 0};
    float* abs_max[2] = {nullptr, nullptr};    // [experts, cols], device
    double* abs_sum[2] = {nullptr, nullptr};   // [experts, cols], device
    unsigned long long* rows = nullptr;         // [experts], device: rows routed to each
    std::vector<std::vector<uint16_t>> samples[2];  // per expert [kept, cols] bf16 bits, host
  };
  void* totals(size_t bytes, const char* what);
  ExpertLayerTaps& expert_layer(int layer, int experts, int H, int Im, cudaStream_t stream);
  cuda::Status keep_expert_rows(ExpertLayerTaps& l, const cuda::ExpertTapInputs& in, const cuda::Exec& ex);
  void report_experts(ForwardObserver& obs);
  Point make_point(int cols);
  cuda::Status keep_rows(Point& p, const cuda::bf16* x, int rows, const cuda::Exec& ex);
  void zero();

  ModelConfig cfg_;
  int max_tokens_;
  DeviceMemory mem_;
  std::vector<LayerTaps> layers_;
  Point head_;
  cuda::bf16* normed_ = nullptr;   // [max_tokens, max(hidden, q_dim)]: a norm's output, or the recomputed q
  cuda::bf16* k_rows_ = nullptr;   // [max_tokens, kv_dim] k after q/k norm + RoPE
  cuda::bf16* v_rows_ = nullptr;   // [max_tokens, kv_dim]
  int32_t* slots_ = nullptr;       // [max_tokens] 0, 1, 2, ...: row t of k_rows_ / v_rows_
  std::vector<int> sample_rows_;
  std::vector<ExpertLayerTaps> expert_layers_;  // by layer (experts 0: dense, or not yet seen)
  bool experts_on_ = false;
  std::vector<int> expert_sample_rows_;
  std::vector<void*> zero_ranges_;
  std::vector<size_t> zero_bytes_;
};

}  // namespace grpst
