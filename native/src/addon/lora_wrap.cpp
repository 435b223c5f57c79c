#include "addon/lora_wrap.h"

#include <string>
#include <vector>

#include "addon/convert.h"
#include "grpst/common.h"

namespace grpst::addon {

Napi::FunctionReference NativeLora::constructor;

Napi::Function NativeLora::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeLora", {});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

NativeLora::NativeLora(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeLora>(info) {}

namespace {

std::vector<float> floats(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Error(std::string("LoRA delta: ") + key + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

int int_field(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Error(std::string("LoRA: ") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != double(int(d))) throw Error(std::string("LoRA: ") + key + " must be an integer");
  return int(d);
}

/**
 * createLoraAdapter({numLayers, hidden, intermediate, qDim, kvDim}, [{layer, target, rank, scale,
 * a, b}, ...]) -> NativeLora. target: 0..6 in LoraTarget's order; a: [rank, in], b: [out, rank].
 */
Napi::Value CreateLoraAdapter(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsArray())
    throw Error("createLoraAdapter(shape, deltas) needs a shape object and an array of deltas");
  Napi::Object so = info[0].As<Napi::Object>();
  LoraShape shape{int_field(so, "numLayers"), int_field(so, "hidden"), int_field(so, "intermediate"), int_field(so, "qDim"),
                  int_field(so, "kvDim")};
  if (shape.num_layers <= 0 || shape.num_layers > 4096) throw Error("LoRA: numLayers out of range");
  std::vector<std::array<LoraDelta, kLoraTargets>> deltas(size_t(shape.num_layers));
  Napi::Array list = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    if (!list.Get(i).IsObject()) throw Error("LoRA: every delta must be an object");
    Napi::Object d = list.Get(i).As<Napi::Object>();
    const int layer = int_field(d, "layer"), target = int_field(d, "target");
    if (layer < 0 || layer >= shape.num_layers) throw Error("LoRA: delta layer " + std::to_string(layer) + " out of range");
    if (target < 0 || target >= kLoraTargets) throw Error("LoRA: delta target " + std::to_string(target) + " out of range");
    LoraDelta& out = deltas[size_t(layer)][size_t(target)];
    if (out.rank != 0)
      throw Error("LoRA: layer " + std::to_string(layer) + " " + lora_target_name(LoraTarget(target)) + " given twice");
    out.rank = int_field(d, "rank");
    if (out.rank <= 0) throw Error("LoRA: a delta's rank must be positive");
    Napi::Value scale = d.Get("scale");
    if (!scale.IsNumber()) throw Error("LoRA: scale must be a number");
    out.scale = float(scale.As<Napi::Number>().DoubleValue());
    out.a = floats(d, "a");
    out.b = floats(d, "b");
  }
  Napi::Object obj = NativeLora::constructor.New({});
  NativeLora::Unwrap(obj)->adapter = make_lora_adapter(shape, std::move(deltas));
  return obj;
}

}  // namespace

void RegisterLora(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeLora", NativeLora::Init(env));
  exports.Set("createLoraAdapter", Napi::Function::New(env, CreateLoraAdapter, "createLoraAdapter"));
}

}  // namespace grpst::addon
