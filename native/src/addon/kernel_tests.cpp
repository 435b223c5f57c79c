// kernelSelfTest(level): every kernel of one level against the scalar twin on random data,
// plus the batch-invariance property the scheduler relies on (an output row does not change
// with the number of rows or the column split). Driven by test/native/kernels.test.ts.
#include <napi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "grpst/common.h"
#include "grpst/cpu_kernels.h"
#include "grpst/linear.h"
#include "grpst/thread_pool.h"

namespace grpst::addon {

namespace {

struct Rand {
  std::mt19937 gen{1234};
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
  std::vector<float> floats(size_t n, float lo = -1, float hi = 1) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }
  std::vector<uint16_t> bf16(size_t n, float scale = 1) {
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = f32_to_bf16(uniform(-scale, scale));
    return v;
  }
};

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    num = std::max(num, double(std::fabs(a[i] - b[i])));
    den = std::max(den, double(std::fabs(b[i])));
  }
  return num / std::max(den, 1e-30);
}

double test_gemm(const CpuKernels& k, const CpuKernels& ref, Rand& r, bool& invariant) {
  double worst = 0;
  const int shapes[][3] = {{1, 37, 64}, {5, 19, 100}, {9, 64, 1024}, {3, 7, 13}, {17, 33, 160}};
  for (auto& s : shapes) {
    const int M = s[0], N = s[1], K = s[2];
    auto x = r.floats(size_t(M) * K);
    auto w = r.bf16(size_t(N) * K);
    std::vector<float> y(size_t(M) * N), yr(size_t(M) * N);
    k.gemm_bf16(x.data(), K, w.data(), K, y.data(), N, M, 0, N, K);
    ref.gemm_bf16(x.data(), K, w.data(), K, yr.data(), N, M, 0, N, K);
    worst = std::max(worst, rel_err(y, yr));
    // Each row alone, with an odd column split: bit-identical to the batched result.
    for (int m = 0; m < M; m++) {
      std::vector<float> row(N);
      const int cut = N / 3;
      k.gemm_bf16(x.data() + size_t(m) * K, K, w.data(), K, row.data(), N, 1, 0, cut, K);
      k.gemm_bf16(x.data() + size_t(m) * K, K, w.data(), K, row.data(), N, 1, cut, N, K);
      for (int n = 0; n < N; n++)
        if (row[n] != y[size_t(m) * N + n]) invariant = false;
    }
  }
  return worst;
}

double test_attention(const CpuKernels& k, const CpuKernels& ref, Rand& r, bool kv_bf16, bool& row_invariant) {
  double worst = 0;
  const int cases[][5] = {{2, 128, 16, 40, 1}, {3, 24, 16, 300, 13}, {1, 16, 4, 5, 3}, {20, 32, 16, 33, 2},
                          {2, 128, 16, 200, 16}, {8, 64, 16, 90, 7}};  // G, D, bs, ctx of row 0, rows
  for (auto& c : cases) {
    const int G = c[0], D = c[1], bs = c[2], L0 = c[3], R = c[4];
    const int L = L0 + R - 1;  // the last row's context
    const int nkv = 2, blocks = (L + bs - 1) / bs + 3;
    const size_t pool_elems = size_t(blocks) * nkv * bs * D;
    auto kf = r.floats(pool_elems), vf = r.floats(pool_elems);
    std::vector<uint16_t> kb(pool_elems), vb(pool_elems);
    for (size_t i = 0; i < pool_elems; i++) {
      kb[i] = f32_to_bf16(kf[i]);
      vb[i] = f32_to_bf16(vf[i]);
    }
    std::vector<int32_t> table;  // scattered blocks
    for (int b = 0; b < (L + bs - 1) / bs; b++) table.push_back((b * 5 + 2) % blocks);
    auto q = r.floats(size_t(R) * G * D, -2, 2);
    const size_t out_elems = size_t(R) * G * D;
    std::vector<float> out(out_elems), outr(out_elems), single(out_elems);
    std::vector<float> scratch(attention_scratch_floats(L));
    AttentionArgs a{};
    a.q = q.data();
    a.group = G;
    a.head_dim = D;
    a.rows = R;
    a.row_stride = int64_t(G) * D;
    a.k_pool = kv_bf16 ? static_cast<const void*>(kb.data()) : kf.data();
    a.v_pool = kv_bf16 ? static_cast<const void*>(vb.data()) : vf.data();
    a.kv_bf16 = kv_bf16;
    a.block_stride = int64_t(nkv) * bs * D;
    a.head_offset = int64_t(1) * bs * D;
    a.block_size = bs;
    a.block_table = table.data();
    a.ctx_len = L0;
    a.scale = 1.0f / std::sqrt(float(D));
    a.out = out.data();
    a.scratch = scratch.data();
    k.attention(a);
    a.out = outr.data();
    ref.attention(a);
    worst = std::max(worst, rel_err(out, outr));
    // Row by row: the same bits as all rows together.
    for (int row = 0; row < R; row++) {
      AttentionArgs one = a;
      one.rows = 1;
      one.q = q.data() + size_t(row) * G * D;
      one.out = single.data() + size_t(row) * G * D;
      one.ctx_len = L0 + row;
      k.attention(one);
    }
    if (single != out) row_invariant = false;
  }
  return worst;
}

