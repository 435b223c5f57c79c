// Calibration on the GPU: the taps a forward pass shows its capture points (cuda_forward.h
// ForwardTaps) reduce each point's input to per-column |x| max and sum on the device, keep the
// k / v maxima, and copy out only the rows the observer samples. flush() hands the totals to a
// ForwardObserver, which merges them as it merges the CPU runner's rows. A sparse layer's experts'
// inputs go to the observer during the step, in the CPU runner's form (each expert's own rows).
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
   * The next step's observer for the experts' inputs, which it takes in the CPU runner's form
   * (ForwardObserver::expert_input, the rows themselves), and the step row (0..T-1, as the observer
   * numbers them) of each executed row.
   */
  void set_expert_observer(ForwardObserver* obs, std::vector<int> row_origin) {
    expert_obs_ = obs;
    row_origin_ = std::move(row_origin);
  }

  cuda::Status linear_input(int layer, int point, const cuda::bf16* x, int rows, int cols, const float* norm_w,
                            float eps, const cuda::Exec& ex) override;
  cuda::Status kv(int layer, const cuda::bf16* qkv, const int32_t* positions, const float* q_norm_w,
                  const float* k_norm_w, float eps, const cuda::Rope& rope, int T, const cuda::Exec& ex) override;

  /**
   * A sparse layer's experts' inputs, handed to the expert observer as the CPU runner hands them:
   * per expert with rows, its gate/up input rows (xn of its tokens) and its down input rows (act),
   * in grouped order, with their step rows. Waits for the step so far (calibration only).
   */
  cuda::Status expert_inputs(int layer, const cuda::bf16* xn, const cuda::bf16* act, const int32_t* choice,
                             const int32_t* slot, int T, int K, int H, int Im, const cuda::Exec& ex) override;

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
  void* totals(size_t bytes, const char* what);
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
  ForwardObserver* expert_obs_ = nullptr;
  std::vector<int> row_origin_;
  std::vector<void*> zero_ranges_;
  std::vector<size_t> zero_bytes_;
};

}  // namespace grpst
