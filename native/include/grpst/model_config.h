// Qwen3 hyper-parameters, as src/model/config.ts resolves them from config.json (the addon
// copies the JS object field by field). Rope frequencies come precomputed, transformers-exact.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace grpst {

// Qwen3-MoE's sparse MLP (absent: num_experts 0). Each sparse layer sends every token to
// experts_per_tok of num_experts SwiGLU experts chosen by a router (softmax, top k, renormalised
// when norm_topk_prob) and sums their outputs weighted by those probabilities.
struct MoeConfig {
  int num_experts = 0;
  int experts_per_tok = 0;
  int intermediate_size = 0;   // each expert's (moe_intermediate_size)
  bool norm_topk_prob = false;
  std::vector<uint8_t> sparse_layers;  // [num_layers]: 1 where the layer's MLP is the experts

  bool on() const { return num_experts > 0; }
};

struct ModelConfig {
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int vocab_size = 0;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  int max_position_embeddings = 0;
  std::vector<float> rope_inv_freq;   // [head_dim / 2]
  float rope_attention_scaling = 1.0f;
  MoeConfig moe;

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  bool sparse_layer(int layer) const { return moe.on() && moe.sparse_layers[size_t(layer)] != 0; }
  /** Throws Error when the numbers cannot describe a Qwen3 model. */
  void validate() const;
};

}  // namespace grpst