double test_rows(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  double worst = 0;
  for (int n : {1, 13, 64, 1000}) {
    auto x = r.floats(n), w = r.floats(n, 0.5f, 1.5f);
    std::vector<float> y(n), yr(n);
    k.rmsnorm(x.data(), w.data(), y.data(), n, 1e-6f);
    ref.rmsnorm(x.data(), w.data(), yr.data(), n, 1e-6f);
    worst = std::max(worst, rel_err(y, yr));
    auto g = r.floats(n, -8, 8), u = r.floats(n);
    k.silu_mul(g.data(), u.data(), y.data(), n);
    ref.silu_mul(g.data(), u.data(), yr.data(), n);
    worst = std::max(worst, rel_err(y, yr));
  }
  return worst;
}

double test_softmax_sums(const CpuKernels& k, const CpuKernels& ref, Rand& r) {
  double worst = 0;
  for (int n : {1, 17, 151936}) {
    auto x = r.floats(n, -30, 30);
    float m, mr;
    double s, sr;
    k.max_and_sum_exp(x.data(), n, &m, &s);
    ref.max_and_sum_exp(x.data(), n, &mr, &sr);
    if (m != mr) return 1.0;
    worst = std::max(worst, std::fabs(s - sr) / sr);
  }
  return worst;
}

}  // namespace

Napi::Value KernelSelfTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw Error("kernelSelfTest(level) needs a level name");
  const CpuLevel level = parse_cpu_level(info[0].As<Napi::String>().Utf8Value());
  if (!cpu_supports(level)) throw Error("this CPU cannot run the " + info[0].As<Napi::String>().Utf8Value() + " kernels");
  const CpuKernels& k = cpu_kernels(level);
  const CpuKernels& ref = cpu_kernels(CpuLevel::Scalar);
  Rand r;
  bool invariant = true;
  Napi::Object o = Napi::Object::New(env);
  o.Set("gemmBf16", test_gemm(k, ref, r, invariant));
  o.Set("gemmBatchInvariant", invariant);
  bool rows_invariant = true;
  o.Set("attentionF32", test_attention(k, ref, r, false, rows_invariant));
  o.Set("attentionBf16", test_attention(k, ref, r, true, rows_invariant));
  o.Set("attentionRowInvariant", rows_invariant);
  o.Set("rowKernels", test_rows(k, ref, r));
  o.Set("maxSumExp", test_softmax_sums(k, ref, r));
  return o;
}

}  // namespace grpst::addon

namespace grpst::addon {

/**
 * benchGemm(level, M, N, K, threads, iterations) -> seconds per y[M,N] = x[M,K] * w[N,K]^T, the
 * best of `iterations`, with the weights cycling through buffers larger than the caches (as a
 * decode step streams them from DRAM).
 */
Napi::Value BenchGemm(const Napi::CallbackInfo& info) {
  const CpuLevel level = parse_cpu_level(info[0].As<Napi::String>().Utf8Value());
  const int M = info[1].As<Napi::Number>().Int32Value(), N = info[2].As<Napi::Number>().Int32Value(),
            K = info[3].As<Napi::Number>().Int32Value(), threads = info[4].As<Napi::Number>().Int32Value(),
            iters = info[5].As<Napi::Number>().Int32Value();
  const CpuKernels& k = cpu_kernels(level);
  const size_t wbytes = size_t(N) * K * 2;
  const int copies = int(std::max<size_t>(1, (256u << 20) / wbytes));
  std::vector<std::vector<uint16_t>> ws(copies, std::vector<uint16_t>(size_t(N) * K, 0x3f80));
  std::vector<float> x(size_t(M) * K, 0.5f), y(size_t(M) * N);
  ThreadPool pool(threads);
  LinearWeight lw;
  lw.out_features = N;
  lw.in_features = K;
  lw.ldw = K;
  double best = 1e30;
  for (int it = 0; it < iters; it++) {
    lw.w = ws[it % copies].data();
    auto t0 = std::chrono::steady_clock::now();
    linear_forward(lw, x.data(), y.data(), M, k, pool);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return Napi::Number::New(info.Env(), best);
}

}  // namespace grpst::addon
