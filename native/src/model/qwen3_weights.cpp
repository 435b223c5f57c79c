#include "model/qwen3_weights.h"

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "grpst/model_runner.h"

namespace grpst {

void ModelConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("invalid Qwen3 config: " + what);
  };
  need(hidden_size > 0 && intermediate_size > 0 && num_layers > 0, "sizes must be positive");
  need(num_heads > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0,
       "num_attention_heads must be a multiple of num_key_value_heads");
  need(head_dim > 0 && head_dim % 2 == 0, "head_dim must be even");
  need(vocab_size > 0, "vocab_size must be positive");
  need(int(rope_inv_freq.size()) == head_dim / 2, "ropeInvFreq must hold head_dim / 2 entries");
  need(rms_norm_eps > 0, "rms_norm_eps must be positive");
  if (moe.on()) {
    need(moe.experts_per_tok > 0 && moe.experts_per_tok <= moe.num_experts,
         "num_experts_per_tok must be between 1 and num_experts");
    need(moe.intermediate_size > 0, "moe_intermediate_size must be positive");
    need(int(moe.sparse_layers.size()) == num_layers, "moe.sparseLayers must hold one entry per layer");
  }
}

namespace {
// Built with --quantize_lm_head: int8 / int4 codes as lm_head.qweight, fp8 ones as an e4m3
// lm_head.weight.
bool lm_head_quantized(const TensorStore& store) {
  if (store.has("lm_head.qweight")) return true;
  return store.has("lm_head.weight") && store.desc("lm_head.weight").dtype == DType::F8_E4M3;
}
}  // namespace

void test_load_layer_delay(const int32_t* flag, const char* env) {
  const char* v = std::getenv(env);
  const long delay_ms = v ? std::strtol(v, nullptr, 10) : 0L;
  if (delay_ms <= 0) return;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
  while (std::chrono::steady_clock::now() < until) {
    throw_if_load_cancelled(flag);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Qwen3Weights load_qwen3_weights(TensorStore& store, const ModelConfig& cfg, WeightFormat fmt, const int32_t* cancel) {
  cfg.validate();
  const LinearFormatOps& ops = linear_format_ops(fmt);
  const int H = cfg.hidden_size, I = cfg.intermediate_size, D = cfg.head_dim;
  Qwen3Weights w;
  w.embed = store.bf16("model.embed_tokens.weight", {cfg.vocab_size, H});
  for (int i = 0; i < cfg.num_layers; i++) {
    test_load_layer_delay(cancel);
    throw_if_load_cancelled(cancel);
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Qwen3Layer l;
    l.input_norm = store.f32(p + "input_layernorm.weight", {H});
    l.post_norm = store.f32(p + "post_attention_layernorm.weight", {H});
    l.q_norm = store.f32(p + "self_attn.q_norm.weight", {D});
    l.k_norm = store.f32(p + "self_attn.k_norm.weight", {D});
    l.q = ops.load(store, p + "self_attn.q_proj", cfg.q_dim(), H);
    l.k = ops.load(store, p + "self_attn.k_proj", cfg.kv_dim(), H);
    l.v = ops.load(store, p + "self_attn.v_proj", cfg.kv_dim(), H);
    l.o = ops.load(store, p + "self_attn.o_proj", H, cfg.q_dim());
    if (cfg.sparse_layer(i)) {
      // The router decides which experts run: it stays bf16 in every engine format.
      l.router = linear_format_ops(WeightFormat::BF16).load(store, p + "mlp.gate", cfg.moe.num_experts, H);
      const int Im = cfg.moe.intermediate_size;
      for (int e = 0; e < cfg.moe.num_experts; e++) {
        const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
        Qwen3Expert ex{ops.load(store, q + "gate_proj", Im, H), ops.load(store, q + "up_proj", Im, H),
                       ops.load(store, q + "down_proj", H, Im)};
        // Written by int4_awq and int8_sq builds for an expert whose factors are not all 1.
        if (store.has(q + "pre_quant_scale")) ex.pre_quant_scale = store.f32(q + "pre_quant_scale", {H});
        l.experts.push_back(ex);
      }
    } else {
      l.gate = ops.load(store, p + "mlp.gate_proj", I, H);
      l.up = ops.load(store, p + "mlp.up_proj", I, H);
      l.down = ops.load(store, p + "mlp.down_proj", H, I);
    }
    w.layers.push_back(std::move(l));
  }
  w.final_norm = store.f32("model.norm.weight", {H});
  if (lm_head_quantized(store)) {
    // Built with --quantize_lm_head: the head in the layers' format (its own tensors, tied or not).
    if (fmt == WeightFormat::BF16)
      throw Error("lm_head is quantized but the engine's quantization scheme is bf16; rebuild the engine");
    w.lm_head = ops.load(store, "lm_head", cfg.vocab_size, H);
  } else if (cfg.tie_word_embeddings) {
    w.lm_head.fmt = WeightFormat::BF16;
    w.lm_head.out_features = cfg.vocab_size;
    w.lm_head.in_features = H;
    w.lm_head.w = w.embed;
    w.lm_head.ldw = H;
  } else {
    // The output head stays bf16 unless the build quantized it: it decides the sampled token.
    w.lm_head = linear_format_ops(WeightFormat::BF16).load(store, "lm_head", cfg.vocab_size, H);
  }
  return w;
}

int64_t Qwen3Weights::decode_bytes(const ModelConfig& cfg) const {
  int64_t n = 0;
  auto add = [&](const LinearWeight& lw) { n += linear_format_ops(lw.fmt).bytes(lw); };
  for (const auto& l : layers) {
    for (const LinearWeight* lw : {&l.q, &l.k, &l.v, &l.o}) add(*lw);
    if (l.experts.empty()) {
      for (const LinearWeight* lw : {&l.gate, &l.up, &l.down}) add(*lw);
    } else {
      // A token reads the router and its top k experts (all experts are the same size).
      add(l.router);
      const Qwen3Expert& e = l.experts.front();
      for (int k = 0; k < cfg.moe.experts_per_tok; k++)
        for (const LinearWeight* lw : {&e.gate, &e.up, &e.down}) add(*lw);
    }
  }
  add(lm_head);
  n += int64_t(cfg.hidden_size) * 2;  // one embedding row
  return n;
}

}  // namespace grpst
