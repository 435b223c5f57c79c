// A read-only view into a forward pass, for calibration: the runner reports the input of each
// group of linear layers and the K/V rows it caches. Null (the default) costs one branch per call.
#pragma once
#include <cstdint>

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
  /** k after q/k-norm and rotary embedding, v as projected: [rows, kv_dim] each, as the cache stores them. */
  virtual void kv(int layer, const float* k, const float* v, int rows, int kv_dim) = 0;
};

}  // namespace grpst
