// What the linear kernels' parity tests share (test_linear.cu, test_linear_stream.cu): a case's
// shape and fused parts, running one linear against its CPU twin, and the same-bits check of a
// switch's old settings against the default.
#pragma once
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"
#include "reference.h"
#include "weights.h"

namespace harness {
namespace linear_checks {
namespace cu = grpst::cuda;

struct Case {
  int M, N, K;
  bool norm, act_scale;
  cu::Epilogue epi;
  bool f32_out;
};

inline std::string describe(const char* kernel, cu::WeightFormat f, const Case& c) {
  std::string s = std::string(kernel) + " " + cu::weight_format_name(f) + " M=" + std::to_string(c.M) +
                  " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K);
  if (c.norm) s += " +norm";
  if (c.act_scale) s += " +scale";
  if (c.epi == cu::Epilogue::residual_add) s += " +residual";
  if (c.epi == cu::Epilogue::swiglu) s += " +swiglu";
  if (c.f32_out) s += " f32";
  return s;
}

// Runs one linear through `run` (gemv / skinny / a GEMM path) and compares with the twin.
template <class Run>
void check_linear(const std::string& name, const ref::HostWeight& hw, const Case& c, double tol, Run&& run) {
  Rng r(static_cast<uint64_t>(c.M) * 7919 + c.N * 31 + c.K);
  const auto x = rand_bf16(r, static_cast<size_t>(c.M) * c.K, 2.f);
  std::vector<float> nw(c.K);
  for (auto& v : nw) v = 1.f + r.sym(0.2f);
  const auto as = rand_bf16(r, c.K, 0.5f, 1.f);
  const int out_n = c.epi == cu::Epilogue::swiglu ? c.N / 2 : c.N;
  const size_t out_count = static_cast<size_t>(c.M) * out_n;
  std::vector<float> y0(out_count);
  for (auto& v : y0) v = rbf(r.sym(1.f));
  Dev<uint16_t> dx(x), das(as);
  Dev<float> dnw(nw);
  Dev<uint8_t> dy(out_count * (c.f32_out ? 4 : 2));
  if (c.epi == cu::Epilogue::residual_add) {
    std::vector<uint16_t> b(out_count);
    for (size_t i = 0; i < out_count; ++i) b[i] = f2bf(y0[i]);
    cudaMemcpy(dy.p, b.data(), b.size() * 2, cudaMemcpyHostToDevice);
  } else {
    dy.poison();
  }
  cu::LinearIn in;
  in.x = dx.as<cu::bf16>();
  in.norm_w = c.norm ? dnw.p : nullptr;
  in.eps = 1e-6f;
  in.act_scale = c.act_scale ? das.as<cu::bf16>() : nullptr;
  cu::LinearOut out;
  out.y = dy.p;
  out.epi = c.epi;
  out.f32_out = c.f32_out;
  if (!Checks::get().status(name, run(in, out))) return;
  std::vector<float> want = y0;
  ref::linear(x, c.norm ? &nw : nullptr, 1e-6f, c.act_scale ? &as : nullptr, hw, c.epi, c.f32_out, c.M, want);
  std::vector<float> got(out_count);
  if (c.f32_out) {
    cudaMemcpy(got.data(), dy.p, out_count * 4, cudaMemcpyDeviceToHost);
  } else {
    std::vector<uint16_t> b(out_count);
    cudaMemcpy(b.data(), dy.p, out_count * 2, cudaMemcpyDeviceToHost);
    got = bf16_to_f32(b);
  }
  Checks::get().compare(name, got, want, tol);
}

// Switches (environment variables) set to a previous behaviour, and what the check calls it.
struct OldSetting {
  std::string label;
  std::vector<std::pair<const char*, const char*>> env;
};

// Runs `run` once under each old setting and once with the defaults, each from the same starting
// output (residual_add reads it); checks every old setting's bits equal the default's, and leaves
// the default's output for the caller's comparison with the twin.
inline Status same_bits_as_old(const std::string& name, size_t bytes, const cu::LinearOut& out,
                        const std::vector<OldSetting>& olds, const std::function<Status()>& run) {
  std::vector<uint8_t> start(bytes), now(bytes);
  std::vector<std::vector<uint8_t>> old(olds.size(), std::vector<uint8_t>(bytes));
  cudaMemcpy(start.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < olds.size(); ++i) {
    // each variable back to what it was (the caller may have set one), or unset
    std::vector<std::pair<const char*, std::optional<std::string>>> before;
    for (const auto& [k, v] : olds[i].env) {
      const char* was = std::getenv(k);
      before.emplace_back(k, was ? std::optional<std::string>(was) : std::nullopt);
      setenv(k, v, 1);
    }
    const Status st = run();
    for (const auto& [k, was] : before) {
      if (was) setenv(k, was->c_str(), 1);
      else unsetenv(k);
    }
    if (!st.ok()) return st;
    cudaMemcpy(old[i].data(), out.y, bytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(out.y, start.data(), bytes, cudaMemcpyHostToDevice);
  }
  const Status st = run();
  if (!st.ok()) return st;
  cudaMemcpy(now.data(), out.y, bytes, cudaMemcpyDeviceToHost);
  for (size_t i = 0; i < olds.size(); ++i) Checks::get().expect(name + ": the same bits as " + olds[i].label, old[i] == now);
  return st;
}

inline size_t out_bytes(const Case& c) {
  return static_cast<size_t>(c.M) * (c.epi == cu::Epilogue::swiglu ? c.N / 2 : c.N) * (c.f32_out ? 4 : 2);
}

// Whether this GPU is of compute capability 9.0 (H100 / H200), where sm_90a kernels run.
inline bool hopper_sm90() {
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

// x as the tiled GEMMs take it: the case's prologue (RMSNorm, activation scales) applied into xn
// where it has one.
inline cu::Status tiled_input(const cu::LinearIn& in, const Case& c, Dev<uint16_t>& xn, const cu::bf16** x) {
  *x = in.x;
  if (!in.norm_w && !in.act_scale) return cu::ok_status();
  *x = xn.as<cu::bf16>();
  return cu::linear_prologue(in, xn.as<cu::bf16>(), c.M, c.K, {});
}
// Every split / tile counter back at zero after a launch (the next one counts from there).
inline bool counters_at_zero(const DevSplitScratch& scratch) {
  for (int v : scratch.counters.download())
    if (v != 0) return false;
  return true;
}

// The streaming GEMV's tests (test_linear_stream.cu).
void test_linear_stream();
// The bf16 warp-specialized GEMM's tests (test_linear_bf16_ws.cu).
void test_bf16_ws();

}  // namespace linear_checks
}  // namespace harness
