#include "addon/lora_wrap.h"

#include <cstring>
#include <string>
#include <tuple>
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

int int_field(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw Error(std::string("LoRA: ") + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != double(int(d))) throw Error(std::string("LoRA: ") + key + " must be an integer");
  return int(d);
}

// A Uint8Array's bytes, read by the worker thread where they lie: copying them here would be the
// JS thread's work again (hundreds of MB for an 8B model's adapter). The reference keeps the array
// alive until the worker is done; it is made and dropped on the JS thread (in the worker's
// destructor, after OnOK / OnError).
struct HeldBytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
  Napi::Reference<Napi::Uint8Array> ref;
};

// One delta of createLoraAdapterAsync: its tensors' bytes as the adapter file stores them.
struct RawDelta {
  int layer = 0, target = 0, rank = 0;
  float scale = 0.0f;
  DType a_dtype = DType::F32, b_dtype = DType::F32;
  HeldBytes a, b;
};

// A tensor's stored values in bf16 (round to nearest even): BF16 as it is, F16 / F32 rounded.
std::vector<uint16_t> to_bf16(const HeldBytes& bytes, DType dtype) {
  const size_t n = bytes.size / dtype_size(dtype);
  std::vector<uint16_t> out(n);
  if (dtype == DType::BF16) {
    std::memcpy(out.data(), bytes.data, n * 2);
  } else if (dtype == DType::F16) {
    for (size_t i = 0; i < n; i++) {
      uint16_t h;
      std::memcpy(&h, bytes.data + 2 * i, 2);
      out[i] = f32_to_bf16(f16_to_f32(h));
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      float f;
      std::memcpy(&f, bytes.data + 4 * i, 4);
      out[i] = f32_to_bf16(f);
    }
  }
  return out;
}

RawDelta raw_delta(const Napi::Object& d, int num_layers) {
  RawDelta r;
  r.layer = int_field(d, "layer");
  r.target = int_field(d, "target");
  r.rank = int_field(d, "rank");
  if (r.layer < 0 || r.layer >= num_layers) throw Error("LoRA: delta layer " + std::to_string(r.layer) + " out of range");
  if (r.target < 0 || r.target >= kLoraTargets) throw Error("LoRA: delta target " + std::to_string(r.target) + " out of range");
  if (r.rank <= 0) throw Error("LoRA: a delta's rank must be positive");
  Napi::Value scale = d.Get("scale");
  if (!scale.IsNumber()) throw Error("LoRA: scale must be a number");
  r.scale = float(scale.As<Napi::Number>().DoubleValue());
  for (auto [key, dkey, bytes, dtype] : {std::tuple{"a", "aDtype", &r.a, &r.a_dtype}, std::tuple{"b", "bDtype", &r.b, &r.b_dtype}}) {
    Napi::Value v = d.Get(key), t = d.Get(dkey);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array || !t.IsString())
      throw Error(std::string("LoRA delta: ") + key + " must be a Uint8Array with its dtype in " + dkey);
    *dtype = parse_dtype(t.As<Napi::String>().Utf8Value());
    if (*dtype != DType::BF16 && *dtype != DType::F16 && *dtype != DType::F32)
      throw Error(std::string("LoRA delta: ") + key + " must be BF16, F16 or F32");
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    if (a.ByteLength() % dtype_size(*dtype) != 0) throw Error(std::string("LoRA delta: ") + key + "'s bytes are not whole values");
    bytes->data = a.Data();
    bytes->size = a.ByteLength();
    bytes->ref = Napi::Persistent(a);
  }
  return r;
}

// Decodes and packs an adapter off the JS thread: a rank-64 adapter of an 8B model is hundreds of
// MB, seconds of work that would otherwise stall every stream of a serving process.
class LoraLoadWorker : public Napi::AsyncWorker {
 public:
  LoraLoadWorker(Napi::Env env, LoraShape shape, std::vector<RawDelta> raw)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), shape_(shape), raw_(std::move(raw)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::vector<std::array<LoraDelta, kLoraTargets>> deltas(size_t(shape_.num_layers));
      for (RawDelta& r : raw_) {
        LoraDelta& out = deltas[size_t(r.layer)][size_t(r.target)];
        if (out.rank != 0)
          throw Error("LoRA: layer " + std::to_string(r.layer) + " " + lora_target_name(LoraTarget(r.target)) + " given twice");
        out.rank = r.rank;
        out.scale = r.scale;
        out.a16 = to_bf16(r.a, r.a_dtype);
        out.b16 = to_bf16(r.b, r.b_dtype);
      }
      adapter_ = make_lora_adapter(shape_, std::move(deltas));
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Object obj = NativeLora::constructor.New({});
    NativeLora::Unwrap(obj)->adapter = std::move(adapter_);
    deferred_.Resolve(obj);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  LoraShape shape_;
  std::vector<RawDelta> raw_;
  std::shared_ptr<const LoraAdapter> adapter_;
};

/**
 * createLoraAdapterAsync(shape, [{layer, target, rank, scale, a, aDtype, b, bDtype}, ...]) ->
 * Promise<NativeLora>: a and b are the tensors' bytes (Uint8Array) as stored, in "BF16", "F16" or
 * "F32"; read where they lie, decoded and packed on a worker thread, so the caller must neither
 * write nor transfer them until the promise settles.
 */
Napi::Value CreateLoraAdapterAsync(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsArray())
    throw Error("createLoraAdapterAsync(shape, deltas) needs a shape object and an array of deltas");
  Napi::Object so = info[0].As<Napi::Object>();
  LoraShape shape{int_field(so, "numLayers"), int_field(so, "hidden"), int_field(so, "intermediate"), int_field(so, "qDim"),
                  int_field(so, "kvDim")};
  if (shape.num_layers <= 0 || shape.num_layers > 4096) throw Error("LoRA: numLayers out of range");
  Napi::Array list = info[1].As<Napi::Array>();
  std::vector<RawDelta> raw;
  for (uint32_t i = 0; i < list.Length(); i++) {
    if (!list.Get(i).IsObject()) throw Error("LoRA: every delta must be an object");
    raw.push_back(raw_delta(list.Get(i).As<Napi::Object>(), shape.num_layers));
  }
  auto* worker = new LoraLoadWorker(info.Env(), shape, std::move(raw));
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace

void RegisterLora(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeLora", NativeLora::Init(env));
  exports.Set("createLoraAdapterAsync", Napi::Function::New(env, CreateLoraAdapterAsync, "createLoraAdapterAsync"));
}

}  // namespace grpst::addon
