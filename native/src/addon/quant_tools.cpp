// awqLoss(x, n, K, w, rows, scales | null, group): the objective of AWQ's scale search, the mean
// squared difference between x W^T and x (Q(W diag(s)) diag(1/s))^T with Q the symmetric int4
// group quantizer of src/quant/int4.ts. The search itself stays in TypeScript (src/quant/awq.ts);
// this is its inner loop, which a real model makes too heavy for JavaScript. Synchronous: builds
// call it between other synchronous work. Partial sums are taken over fixed row blocks and added in
// order, so the result does not depend on the thread count.
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "grpst/common.h"
#include "grpst/cpu_kernels.h"
#include "grpst/thread_pool.h"
#include "kernels/cpu/quant_kernels.h"

namespace grpst::addon {

namespace {

constexpr int kRowBlock = 16;

ThreadPool& pool() {
  static ThreadPool p(int(std::max(1u, std::thread::hardware_concurrency())));
  return p;
}

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
  pool().parallel_for(blocks, [&](int b, int) {
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

}  // namespace

void RegisterQuantTools(Napi::Env env, Napi::Object exports) {
  exports.Set("awqLoss", Napi::Function::New(env, AwqLoss, "awqLoss"));
}

}  // namespace grpst::addon
