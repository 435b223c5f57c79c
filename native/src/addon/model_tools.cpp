// createModelTool(config, tensors, options) -> NativeModelTool: a model without a scheduler, for
// `grpst build`. logprobs(tokens) returns the log-softmax of the logits after every position (the
// accuracy report compares full distributions); calibrate(sequences, sampleRows) runs text
// through the model and returns, per layer, statistics of each linear group's input, of each
// expert's inputs in a Qwen3-MoE sparse layer (calibration_observer.h) and of the
// cached K/V, and the same statistics of lm_head's input (AWQ, SmoothQuant and fp8 scales). Work runs on a worker thread, one call at a time.
// options.device "cuda" / "auto" runs it on the GPU (the CUDA runner reduces the statistics there),
// "cpu" (the default) on the CPU runner.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "addon/calibration_observer.h"
#include "addon/convert.h"
#include "grpst/cpu_kernels.h"
#include "grpst/forward_observer.h"
#include "grpst/model_runner.h"
#include "grpst/tensor_store.h"
#include "runtime/cuda_select.h"
#include "runtime/tp_runner.h"

namespace grpst::addon {

namespace {

constexpr int kChunk = 128;      // tokens per forward call on the CPU
constexpr int kGpuChunk = 512;   // and on the GPU, where a step of 128 rows leaves it mostly idle
constexpr int kBlockSize = 16;   // KV block size of the tool's private cache

struct Tool {
  ModelConfig cfg;
  // A tensor-parallel engine's ranks (one store each) run as an in-process group on the CPU.
  int ranks = 1;
  CpuRunnerOptions ropts;
  int max_seq_len = 0;
  // The cache the scores are measured with: fp32 (calibration, checkpoints) or the engine's fp8 /
  // int8 cache with its scales, so a build's accuracy report includes the KV quantization.
  KvDType kv_dtype = KvDType::F32;
  std::vector<float> kv_scales;
  ProxyObserver proxy;
  std::unique_ptr<ModelRunner> runner;  // built once, with its own KV pool
  std::mutex mutex;                     // one operation at a time
  // "cpu", "cuda" or "auto" (the GPU where this build has the CUDA backend and one is visible).
  // A tensor-parallel engine's ranks run together on the CPU whatever is asked.
  std::string device = "cpu";
  int chunk = kChunk;

  /**
   * Builds the runner from the stores, one per rank. They are handed over, not kept: logprobs and
   * calibration read only the runner, so on the GPU the host copy goes once it is uploaded (a
   * CPU runner keeps its own reference).
   */
  void load(std::vector<std::shared_ptr<TensorStore>> stores) {
    const int blocks = (max_seq_len + kBlockSize - 1) / kBlockSize;
    ranks = int(stores.size());
    if (ranks > 1) {
      runner = make_in_process_tp(cfg, std::move(stores), ropts);
    } else {
      // The engine's own device choice (make_runner_for_device): "auto" falls back to the CPU, a
      // "cuda" that cannot be had throws. The pool is fixed (one sequence), not sized from memory.
      CpuRunnerOptions o = ropts;
      o.observer = &proxy;
      EngineOptions eo;
      eo.max_tokens_in_kv = int64_t(blocks) * kBlockSize;
      ResolvedEngineOptions ro;
      ro.opts.max_num_tokens = kGpuChunk;  // the GPU's step; the CPU runner takes ropts.max_tokens
      ro.opts.max_seq_len = max_seq_len;
      ro.opts.max_batch_size = 1;
      ro.max_logit_rows = kGpuChunk;
      ro.kv.block_size = kBlockSize;
      runner = make_runner_for_device(device, cfg, std::move(stores[0]), o, eo, ro);
    }
    const bool gpu = runner->device() == "cuda";
    chunk = gpu ? kGpuChunk : kChunk;
    KvCacheSpec kv;
    kv.block_size = kBlockSize;
    kv.num_blocks = blocks;
    // The GPU caches bf16 where the CPU tool keeps fp32 (calibration, checkpoints' scores); an
    // engine's fp8 / int8 cache either way.
    kv.dtype = gpu && kv_dtype == KvDType::F32 ? KvDType::BF16 : kv_dtype;
    set_kv_scales(kv, kv_scales, cfg.num_layers);
    runner->allocate_kv(kv);
  }

