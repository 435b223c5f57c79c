#include "addon/engine_wrap.h"
#include "addon/lora_wrap.h"

#include <cstdlib>
#include <thread>

#include "addon/convert.h"
#include "addon/tp_wrap.h"
#include "grpst/cpu_kernels.h"
#include "grpst/device_sampler_twin.h"
#include "grpst/tensor_store.h"
#include "runtime/cuda_select.h"
#include "runtime/weights_on_gpu.h"

namespace grpst::addon {

Napi::FunctionReference NativeEngine::constructor;
Napi::FunctionReference NativeConstraint::constructor;

namespace {

/** Drains the channel on the JS thread and hands the batch to the JS callback. */
void deliver(Napi::Env env, Napi::Function callback, EventChannel* ch) {
  std::vector<SeqEvent> events;
  {
    std::lock_guard<std::mutex> lock(ch->mutex);
    events.swap(ch->pending);
    ch->call_queued = false;
  }
  if (events.empty() || env == nullptr) return;
  for (const SeqEvent& e : events) {
    if (e.finish != FinishReason::None && --ch->active == 0) ch->tsfn.Unref(env);
  }
  callback.Call({events_to_js(env, events)});
}

/** options.draftModel: the draft model of speculative decoding (its config, tensors and scheme). */
struct DraftLoad {
  bool on = false;
  ModelConfig cfg;
  std::vector<TensorDesc> table;
  std::string quantization = "none";
};

DraftLoad draft_load_from_js(const Napi::Object& opts) {
  DraftLoad d;
  Napi::Value v = opts.Get("draftModel");
  if (v.IsUndefined() || v.IsNull()) return d;
  if (!v.IsObject()) throw Error("draftModel must be an object {model, tensors, quantization}");
  Napi::Object o = v.As<Napi::Object>();
  if (!o.Get("model").IsObject() || !o.Get("tensors").IsArray()) throw Error("draftModel needs model (a model config) and tensors (a tensor table)");
  d.on = true;
  d.cfg = model_config_from_js(o.Get("model").As<Napi::Object>());
  d.table = tensor_table_from_js(o.Get("tensors").As<Napi::Array>());
  d.quantization = get_string(o, "quantization", "none");
  return d;
}

/** The TSFN's data: a strong reference, so the channel outlives every queued call. */
using ChannelRef = std::shared_ptr<EventChannel>;

void on_tsfn_call(Napi::Env env, Napi::Function callback, ChannelRef* ref) {
  std::unique_ptr<ChannelRef> owned(ref);
  if (env != nullptr) deliver(env, callback, owned->get());
}

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, ModelConfig cfg, std::vector<TensorDesc> table, EngineOptions eopts,
             CpuRunnerOptions ropts, std::shared_ptr<EventChannel> channel, Napi::Function on_events,
             std::string device, TpLoad tp, DraftLoad draft, WeightsLoad weights)
      : Napi::AsyncWorker(env),
        weights_load_(weights),
        draft_(std::move(draft)),
        device_(std::move(device)),
        tp_(std::move(tp)),
        on_events_(Napi::Persistent(on_events)),
        deferred_(Napi::Promise::Deferred::New(env)),
        cfg_(std::move(cfg)),
        table_(std::move(table)),
        eopts_(eopts),
        ropts_(ropts),
        channel_(std::move(channel)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  /** The load reads ropts_.cancel from this array's first cell: held so it outlives the load. */
  void keep_cancel_flag(Napi::Int32Array flag) {
    cancel_flag_ = Napi::Persistent(flag);
    ropts_.cancel = flag.Data();
    weights_load_.cancel = flag.Data();
  }

  void Execute() override {
    try {
      // On the GPU the host copy is read for the upload alone, then released (runtime/weights_on_gpu.h).
      const bool in_process_group = !tp_.rank_tables.empty();
      const bool upload = builds_cuda_runner(device_, in_process_group);
      auto store = std::make_shared<TensorStore>(std::move(table_), upload ? for_gpu_upload(weights_load_) : weights_load_);
      const WeightsReport loaded = store->weights_report();
      // KV bytes per token do not depend on the runner's buffers: size them from the config.
      // (A tensor-parallel rank holds its share of the KV heads.)
      const size_t kv_bpt = kv_cache_bytes_per_token(tp_rank0_config(cfg_, tp_), parse_kv_dtype(eopts_.kv_dtype));
      ResolvedEngineOptions ro = resolve_engine_options(eopts_, cfg_, kv_bpt);
      ropts_.max_tokens = ro.opts.max_num_tokens;
      ropts_.max_logit_rows = ro.max_logit_rows;
      ropts_.max_seq_len = ro.opts.max_seq_len;
      // Handed over: on the GPU the store goes as soon as the weights are uploaded (make_runner_for_device).
      auto runner = tp_.size > 0 ? make_tp_leader_runner(tp_, device_, cfg_, std::move(store), ropts_, eopts_, ro, weights_load_, weights_)
                                 : make_runner_for_device(device_, cfg_, std::move(store), ropts_, eopts_, ro);
      // An in-process tensor-parallel group serves from its ranks' stores, which report themselves.
      if (!in_process_group) weights_.add(runner->device() == "cuda" ? released_after_upload(loaded, weights_load_) : loaded);
      if (eopts_.device_sampler_twin && !runner->samples_on_device()) runner = with_device_sampler_twin(std::move(runner));
      std::unique_ptr<ModelRunner> draft;
      if (draft_.on) {
        if (tp_.size > 0) throw Error("speculative decoding with a draft model is not served for tensor-parallel engines; use method ngram");
        // The draft runs the model's steps (its mirror) and a batch of one-token proposals, on the
        // model's device.
        CpuRunnerOptions dopts = ropts_;
        dopts.quantization = draft_.quantization;
        const bool draft_upload = runner->device() == "cuda";
        auto draft_store = std::make_shared<TensorStore>(std::move(draft_.table),
                                                         draft_upload ? for_gpu_upload(weights_load_) : weights_load_);
        const WeightsReport draft_loaded = draft_store->weights_report();
        draft = make_draft_runner(*runner, draft_.cfg, std::move(draft_store), dopts, eopts_, ro);
        weights_.add(draft_upload ? released_after_upload(draft_loaded, weights_load_) : draft_loaded);
        // The GPU's way on the CPU (tests): the draft's greedy proposals drawn by the sampler's twin too.
        if (eopts_.device_sampler_twin && !draft->samples_on_device()) draft = with_device_sampler_twin(std::move(draft));
      }
      const CpuKernels& k = cpu_kernels(choose_cpu_level(ropts_.kernel_level));
      std::weak_ptr<EventChannel> weak = channel_;
      engine_ = std::make_unique<Engine>(std::move(runner), ro, SamplerMath{k.max_and_sum_exp, k.argmax}, ropts_.quantization,
                                         [weak](std::vector<SeqEvent>&& events) {
                                           auto ch = weak.lock();
                                           if (!ch) return;
                                           std::lock_guard<std::mutex> lock(ch->mutex);
                                           if (ch->closed) return;
                                           for (auto& e : events) ch->pending.push_back(std::move(e));
                                           if (!ch->call_queued) {
                                             ch->call_queued = true;
                                             auto* ref = new ChannelRef(ch);
                                             if (ch->tsfn.NonBlockingCall(ref, on_tsfn_call) != napi_ok) {
                                               delete ref;
                                               ch->call_queued = false;
                                             }
                                           }
                                         },
                                         std::move(draft));
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Object obj = NativeEngine::constructor.New({});
    NativeEngine::Unwrap(obj)->attach(std::move(engine_), channel_, on_events_.Value(), weights_);
    deferred_.Resolve(obj);
  }

  void OnError(const Napi::Error& e) override {
    {
      std::lock_guard<std::mutex> lock(channel_->mutex);
      channel_->closed = true;
    }
    channel_->tsfn.Release();
    deferred_.Reject(e.Value());
  }

 private:
  WeightsLoad weights_load_;
  WeightsReport weights_;
  DraftLoad draft_;
  std::string device_;
  TpLoad tp_;
  Napi::FunctionReference on_events_;
  Napi::Promise::Deferred deferred_;
  ModelConfig cfg_;
  std::vector<TensorDesc> table_;
  EngineOptions eopts_;
  CpuRunnerOptions ropts_;
  std::shared_ptr<EventChannel> channel_;
  std::unique_ptr<Engine> engine_;
  Napi::Reference<Napi::Int32Array> cancel_flag_;
};

class CloseWorker : public Napi::AsyncWorker {
 public:
  CloseWorker(Napi::Env env, std::unique_ptr<Engine> engine, std::shared_ptr<EventChannel> channel,
              Napi::Function on_events)
      : Napi::AsyncWorker(env),
        on_events_(Napi::Persistent(on_events)),
        deferred_(Napi::Promise::Deferred::New(env)),
        engine_(std::move(engine)),
        channel_(std::move(channel)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  // Joining the loop thread waits for the step in progress, so it happens off the JS thread;
  // the engine (weights, KV cache) is freed here too.
  void Execute() override {
    engine_->shutdown();
    engine_.reset();
  }
  void OnOK() override {
    // The final "cancelled" events of the shutdown reach JS before the promise resolves.
    deliver(Env(), on_events_.Value(), channel_.get());
    {
      std::lock_guard<std::mutex> lock(channel_->mutex);
      channel_->closed = true;
    }
    channel_->tsfn.Release();
    deferred_.Resolve(Env().Undefined());
  }

 private:
  Napi::FunctionReference on_events_;
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<Engine> engine_;
  std::shared_ptr<EventChannel> channel_;
};

class AllowedTokens final : public ConstraintFactory {
 public:
  explicit AllowedTokens(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  std::unique_ptr<TokenConstraint> start() const override {
    struct State final : TokenConstraint {
      const std::vector<int32_t>* ids;
      void fill_allowed(uint32_t* allowed, int vocab) override {
        for (int32_t t : *ids)
          if (t >= 0 && t < vocab) allowed[t >> 5] |= 1u << (t & 31);
      }
      void accept(int32_t) override {}
      std::unique_ptr<TokenConstraint> clone() const override { return std::make_unique<State>(*this); }
    };
    auto s = std::make_unique<State>();
    s->ids = &ids_;
    return s;
  }

 private:
  std::vector<int32_t> ids_;
};

}  // namespace

Napi::Function NativeEngine::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeEngine",
                                 {InstanceMethod("submit", &NativeEngine::Submit),
                                  InstanceMethod("cancel", &NativeEngine::Cancel),
                                  InstanceMethod("stats", &NativeEngine::Stats),
                                  InstanceMethod("info", &NativeEngine::Info),
                                  InstanceMethod("close", &NativeEngine::Close)});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

NativeEngine::NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {}

NativeEngine::~NativeEngine() {
  // Collected without close(): stop the loop quietly, dropping its final events.
  if (engine_ && !closing_) {
    {
      std::lock_guard<std::mutex> lock(channel_->mutex);
      channel_->closed = true;
    }
    engine_->shutdown();
    channel_->tsfn.Release();
  }
}

void NativeEngine::attach(std::unique_ptr<Engine> engine, std::shared_ptr<EventChannel> channel,
                          Napi::Function on_events, WeightsReport weights) {
  weights_ = std::move(weights);
  engine_ = std::move(engine);
  channel_ = std::move(channel);
  on_events_ = Napi::Persistent(on_events);
}

Engine& NativeEngine::engine() {
  if (!engine_ || closing_) throw Error("the engine is closed");
  return *engine_;
}

Napi::Value NativeEngine::Submit(const Napi::CallbackInfo& info) {
  Engine& e = engine();
  if (info.Length() < 3 || !info[2].IsObject()) throw Error("submit(id, tokens, params) needs three arguments");
  Napi::Object params = info[2].As<Napi::Object>();
  Request r = request_from_js(info[0], info[1], params);
  if (params.Has("constraint") && !params.Get("constraint").IsUndefined() && !params.Get("constraint").IsNull()) {
    Napi::Value c = params.Get("constraint");
    if (!c.IsObject() || !c.As<Napi::Object>().InstanceOf(NativeConstraint::constructor.Value()))
      throw Error("constraint must be a handle created by the native addon (e.g. createAllowedTokensConstraint)");
    r.constraint = NativeConstraint::Unwrap(c.As<Napi::Object>())->factory;
  }
  if (params.Has("lora") && !params.Get("lora").IsUndefined() && !params.Get("lora").IsNull()) {
    Napi::Value l = params.Get("lora");
    if (!l.IsObject() || !l.As<Napi::Object>().InstanceOf(NativeLora::constructor.Value()))
      throw Error("lora must be a handle created by the native addon's createLoraAdapterAsync");
    r.lora = NativeLora::Unwrap(l.As<Napi::Object>())->adapter;
  }
  e.submit(std::move(r));
  if (channel_->active++ == 0) channel_->tsfn.Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value NativeEngine::Cancel(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) throw Error("cancel(id) needs a request id");
  engine().cancel(uint64_t(info[0].As<Napi::Number>().DoubleValue()));
  return info.Env().Undefined();
}

Napi::Value NativeEngine::Stats(const Napi::CallbackInfo& info) { return stats_to_js(info.Env(), engine().stats()); }

Napi::Value NativeEngine::Info(const Napi::CallbackInfo& info) {
  Napi::Object o = info_to_js(info.Env(), engine().info());
  o.Set("weights", weights_report_to_js(info.Env(), weights_));
  return o;
}

Napi::Value NativeEngine::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!engine_ || closing_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  closing_ = true;
  auto* w = new CloseWorker(env, std::move(engine_), channel_, on_events_.Value());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Function NativeConstraint::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "NativeConstraint", {});
  constructor = Napi::Persistent(f);
  constructor.SuppressDestruct();
  return f;
}

