// The JS face of an Engine: createEngine() loads on a worker thread and resolves to a
// NativeEngine; its step outputs reach JS through one ThreadSafeFunction, coalesced so that at
// most one call is queued however fast the engine steps.
#pragma once
#include <napi.h>

#include <memory>
#include <mutex>
#include <vector>

#include "grpst/engine.h"
#include "grpst/request.h"
#include "grpst/tensor_store.h"

namespace grpst::addon {

/** Events waiting for the JS thread; the engine thread appends, one queued TSFN call drains. */
struct EventChannel {
  std::mutex mutex;
  std::vector<SeqEvent> pending;
  bool call_queued = false;
  bool closed = false;
  Napi::ThreadSafeFunction tsfn;
  int active = 0;  // requests in flight; JS thread only. The TSFN keeps Node alive only while > 0.
};

class NativeEngine : public Napi::ObjectWrap<NativeEngine> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference constructor;
  NativeEngine(const Napi::CallbackInfo& info);
  ~NativeEngine() override;

  /** Called by the load worker on the JS thread. */
  void attach(std::unique_ptr<Engine> engine, std::shared_ptr<EventChannel> channel, Napi::Function on_events,
              WeightsReport weights);

 private:
  Napi::Value Submit(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Engine& engine();

  std::unique_ptr<Engine> engine_;
  std::shared_ptr<EventChannel> channel_;
  Napi::FunctionReference on_events_;
  WeightsReport weights_;  // how the weights were loaded (info().weights)
  bool closing_ = false;
};

/** A compiled constraint (ConstraintFactory) held by JS and passed as SubmitRequest.constraint. */
class NativeConstraint : public Napi::ObjectWrap<NativeConstraint> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference constructor;
  NativeConstraint(const Napi::CallbackInfo& info);
  std::shared_ptr<const ConstraintFactory> factory;
};

/** createEngine(modelConfig, tensorTable, options, onEvents) -> Promise<NativeEngine> */
Napi::Value CreateEngine(const Napi::CallbackInfo& info);
/** createAllowedTokensConstraint(Int32Array) -> NativeConstraint: only these tokens may be sampled. */
Napi::Value CreateAllowedTokensConstraint(const Napi::CallbackInfo& info);

}  // namespace grpst::addon