  /** Runs one sequence from position 0 in chunks; `on_logits(first, rows, count)` gets each chunk's logits. */
  template <typename F>
  void run(ModelRunner& r, const int32_t* tokens, int n, bool want_logits, std::vector<float>& logits, F on_chunk) {
    if (n > max_seq_len) throw Error("sequence of " + std::to_string(n) + " tokens exceeds the tool's max_seq_len");
    std::vector<int32_t> table((max_seq_len + kBlockSize - 1) / kBlockSize);
    for (size_t i = 0; i < table.size(); i++) table[i] = int32_t(i);
    for (int p = 0; p < n; p += chunk) {
      const int c = std::min(chunk, n - p);
      StepBatch b;
      b.tokens.assign(tokens + p, tokens + p + c);
      SeqSlice s;
      s.first_row = 0;
      s.num_tokens = c;
      s.start_pos = p;
      s.block_table = table.data();
      s.num_blocks = int(table.size());
      b.seqs.push_back(s);
      if (want_logits)
        for (int i = 0; i < c; i++) b.logit_rows.push_back(i);
      on_chunk(p, c, true);
      r.forward(b, want_logits ? logits.data() : nullptr);
      on_chunk(p, c, false);
    }
  }
};

class NativeModelTool : public Napi::ObjectWrap<NativeModelTool> {
 public:
  static Napi::FunctionReference constructor;
  static Napi::Function Init(Napi::Env env) {
    Napi::Function f = DefineClass(env, "NativeModelTool",
                                   {InstanceMethod("logprobs", &NativeModelTool::Logprobs),
                                    InstanceMethod("calibrate", &NativeModelTool::Calibrate),
                                    InstanceMethod("close", &NativeModelTool::Close)});
    constructor = Napi::Persistent(f);
    constructor.SuppressDestruct();
    return f;
  }
  explicit NativeModelTool(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeModelTool>(info) {}
  std::shared_ptr<Tool> tool;

 private:
  Napi::Value Logprobs(const Napi::CallbackInfo& info);
  Napi::Value Calibrate(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info) {
    tool.reset();
    return info.Env().Undefined();
  }
  std::shared_ptr<Tool> need_tool(Napi::Env env) {
    if (!tool) throw Napi::Error::New(env, "model tool is closed");
    return tool;
  }
};

Napi::FunctionReference NativeModelTool::constructor;

/** Runs `work` on a worker thread; `done` converts the result on the JS thread. */
class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    try {
      deferred_.Resolve(done_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
};

Napi::Value NativeModelTool::Logprobs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto t = need_tool(env);
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(env, "logprobs(tokens): tokens must be an Int32Array");
  Napi::Int32Array arr = info[0].As<Napi::Int32Array>();
  auto tokens = std::make_shared<std::vector<int32_t>>(arr.Data(), arr.Data() + arr.ElementLength());
  auto out = std::make_shared<std::vector<float>>();
  auto* job = new Job(
      env,
      [t, tokens, out]() {
        std::lock_guard<std::mutex> lock(t->mutex);
        const int V = t->cfg.vocab_size, n = int(tokens->size());
        const CpuKernels& k = cpu_kernels(choose_cpu_level(t->ropts.kernel_level));
        ModelRunner& r = *t->runner;
        std::vector<float> logits(size_t(t->chunk) * V);
        out->resize(size_t(n) * V);
        t->run(r, tokens->data(), n, true, logits, [&](int first, int count, bool before) {
          if (before) return;
          for (int i = 0; i < count; i++) {
            const float* row = logits.data() + size_t(i) * V;
            float mx;
            double sum;
            k.max_and_sum_exp(row, V, &mx, &sum);
            const float lse = mx + float(std::log(sum));
            float* dst = out->data() + size_t(first + i) * V;
            for (int v = 0; v < V; v++) dst[v] = row[v] - lse;
          }
        });
      },
      [out](Napi::Env e) -> Napi::Value {
        Napi::Float32Array a = Napi::Float32Array::New(e, out->size());
        std::copy(out->begin(), out->end(), a.Data());
        return a;
      });
  job->Queue();
  return job->promise();
}

Napi::Value NativeModelTool::Calibrate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto t = need_tool(env);
  if (!info[0].IsArray() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "calibrate(sequences: Int32Array[], sampleRows: number)");
  Napi::Array seqs = info[0].As<Napi::Array>();
  auto sequences = std::make_shared<std::vector<std::vector<int32_t>>>();
  int64_t total = 0;
  for (uint32_t i = 0; i < seqs.Length(); i++) {
    Napi::Value v = seqs.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      throw Napi::TypeError::New(env, "calibrate: every sequence must be an Int32Array");
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    sequences->emplace_back(a.Data(), a.Data() + a.ElementLength());
    total += int64_t(a.ElementLength());
  }
  if (t->ranks > 1)
    throw Napi::Error::New(env, "calibration runs on a single-rank model; calibrate the checkpoint (or a --tp_size 1 engine) instead");
  const int sample_rows = std::max(0, info[1].As<Napi::Number>().Int32Value());
  // A caller that splits its text into several calls passes the sampling stride and the index of
  // this call's first token, so the kept rows are the same as in one call over all the text.
  const int64_t stride_arg = info.Length() > 2 && info[2].IsNumber() ? int64_t(info[2].As<Napi::Number>().DoubleValue()) : 0;
  const int64_t first_token = info.Length() > 3 && info[3].IsNumber() ? int64_t(info[3].As<Napi::Number>().DoubleValue()) : 0;
  const int64_t stride = stride_arg > 0 ? stride_arg : std::max<int64_t>(1, sample_rows > 0 ? total / sample_rows : total + 1);
  auto obs = std::make_shared<CalibrationObserver>(t->cfg.num_layers, stride, sample_rows, first_token);
  auto* job = new Job(
      env,
      [t, sequences, obs]() {
        std::lock_guard<std::mutex> lock(t->mutex);
        t->proxy.target = obs.get();
        try {
          std::vector<float> none;
          for (const auto& s : *sequences) {
            t->run(*t->runner, s.data(), int(s.size()), false, none, [&](int first, int count, bool before) {
              if (before) obs->begin_chunk(obs->tokens());
              else obs->count(count);
            });
          }
          t->runner->flush_observer();
        } catch (...) {
          t->proxy.target = nullptr;
          throw;
        }
        t->proxy.target = nullptr;
      },
      [obs, t](Napi::Env e) -> Napi::Value {
        static const char* names[4] = {"attn_in", "o_in", "mlp_in", "down_in"};
        // A layer input's mean is over every token; an expert's over the rows routed to it.
        auto capture_js = [&](const Capture& c, int64_t rows) {
          const double n = double(std::max<int64_t>(1, rows));
          Napi::Object co = Napi::Object::New(e);
          Napi::Float32Array mx = Napi::Float32Array::New(e, c.cols), mean = Napi::Float32Array::New(e, c.cols);
          for (int i = 0; i < c.cols; i++) {
            mx[i] = c.abs_max[i];
            mean[i] = float(c.abs_sum[i] / n);
          }
          Napi::Float32Array smp = Napi::Float32Array::New(e, c.samples.size());
          std::copy(c.samples.begin(), c.samples.end(), smp.Data());
          co.Set("absMax", mx);
          co.Set("absMean", mean);
          co.Set("samples", smp);
          co.Set("sampleRows", c.kept);
          co.Set("cols", c.cols);
          co.Set("rows", double(rows));
          return co;
        };
        // Every expert of a sparse layer, in order; one no token reached has rows 0 and zero statistics.
        const ModelConfig& cfg = t->cfg;
        auto experts_js = [&](int layer, const LayerStats& s) {
          const int E = cfg.sparse_layer(layer) ? cfg.moe.num_experts : 0;
          Napi::Array list = Napi::Array::New(e, size_t(E));
          for (int x = 0; x < E; x++) {
            ExpertStats none;
            const ExpertStats& ex = size_t(x) < s.experts.size() ? s.experts[size_t(x)] : none;
            Capture in = ex.cap[0], down = ex.cap[1];
            if (in.cols == 0) in.reset(cfg.hidden_size);
            if (down.cols == 0) down.reset(cfg.moe.intermediate_size);
            Napi::Object o = Napi::Object::New(e);
            o.Set("mlp_in", capture_js(in, in.rows));
            o.Set("down_in", capture_js(down, down.rows));
            list[uint32_t(x)] = o;
          }
          return list;
        };
        const int64_t tokens = obs->tokens();
        Napi::Array layers = Napi::Array::New(e, obs->layers().size());
        for (size_t l = 0; l < obs->layers().size(); l++) {
          const LayerStats& s = obs->layers()[l];
          Napi::Object o = Napi::Object::New(e);
          for (int p = 0; p < 4; p++) o.Set(names[p], capture_js(s.cap[p], tokens));
          o.Set("experts", experts_js(int(l), s));
          o.Set("kAmax", s.k_amax);
          o.Set("vAmax", s.v_amax);
          Napi::Float32Array vmax = Napi::Float32Array::New(e, s.v_abs_max.size());
          std::copy(s.v_abs_max.begin(), s.v_abs_max.end(), vmax.Data());
          o.Set("vAbsMax", vmax);
          layers[l] = o;
        }
        Napi::Object result = Napi::Object::New(e);
        result.Set("tokens", double(obs->tokens()));
        result.Set("layers", layers);
        result.Set("head", capture_js(obs->head(), tokens));
        return result;
      });
  job->Queue();
  return job->promise();
}

/**
 * createModelTool(config, tensors, {threads, cpuKernels, quantization, maxSeqLen, kvCacheDtype, kvCacheScales})
 * -> Promise<NativeModelTool>. The KV cache is fp32 unless kvCacheDtype names another (an engine's fp8 /
 * int8 cache with its scales). `tensors` is one table, or one table per rank of a tensor-parallel engine (run in this process).
 */
Napi::Value CreateModelTool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsArray() || !info[2].IsObject())
    throw Napi::TypeError::New(env, "createModelTool(config, tensors, options)");
  auto t = std::make_shared<Tool>();
  t->cfg = model_config_from_js(info[0].As<Napi::Object>());
  Napi::Array tables_js = info[1].As<Napi::Array>();
  auto tables = std::make_shared<std::vector<std::vector<TensorDesc>>>();
  if (tables_js.Length() > 0 && tables_js.Get(0u).IsArray()) {
    for (uint32_t r = 0; r < tables_js.Length(); r++) {
      Napi::Value v = tables_js.Get(r);
      if (!v.IsArray()) throw Napi::TypeError::New(env, "createModelTool: every rank's tensor table must be an array");
      tables->push_back(tensor_table_from_js(v.As<Napi::Array>()));
    }
  } else {
    tables->push_back(tensor_table_from_js(tables_js));
  }
  Napi::Object opts = info[2].As<Napi::Object>();
  const unsigned hw = std::thread::hardware_concurrency();
  t->ropts.threads = int(get_number(opts, "threads", hw ? hw : 1));
  t->ropts.kernel_level = get_string(opts, "cpuKernels", "");
  t->ropts.quantization = get_string(opts, "quantization", "none");
  t->max_seq_len = int(get_number(opts, "maxSeqLen", 4096));
  t->device = get_string(opts, "device", "cpu");
  check_device_name(t->device);
  if (get_string(opts, "kvCacheDtype", "") != "") t->kv_dtype = parse_kv_dtype(get_string(opts, "kvCacheDtype", ""));
  t->kv_scales = kv_scales_from_js(opts);
  t->ropts.max_tokens = kChunk;
  t->ropts.max_logit_rows = kChunk;
  t->ropts.max_seq_len = t->max_seq_len;
  choose_cpu_level(t->ropts.kernel_level);
  auto* job = new Job(
      env,
      [t, tables]() {
        std::vector<std::shared_ptr<TensorStore>> stores;
        for (auto& table : *tables) stores.push_back(std::make_shared<TensorStore>(std::move(table)));
        // Load the weights here, so format and shape errors surface at creation.
        t->load(std::move(stores));
      },
      [t](Napi::Env e) -> Napi::Value {
        Napi::Object obj = NativeModelTool::constructor.New({});
        NativeModelTool::Unwrap(obj)->tool = t;
        // Where it runs: "cpu" or "cuda", and the kernels (the GPU's name, or the CPU's SIMD level).
        obj.Set("device", t->runner->device());
        obj.Set("kernels", t->runner->kernels());
        return obj;
      });
  job->Queue();
  return job->promise();
}

}  // namespace

void RegisterModelTools(Napi::Env env, Napi::Object exports) {
  exports.Set("createModelTool", Napi::Function::New(env, CreateModelTool, "createModelTool"));
  exports.Set("NativeModelTool", NativeModelTool::Init(env));
}

}  // namespace grpst::addon
