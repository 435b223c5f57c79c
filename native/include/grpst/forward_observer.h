// A read-only view into a forward pass, for calibration: the runner reports the input of each
// group of linear layers and the K/V rows it caches. Null (the default) costs one branch per call.
// The CPU runner hands over every row; the GPU runner reduces on the device and hands over totals
// (per-column |x| max and sum, the sampled rows) when asked (ModelRunner::flush_observer).
#pragma once
#include <cstdint>
#include <vector>

namespace grpst {

/** The four inputs of a decoder layer's linears, and the output head's. */
enum class CapturePoint : uint8_t {
  AttnIn = 0,  // input_layernorm output, read by q/k/v_proj   [T, hidden]
  OIn = 1,     // attention output, read by o_proj              [T, heads * head_dim]
  MlpIn = 2,   // post_attention_layernorm output, gate/up_proj [T, hidden]
  DownIn = 3,  // silu(gate) * up, read by down_proj            [T, intermediate]
  HeadIn = 4,  // final norm output of every token, read by lm_head [T, hidden]; layer = num_layers
};

class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  /** x: [rows, cols], row-major. Called on the runner's thread, between parallel sections. */
  virtual void linear_input(int layer, CapturePoint point, const float* x, int rows, int cols) = 0;
  /**
   * One expert's inputs in a sparse (Qwen3-MoE) layer, the rows of the step's tokens the router sent
   * to it: point MlpIn is what its gate/up_proj read (the layer's MLP input rows, before any
   * per-expert pre_quant_scale), DownIn what its down_proj reads (silu(gate) * up). x: [rows, cols];
   * token[i]: the step row (0..T-1) that row i came from, so a sampler keeps the same tokens as the
   * dense capture points. Only experts with at least one row are reported. The CPU runner's form;
   * the default ignores them (an observer with no use for per-expert statistics).
   */
  virtual void expert_input(int layer, int expert, CapturePoint point, const float* x, const int32_t* token, int rows,
                            int cols) {
    (void)layer, (void)expert, (void)point, (void)x, (void)token, (void)rows, (void)cols;
  }
  /** k after q/k-norm and rotary embedding, v as projected: [rows, kv_dim] each, as the cache stores them. */
  virtual void kv(int layer, const float* k, const float* v, int rows, int kv_dim) = 0;

  // ---- the GPU runner's form ----
  /** Whether to observe the next step at all (a proxy without a target: no). */
  virtual bool active() const { return true; }
  /** Rows of the next step (0..rows-1) whose inputs are kept as samples; asked once per step. */
  virtual std::vector<int> sample_rows(int rows) = 0;
  struct ColumnTotals {
    int cols;
    const float* abs_max;   // [cols] max |x| over the rows since the last totals
    const double* abs_sum;  // [cols] sum of |x| over them
    const float* samples;   // [sample_rows, cols] the kept rows, in step order
    int sample_rows;
  };
  /** One capture point's totals over the steps since the last flush. */
  virtual void linear_input_totals(int layer, CapturePoint point, const ColumnTotals& t) = 0;
  /** max |k| over every cached k value, and max |v| per channel [kv_dim], since the last flush. */
  virtual void kv_totals(int layer, float k_amax, const float* v_abs_max, int kv_dim) = 0;
  /**
   * Step rows (0..rows-1) whose experts' inputs are kept as samples: every sampled token's, in step
   * order, before any limit on one expert's samples (expert_input_totals applies it). Asked once per
   * step of a sparse model; the default keeps none.
   */
  virtual std::vector<int> expert_sample_rows(int rows) {
    (void)rows;
    return {};
  }
  /**
   * One expert's input totals since the last flush (point MlpIn or DownIn, as expert_input): `rows`
   * routed rows, per-column max and sum of |x| over them, and the sampled tokens' rows among them in
   * step order. Only experts with at least one row are reported; the default ignores them.
   */
  virtual void expert_input_totals(int layer, int expert, CapturePoint point, int64_t rows, const ColumnTotals& t) {
    (void)layer, (void)expert, (void)point, (void)rows, (void)t;
  }
};

}  // namespace grpst
