// KV cache element types: names, sizes, bytes per token, and the per-layer scales of the
// quantized ones (fp8 e4m3, int8), checked once at load.
#include <cmath>
#include <string>

#include "grpst/common.h"
#include "grpst/model_runner.h"

namespace grpst {

const char* kv_dtype_name(KvDType d) {
  switch (d) {
    case KvDType::BF16: return "bfloat16";
    case KvDType::F32: return "float32";
    case KvDType::FP8: return "fp8";
    case KvDType::INT8: return "int8";
  }
  return "?";
}

KvDType parse_kv_dtype(const std::string& name) {
  if (name.empty() || name == "auto" || name == "bfloat16" || name == "bf16") return KvDType::BF16;
  if (name == "float32" || name == "fp32") return KvDType::F32;
  if (name == "fp8" || name == "fp8_e4m3") return KvDType::FP8;
  if (name == "int8") return KvDType::INT8;
  throw Error("KV cache dtype \"" + name + "\" is unknown (use auto, bfloat16, float32, fp8 or int8)");
}

size_t kv_dtype_size(KvDType d) {
  switch (d) {
    case KvDType::BF16: return 2;
    case KvDType::F32: return 4;
    default: return 1;
  }
}

size_t kv_cache_bytes_per_token(const ModelConfig& cfg, KvDType d) {
  return size_t(cfg.num_layers) * 2 * size_t(cfg.kv_dim()) * kv_dtype_size(d);
}

void set_kv_scales(KvCacheSpec& spec, const std::vector<float>& scales, int num_layers) {
  spec.k_scales.clear();
  spec.v_scales.clear();
  if (!kv_dtype_quantized(spec.dtype)) return;
  if (scales.empty()) {
    if (spec.dtype == KvDType::INT8)
      throw Error("an int8 KV cache needs per-layer scales from calibration and this model has none: build an engine "
                  "with `grpst build --kv_cache_dtype int8` (or use an fp8 KV cache, which runs uncalibrated with "
                  "scale 1.0)");
    // No calibration: scale 1.0, as TensorRT-LLM does. e4m3 holds +-448 with 3 mantissa bits, so
    // keys and values of ordinary size keep their relative precision (values under 2^-6 lose bits).
    spec.k_scales.assign(num_layers, 1.0f);
    spec.v_scales.assign(num_layers, 1.0f);
    return;
  }
  if (scales.size() != size_t(num_layers) * 2)
    throw Error("KV cache scales: " + std::to_string(scales.size() / 2) + " [k, v] pairs for a model of " +
                std::to_string(num_layers) + " layers (engine.json kv_cache.scales does not match the model)");
  for (size_t i = 0; i < scales.size(); i++) {
    if (!std::isfinite(scales[i]) || scales[i] <= 0)
      throw Error("KV cache scale " + std::to_string(scales[i]) + " of layer " + std::to_string(i / 2) +
                  " must be finite and positive (engine.json kv_cache.scales is damaged; rebuild the engine)");
    (i % 2 ? spec.v_scales : spec.k_scales).push_back(scales[i]);
  }
}

}  // namespace grpst
