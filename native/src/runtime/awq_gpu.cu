#include "runtime/awq_gpu.h"

#include <cuda_runtime.h>

#include <string>

#include "grpst/common.h"
#include "kernels/cuda/awq_loss.h"

namespace grpst {

namespace cu = grpst::cuda;

namespace {
void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("AWQ search on the GPU: ") + what + ": " + cudaGetErrorString(e));
}
void check(const cu::Status& s) {
  if (!s.ok()) throw Error("AWQ search on the GPU: " + s.message());
}
}  // namespace

AwqGpu::AwqGpu() {
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_ = s;
}

AwqGpu::~AwqGpu() {
  for (void* p : {static_cast<void*>(x_), static_cast<void*>(w_), static_cast<void*>(delta_), static_cast<void*>(s_),
                  static_cast<void*>(partial_)})
    if (p) cudaFree(p);
  if (stream_) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

// Buffers grow to the largest group seen and are kept: a model's layers repeat the same shapes.
template <class T>
void AwqGpu::reserve(T*& p, size_t& have, size_t bytes, const char* what) {
  if (bytes <= have) return;
  if (p) cudaFree(p);
  p = nullptr;
  have = 0;
  void* fresh = nullptr;
  check(cudaMalloc(&fresh, bytes), what);
  p = static_cast<T*>(fresh);
  have = bytes;
}

void AwqGpu::load(const float* x, int n, int K, const float* w, int rows) {
  const size_t xb = size_t(n) * K * 4, wb = size_t(rows) * K * 4;
  reserve(x_, x_bytes_, xb, "cudaMalloc activations");
  reserve(w_, w_bytes_, wb, "cudaMalloc weights");
  reserve(delta_, delta_bytes_, wb, "cudaMalloc delta");
  reserve(s_, s_bytes_, size_t(K) * 4, "cudaMalloc scales");
  const size_t blocks = size_t(cu::awq_partial_blocks(n, rows));
  reserve(partial_, partial_bytes_, blocks * 8, "cudaMalloc partial sums");
  host_partial_.resize(blocks);
  auto st = static_cast<cudaStream_t>(stream_);
  check(cudaMemcpyAsync(x_, x, xb, cudaMemcpyHostToDevice, st), "upload activations");
  check(cudaMemcpyAsync(w_, w, wb, cudaMemcpyHostToDevice, st), "upload weights");
  check(cudaStreamSynchronize(st), "upload");
  n_ = n;
  K_ = K;
  rows_ = rows;
}

double AwqGpu::loss(const float* s, int group) {
  if (n_ == 0) throw Error("AWQ search on the GPU: no operands loaded");
  auto st = static_cast<cudaStream_t>(stream_);
  const cu::Exec ex{st, false};
  if (s) check(cudaMemcpyAsync(s_, s, size_t(K_) * 4, cudaMemcpyHostToDevice, st), "upload scales");
  check(cu::awq_delta(w_, s ? s_ : nullptr, rows_, K_, group, delta_, ex));
  check(cu::awq_sumsq(x_, delta_, n_, rows_, K_, partial_, ex));
  check(cudaMemcpyAsync(host_partial_.data(), partial_, host_partial_.size() * 8, cudaMemcpyDeviceToHost, st), "copy sums");
  check(cudaStreamSynchronize(st), "loss");
  double total = 0;
  for (double p : host_partial_) total += p;  // in block order: the same sum every time
  return total / (double(n_) * rows_);
}

}  // namespace grpst
