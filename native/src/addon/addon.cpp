// Module registration: the functions and classes src/engine/native.ts describes.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "addon/engine_wrap.h"
#include "grpst/cpu_kernels.h"
#include "grpst/tensor_store.h"
#include "grpst/thread_pool.h"
#include "runtime/collective_nccl.h"
#include "runtime/cuda_select.h"

namespace grpst::addon {

Napi::Value KernelSelfTest(const Napi::CallbackInfo& info);  // kernel_tests.cpp
Napi::Value NgramDraftSelfTest(const Napi::CallbackInfo& info);  // ngram_tests.cpp
Napi::Value BenchNgramDraft(const Napi::CallbackInfo& info);     // ngram_tests.cpp
Napi::Value BenchGemm(const Napi::CallbackInfo& info);       // kernel_tests.cpp
Napi::Value BenchAttention(const Napi::CallbackInfo& info);  // kernel_tests.cpp
void RegisterGrammar(Napi::Env env, Napi::Object exports);   // grammar_wrap.cpp
void RegisterModelTools(Napi::Env env, Napi::Object exports);  // model_tools.cpp
void RegisterQuantTools(Napi::Env env, Napi::Object exports);  // quant_tools.cpp
void RegisterQuantPasses(Napi::Env env, Napi::Object exports);  // quant_passes.cpp
void RegisterTensorParallel(Napi::Env env, Napi::Object exports);  // tp_wrap.cpp
void RegisterLora(Napi::Env env, Napi::Object exports);  // lora_wrap.cpp

namespace {

constexpr const char* kVersion = "0.1.0";

Napi::Array level_names(Napi::Env env) {
  Napi::Array a = Napi::Array::New(env);
  uint32_t i = 0;
  for (CpuLevel l : cpu_levels_available()) a.Set(i++, cpu_level_name(l));
  return a;
}

/** probe(): proves the binary loads and reports what it can run. */
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", kVersion);
  o.Set("cpuKernels", level_names(env));
  o.Set("bestCpuKernels", cpu_level_name(cpu_levels_available().front()));
#ifdef GRPST_WITH_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
  o.Set("nccl", built_with_nccl());
  return o;
}

/** measureMemoryBandwidth(bytes, iterations, threads) -> best read bandwidth in bytes/s. */
Napi::Value MeasureMemoryBandwidth(const Napi::CallbackInfo& info) {
  double bytes_d = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : double(1 << 30);
  int iterations = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 5;
  int threads = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().Int32Value() : 1;
  if (bytes_d < (1 << 20) || bytes_d > 64.0 * (1ull << 30)) throw Error("bytes must be between 1 MiB and 64 GiB");
  threads = std::max(1, threads);
  iterations = std::max(1, iterations);
  const size_t chunk = 256 * size_t(threads);
  const size_t bytes = size_t(bytes_d) / chunk * chunk;
  AlignedBuffer buf(bytes);
  std::memset(buf.ptr, 1, bytes);  // touch every page before timing
  const CpuKernels& k = cpu_kernels(cpu_levels_available().front());
  double best = 0;
  std::atomic<float> sink{0};
  for (int it = 0; it < iterations; it++) {
    // One plain thread per slice, all released at once: every slice is read concurrently.
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> readers;
    const size_t per = bytes / threads;
    for (int t = 0; t < threads; t++) {
      readers.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        float v = k.stream_read(static_cast<const char*>(buf.ptr) + per * t, per);
        sink.store(sink.load() + v);
      });
    }
    while (ready.load() != threads) std::this_thread::yield();
    auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (auto& r : readers) r.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(bytes) / s);
  }
  return Napi::Number::New(info.Env(), best);
}

/** gpuFreeMemory(device) -> free bytes on that GPU, or -1 when the build has no CUDA backend. */
Napi::Value GpuFreeMemory(const Napi::CallbackInfo& info) {
  const int device = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  return Napi::Number::New(info.Env(), double(gpu_free_memory_bytes(device)));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe, "probe"));
  exports.Set("measureMemoryBandwidth", Napi::Function::New(env, MeasureMemoryBandwidth, "measureMemoryBandwidth"));
  exports.Set("kernelSelfTest", Napi::Function::New(env, KernelSelfTest, "kernelSelfTest"));
  exports.Set("ngramDraftSelfTest", Napi::Function::New(env, NgramDraftSelfTest, "ngramDraftSelfTest"));
  exports.Set("benchNgramDraft", Napi::Function::New(env, BenchNgramDraft, "benchNgramDraft"));
  exports.Set("benchGemm", Napi::Function::New(env, BenchGemm, "benchGemm"));
  exports.Set("benchAttention", Napi::Function::New(env, BenchAttention, "benchAttention"));
  exports.Set("createEngine", Napi::Function::New(env, CreateEngine, "createEngine"));
  exports.Set("gpuFreeMemory", Napi::Function::New(env, GpuFreeMemory, "gpuFreeMemory"));
  exports.Set("createAllowedTokensConstraint",
              Napi::Function::New(env, CreateAllowedTokensConstraint, "createAllowedTokensConstraint"));
  exports.Set("NativeEngine", NativeEngine::Init(env));
  exports.Set("NativeConstraint", NativeConstraint::Init(env));
  RegisterGrammar(env, exports);
  RegisterModelTools(env, exports);
  RegisterQuantTools(env, exports);
  RegisterQuantPasses(env, exports);
  RegisterTensorParallel(env, exports);
  RegisterLora(env, exports);
  return exports;
}

}  // namespace
}  // namespace grpst::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return grpst::addon::Init(env, exports); }

NODE_API_MODULE(grpst_native, InitModule)
