// awqLoss(x, n, K, w, rows, scales | null, group): the objective of AWQ's scale search, the mean
// squared difference between x W^T and x (Q(W diag(s)) diag(1/s))^T with Q the symmetric int4
// group quantizer of src/quant/int4.ts. The search itself stays in TypeScript (src/quant/awq.ts);
// this is its inner loop, which a real model makes too heavy for JavaScript. Synchronous: builds
// call it between other synchronous work. Partial sums are taken over fixed row blocks and added in
// order, so the result does not depend on the thread count. Where the CUDA backend is built,
// AwqGpuSearch runs the same objective on the GPU (runtime/awq_gpu.h).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpst/common.h"
#include "grpst/cpu_kernels.h"
#include "addon/quant_pool.h"
#include "kernels/cpu/quant_kernels.h"
#ifdef GRPST_WITH_CUDA
#include "runtime/awq_gpu.h"
#include "runtime/cuda_runner.h"
#endif

namespace grpst::addon {

ThreadPool& quant_pool() {
  static ThreadPool p(int(std::max(1u, std::thread::hardware_concurrency())));
  return p;
}

namespace {

constexpr int kRowBlock = 16;

const QuantKernels& kernels() {
  static const QuantKernels& q = quant_kernels(choose_cpu_level(""));
  return q;
}

/** delta = w - Q(w * s) / s for one row (s null: plain round-to-nearest). */
void delta_row(const float* w, const float* s, int K, int group, float* out) {
  std::vector<float> scaled(K);
  for (int c = 0; c < K; c++) scaled[c] = s ? w[c] * s[c] : w[c];
  for (int g0 = 0; g0 < K; g0 += group) {
    float amax = 0;
    for (int i = 0; i < group; i++) amax = std::max(amax, std::fabs(scaled[g0 + i]));
    const float scale = amax / 7.0f;
    for (int i = 0; i < group; i++) {
      const int c = g0 + i;
      float q = 0;
      if (scale != 0) q = std::clamp(std::nearbyint(scaled[c] / scale), -8.0f, 7.0f) * scale;
      out[c] = w[c] - (s ? q / s[c] : q);
    }
  }
}

Napi::Value AwqLoss(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto f32 = [&](int i, const char* what) -> Napi::Float32Array {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw Napi::TypeError::New(env, std::string("awqLoss: ") + what + " must be a Float32Array");
    return info[i].As<Napi::Float32Array>();
  };
  Napi::Float32Array x = f32(0, "x");
  const int n = info[1].As<Napi::Number>().Int32Value(), K = info[2].As<Napi::Number>().Int32Value();
  Napi::Float32Array w = f32(3, "w");
  const int rows = info[4].As<Napi::Number>().Int32Value();
  const float* s = info[5].IsNull() || info[5].IsUndefined() ? nullptr : f32(5, "scales").Data();
  const int group = info[6].As<Napi::Number>().Int32Value();
  if (n <= 0 || K <= 0 || rows <= 0 || group <= 0 || K % group != 0 || x.ElementLength() != size_t(n) * K ||
      w.ElementLength() != size_t(rows) * K)
    throw Napi::RangeError::New(env, "awqLoss: shapes do not match (x [n, K], w [rows, K], K a multiple of group)");
  const float* xp = x.Data();
  const float* wp = w.Data();
  const int blocks = (rows + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(blocks, 0.0);
  const QuantKernels& q = kernels();
  quant_pool().parallel_for(blocks, [&](int b, int) {
    const int r0 = b * kRowBlock, cnt = std::min(kRowBlock, rows - r0);
    std::vector<float> delta(size_t(cnt) * K), y(size_t(n) * cnt);
    for (int r = 0; r < cnt; r++) delta_row(wp + size_t(r0 + r) * K, s, K, group, delta.data() + size_t(r) * K);
    q.gemm_f32w(xp, K, delta.data(), K, y.data(), cnt, n, cnt, K);
    double sum = 0;
    for (float v : y) sum += double(v) * v;
    partial[b] = sum;
  });
  double total = 0;
  for (double p : partial) total += p;
  return Napi::Number::New(env, total / (double(n) * rows));
}

/**
 * quantizeInt4(w, rows, cols, group) -> {packed, scales}: src/quant/int4.ts quantizeInt4Symmetric
 * in native code, rows on the pool's threads (a model's every int4 weight passes through it). The
 * same arithmetic: scale = fround(amax / 7) divided in double, codes round(w / scale) half to even
 * in double, clamped to -8..7 and stored + 8, two per byte, low nibble first; so the same bytes.
 */
Napi::Value QuantizeInt4(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "quantizeInt4: w must be a Float32Array");
  Napi::Float32Array w = info[0].As<Napi::Float32Array>();
  const int rows = info[1].As<Napi::Number>().Int32Value(), cols = info[2].As<Napi::Number>().Int32Value();
  const int group = info[3].As<Napi::Number>().Int32Value();
  if (rows <= 0 || cols <= 0 || group <= 0 || group % 2 != 0 || cols % group != 0 || w.ElementLength() != size_t(rows) * cols)
    throw Napi::RangeError::New(env, "quantizeInt4: shapes do not match (w [rows, cols], cols a multiple of an even group)");
  const int groups = cols / group;
  Napi::Uint8Array packed = Napi::Uint8Array::New(env, size_t(rows) * cols / 2);
  Napi::Float32Array scales = Napi::Float32Array::New(env, size_t(rows) * groups);
  const float* wp = w.Data();
  uint8_t* pp = packed.Data();
  float* sp = scales.Data();
  quant_pool().parallel_for(rows, [&](int r, int) {
    for (int g = 0; g < groups; g++) {
      const float* x = wp + size_t(r) * cols + size_t(g) * group;
      // As Math.max: a NaN anywhere makes the group's amax NaN (the accuracy report then names it).
      float amax = 0;
      for (int i = 0; i < group; i++) amax = std::isnan(x[i]) || std::isnan(amax) ? NAN : std::max(amax, std::fabs(x[i]));
      const float scale = float(double(amax) / 7.0);
      sp[size_t(r) * groups + g] = scale;
      uint8_t* out = pp + (size_t(r) * cols + size_t(g) * group) / 2;
      for (int i = 0; i < group; i += 2) {
        uint8_t q[2];
        for (int j = 0; j < 2; j++) {
          const double v = scale == 0 ? 0.0 : std::nearbyint(double(x[i + j]) / double(scale));
          // NaN (a NaN or infinite group) stores 0, as a Uint8Array stores NaN + 8.
          q[j] = std::isnan(v) ? 0 : uint8_t(int(std::clamp(v, -8.0, 7.0)) + 8);
        }
        out[i / 2] = uint8_t(q[0] | (q[1] << 4));
      }
    }
  });
  Napi::Object o = Napi::Object::New(env);
  o.Set("packed", packed);
  o.Set("scales", scales);
  return o;
}

#ifdef GRPST_WITH_CUDA
/**
 * new AwqGpuSearch(): awqLoss on the GPU. load(x, n, K, w, rows) uploads a group's operands once;
 * loss(scales | null, group) evaluates one candidate (the same arithmetic as awqLoss, the products
 * summed in another order). Throws where no GPU is usable.
 */
class AwqGpuSearch : public Napi::ObjectWrap<AwqGpuSearch> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "AwqGpuSearch",
                       {InstanceMethod("load", &AwqGpuSearch::Load), InstanceMethod("loss", &AwqGpuSearch::Loss)});
  }
  explicit AwqGpuSearch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AwqGpuSearch>(info) {
    std::string why;
    if (!cuda_device_available(&why)) throw Napi::Error::New(info.Env(), "device \"cuda\" is not available: " + why);
    try {
      gpu_ = std::make_unique<AwqGpu>();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }

 private:
  static const float* floats(const Napi::CallbackInfo& info, int i, const char* what, size_t n) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array ||
        info[i].As<Napi::Float32Array>().ElementLength() != n)
      throw Napi::TypeError::New(info.Env(), std::string("AwqGpuSearch: ") + what + " must be a Float32Array of the loaded shape");
    return info[i].As<Napi::Float32Array>().Data();
  }
  Napi::Value Load(const Napi::CallbackInfo& info) {
    const int n = info[1].As<Napi::Number>().Int32Value(), K = info[2].As<Napi::Number>().Int32Value();
    const int rows = info[4].As<Napi::Number>().Int32Value();
    if (n <= 0 || K <= 0 || rows <= 0) throw Napi::RangeError::New(info.Env(), "AwqGpuSearch.load: empty operands");
    const float* x = floats(info, 0, "x", size_t(n) * K);
    const float* w = floats(info, 3, "w", size_t(rows) * K);
    try {
      gpu_->load(x, n, K, w, rows);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    K_ = K;
    return info.Env().Undefined();
  }
  Napi::Value Loss(const Napi::CallbackInfo& info) {
    const float* s = info[0].IsNull() || info[0].IsUndefined() ? nullptr : floats(info, 0, "scales", size_t(K_));
    const int group = info[1].As<Napi::Number>().Int32Value();
    if (group <= 0 || K_ % group != 0) throw Napi::RangeError::New(info.Env(), "AwqGpuSearch.loss: K must be a multiple of group");
    try {
      return Napi::Number::New(info.Env(), gpu_->loss(s, group));
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
  }
  std::unique_ptr<AwqGpu> gpu_;
  int K_ = 0;
};
#endif

}  // namespace

void RegisterQuantTools(Napi::Env env, Napi::Object exports) {
  exports.Set("awqLoss", Napi::Function::New(env, AwqLoss, "awqLoss"));
  exports.Set("quantizeInt4", Napi::Function::New(env, QuantizeInt4, "quantizeInt4"));
#ifdef GRPST_WITH_CUDA
  exports.Set("AwqGpuSearch", AwqGpuSearch::Init(env));
#endif
}

}  // namespace grpst::addon
