// Qwen3's tensors by role, resolved once from a TensorStore by their Hugging Face names.
#pragma once
#include <vector>

#include "grpst/linear.h"
#include "grpst/model_config.h"
#include "grpst/tensor_store.h"

namespace grpst {

// One expert of a Qwen3-MoE sparse layer: a SwiGLU MLP of moe_intermediate_size.
struct Qwen3Expert {
  LinearWeight gate, up;  // [moe_intermediate, hidden]
  LinearWeight down;      // [hidden, moe_intermediate]
  // [hidden] or null: multiplies this expert's input rows before gate/up_proj (1 / its AWQ or
  // SmoothQuant factors, which the layer's shared norm cannot carry).
  const float* pre_quant_scale = nullptr;
};

struct Qwen3Layer {
  const float* input_norm = nullptr;  // [hidden]
  const float* post_norm = nullptr;   // [hidden]
  const float* q_norm = nullptr;      // [head_dim]
  const float* k_norm = nullptr;      // [head_dim]
  LinearWeight q, k, v;               // [heads*head_dim, hidden], [kv_heads*head_dim, hidden] x2
  LinearWeight o;                     // [hidden, heads*head_dim]
  LinearWeight gate, up;              // [intermediate, hidden] (dense layers)
  LinearWeight down;                  // [hidden, intermediate] (dense layers)
  LinearWeight router;                // [num_experts, hidden], bf16 (sparse layers)
  std::vector<Qwen3Expert> experts;   // sparse layers only: empty for a dense MLP
};

struct Qwen3Weights {
  const uint16_t* embed = nullptr;    // bf16 [vocab, hidden]
  std::vector<Qwen3Layer> layers;
  const float* final_norm = nullptr;  // [hidden]
  LinearWeight lm_head;               // [vocab, hidden]; a view of embed when tied

  /** Bytes of weights one decode step reads (projections, lm_head, one embedding row). */
  int64_t decode_bytes(const ModelConfig& cfg) const;
};

// `cancel`: CpuRunnerOptions::cancel, checked before each layer (a cancelled load throws kLoadCancelled).
Qwen3Weights load_qwen3_weights(TensorStore& store, const ModelConfig& cfg, WeightFormat fmt, const int32_t* cancel = nullptr);

}  // namespace grpst