NativeConstraint::NativeConstraint(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeConstraint>(info) {}

Napi::Value CreateEngine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsObject() || !info[1].IsArray() || !info[2].IsObject() || !info[3].IsFunction())
    throw Error("createEngine(modelConfig, tensorTable, options, onEvents) needs four arguments");
  ModelConfig cfg = model_config_from_js(info[0].As<Napi::Object>());
  std::vector<TensorDesc> table = tensor_table_from_js(info[1].As<Napi::Array>());
  Napi::Object opts = info[2].As<Napi::Object>();
  EngineOptions eopts = engine_options_from_js(opts);
  CpuRunnerOptions ropts;
  unsigned hw = std::thread::hardware_concurrency();
  ropts.threads = int(get_number(opts, "threads", hw ? hw : 1));
  if (ropts.threads < 1 || ropts.threads > 1024) throw Error("threads must be between 1 and 1024");
  ropts.kernel_level = get_string(opts, "cpuKernels", "");
  ropts.quantization = get_string(opts, "quantization", "none");
  const std::string device = get_string(opts, "device", "cpu");
  check_device_name(device);
  choose_cpu_level(ropts.kernel_level);  // fail fast on a bad level
  Napi::Function on_events = info[3].As<Napi::Function>();

  auto channel = std::make_shared<EventChannel>();
  channel->tsfn = Napi::ThreadSafeFunction::New(env, on_events, "grpst-engine-events", 0, 1);
  channel->tsfn.Unref(env);
  TpLoad tp = tp_load_from_js(opts);
  Napi::Value cancel = opts.Get("cancelFlag");
  const bool has_cancel = !cancel.IsUndefined() && !cancel.IsNull();
  if (has_cancel && (!cancel.IsTypedArray() || cancel.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
                     cancel.As<Napi::Int32Array>().ElementLength() < 1))
    throw Error("cancelFlag must be an Int32Array of at least one element");
  DraftLoad draft = draft_load_from_js(opts);
  WeightsLoad weights = weights_load_from_js(opts);
  if (draft.on && eopts.speculative.num_tokens <= 0) throw Error("draftModel needs speculativeTokens (num_speculative_tokens) of 1 or more");
  auto* worker = new LoadWorker(env, std::move(cfg), std::move(table), eopts, ropts, channel, on_events, device, std::move(tp),
                                std::move(draft), weights);
  if (has_cancel) worker->keep_cancel_flag(cancel.As<Napi::Int32Array>());
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

Napi::Value CreateAllowedTokensConstraint(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Error("createAllowedTokensConstraint(ids) needs an Int32Array");
  Napi::Int32Array ids = info[0].As<Napi::Int32Array>();
  Napi::Object obj = NativeConstraint::constructor.New({});
  NativeConstraint::Unwrap(obj)->factory =
      std::make_shared<AllowedTokens>(std::vector<int32_t>(ids.Data(), ids.Data() + ids.ElementLength()));
  return obj;
}

}  // namespace grpst::addon
