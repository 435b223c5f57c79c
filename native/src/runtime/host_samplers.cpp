#include "grpst/host_samplers.h"

#include <algorithm>

namespace grpst {

HostSamplers::HostSamplers(SamplerMath math, int threads) {
  threads = std::max(1, threads);
  samplers_.assign(size_t(threads), Sampler(math));
  if (threads > 1) pool_ = std::make_unique<ThreadPool>(threads);
}

}  // namespace grpst
