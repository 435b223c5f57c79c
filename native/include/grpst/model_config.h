// Qwen3 hyper-parameters, as src/model/config.ts resolves them from config.json (the addon
// copies the JS object field by field). Rope frequencies come precomputed, transformers-exact.
#pragma once
#include <string>
#include <vector>

namespace grpst {

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

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  /** Throws Error when the numbers cannot describe a Qwen3 model. */
  void validate() const;
};

}  // namespace grpst
