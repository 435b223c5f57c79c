// LoRA adapters in the addon: createLoraAdapterAsync() turns the tensors src/engine/lora.ts read
// from a PEFT folder (their stored bytes) into a NativeLora handle on a worker thread, which
// SubmitRequest.lora takes (engine_wrap.cpp). The
// handle shares the adapter with the requests that use it, so dropping it never cuts one short.
#pragma once
#include <napi.h>

#include <memory>

#include "grpst/lora.h"

namespace grpst::addon {

class NativeLora : public Napi::ObjectWrap<NativeLora> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference constructor;
  NativeLora(const Napi::CallbackInfo& info);
  std::shared_ptr<const LoraAdapter> adapter;
};

void RegisterLora(Napi::Env env, Napi::Object exports);

}  // namespace grpst::addon
