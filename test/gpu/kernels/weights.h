// Random test weights in every format: the host twin (natural layout) and the device Weight
// (repacked where the kernels want another layout).
#pragma once
#include <memory>

#include "harness.h"
#include "reference.h"

namespace harness {

struct DevWeight {
  grpst::cuda::Weight w;
  std::vector<std::shared_ptr<void>> buffers;  // device allocations, freed with the weight
  void* dev(size_t bytes);
  template <class T>
  T* upload(const std::vector<T>& v) {
    T* p = static_cast<T*>(dev(v.size() * sizeof(T)));
    cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    return p;
  }
};

// host twin + device weight, N x K, values scaled like a trained linear (about 1/sqrt(K)).
ref::HostWeight random_host_weight(grpst::cuda::WeightFormat f, int N, int K, Rng& r, int group_size = 128,
                                   bool zeros = false);
DevWeight to_device(const ref::HostWeight& h);

// A weight of format f, N x K, with random bytes in the GPU layout's sizes filled on the device
// (int4 in groups of 128, no zeros): for timing and profiling only, it has no host twin.
DevWeight random_device_weight(grpst::cuda::WeightFormat f, int N, int K, uint64_t seed);

// linear_wo_tiled's split-K scratch on the device: `floats` partial sums and zeroed counters for
// weights of up to `max_n` rows.
struct DevSplitScratch {
  Dev<float> partial;
  Dev<int> counters;
  DevSplitScratch(size_t floats, int max_n) : partial(floats), counters(size_t(grpst::cuda::wo_tiled_counters(max_n))) {
    cudaMemset(counters.p, 0, counters.n * sizeof(int));
  }
  grpst::cuda::SplitScratch get() const {
    return {partial.p, partial.n, counters.p, static_cast<int>(counters.n)};
  }
};

}  // namespace harness
