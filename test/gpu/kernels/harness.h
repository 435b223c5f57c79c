// Test + bench harness for the CUDA kernels: device buffers, random data, comparisons with the
// CPU twins, event timing and a results table. Check failures are collected, never fatal.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../../../native/src/kernels/cuda/kernels.h"

namespace harness {

using grpst::cuda::Status;

// ---- host numerics -----------------------------------------------------------------------------

inline uint16_t f2bf(float f) {  // round to nearest even, NaN kept quiet
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf2f(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float rbf(float f) { return bf2f(f2bf(f)); }

// e4m3 (OCP, no infinities, max 448), round to nearest even, saturating like __NV_SATFINITE.
uint8_t f2e4m3(float f);
float e4m32f(uint8_t b);
inline int8_t f2i8(float v) {
  float r = std::nearbyint(v);
  r = std::fmin(127.f, std::fmax(-127.f, r));
  return static_cast<int8_t>(r);
}

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) / 16777216.f; }  // [0, 1)
  float sym(float a = 1.f) { return (2.f * uniform() - 1.f) * a; }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
};

inline std::vector<uint16_t> rand_bf16(Rng& r, size_t n, float a = 1.f, float offset = 0.f) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = f2bf(r.sym(a) + offset);
  return v;
}

// ---- device buffers ----------------------------------------------------------------------------

bool cuda_ok(cudaError_t e, const char* what);

template <class T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  Dev() = default;
  explicit Dev(size_t count) { alloc(count); }
  explicit Dev(const std::vector<T>& v) { upload(v); }
  ~Dev() { if (p) cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  Dev(Dev&& o) noexcept : p(o.p), n(o.n) { o.p = nullptr; o.n = 0; }
  void alloc(size_t count) {
    if (p) cudaFree(p);
    p = nullptr;
    n = count;
    if (count) cuda_ok(cudaMalloc(&p, count * sizeof(T)), "cudaMalloc");
  }
  void upload(const std::vector<T>& v) {
    if (n != v.size()) alloc(v.size());
    if (n) cuda_ok(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<T> download() const {
    std::vector<T> v(n);
    if (n) cuda_ok(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return v;
  }
  // Fill with a byte pattern that is NaN as bf16 and fp32, so unwritten outputs show up.
  void poison() { if (n) cuda_ok(cudaMemset(p, 0xFF, n * sizeof(T)), "poison"); }
  template <class U>
  U* as() const { return reinterpret_cast<U*>(p); }
};

// ---- checks ------------------------------------------------------------------------------------

struct CheckResult {
  std::string name;
  double rel_l2;
  double max_abs;
  double tol;
  bool pass;
  std::string note;
};

class Checks {
 public:
  static Checks& get();
  // Compares got with ref: relative L2 error <= tol, no NaN, and no unwritten (NaN) element.
  bool compare(const std::string& name, const std::vector<float>& got, const std::vector<float>& ref, double tol);
  bool expect(const std::string& name, bool ok, const std::string& note = "");
  bool status(const std::string& name, const Status& s);
  int failures() const;
  void print() const;
  void write_json(FILE* f) const;
  const std::vector<CheckResult>& results() const { return results_; }

 private:
  std::vector<CheckResult> results_;
};

inline std::vector<float> bf16_to_f32(const std::vector<uint16_t>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = bf2f(v[i]);
  return f;
}

// Whether the new decode kernels (weight-streaming GEMV, staged / fused decode attention) may run:
// GRPST_CUDA_FUSED_DECODE=0 (scripts/gpu/run.sh, after they failed their parity tests) keeps the
// benches on the previous kernels, so a broken kernel cannot take the rest of the run down.
inline bool new_decode_kernels() {
  const char* v = std::getenv("GRPST_CUDA_FUSED_DECODE");
  return !(v && v[0] == '0');
}

// ---- timing ------------------------------------------------------------------------------------

// Median milliseconds of `reps` runs of fn (each run may enqueue several launches), after
// `warmup` runs; fn returns false to abort.
template <class F>
double time_ms(F&& fn, int warmup, int reps, cudaStream_t stream) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < warmup; ++i)
    if (!fn()) return -1;
  std::vector<double> ts;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a, stream);
    if (!fn()) return -1;
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    ts.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

// Bench rows printed as a table at the end and written to JSON.
struct BenchRow {
  std::string group, name;
  double value;
  std::string unit;
  std::string note;
};
class Bench {
 public:
  static Bench& get();
  void add(const std::string& group, const std::string& name, double value, const std::string& unit,
           const std::string& note = "");
  void print() const;
  void write_json(FILE* f) const;

 private:
  std::vector<BenchRow> rows_;
};

}  // namespace harness
