// AWQ's scale search on the GPU, for `grpst build --qformat int4_awq` where one is visible: the
// activations sample and a linear group's stacked weights are uploaded once (load), then each
// candidate scaling costs one quantization pass and one product on the device (loss). The CPU
// twin is quant_tools.cpp's awqLoss; the search itself stays in src/quant/awq.ts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace grpst {

class AwqGpu {
 public:
  AwqGpu();  // throws Error where no GPU is usable
  ~AwqGpu();
  AwqGpu(const AwqGpu&) = delete;
  AwqGpu& operator=(const AwqGpu&) = delete;

  /** x [n, K] (the sampled activations), w [rows, K] (the group's weights, stacked). Throws Error. */
  void load(const float* x, int n, int K, const float* w, int rows);
  /** mean of (x . delta^T)^2 for the loaded operands, delta = W - Q(W diag(s)) / s; s [K] or null. */
  double loss(const float* s, int group);

 private:
  template <class T>
  void reserve(T*& p, size_t& have, size_t bytes, const char* what);
  void* stream_ = nullptr;
  float *x_ = nullptr, *w_ = nullptr, *delta_ = nullptr, *s_ = nullptr;
  double* partial_ = nullptr;
  size_t x_bytes_ = 0, w_bytes_ = 0, delta_bytes_ = 0, s_bytes_ = 0, partial_bytes_ = 0;
  int n_ = 0, K_ = 0, rows_ = 0;
  std::vector<double> host_partial_;
};

}  // namespace grpst
