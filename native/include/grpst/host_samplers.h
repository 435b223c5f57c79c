// The host's sampling threads: one Sampler (with its scratch rows) per thread of a pool the engine
// loop lends a step's host rows to. Each task touches one sequence's state only (its seeded
// stream, penalty counts, constraint; grammar matchers lock themselves), so rows of different
// sequences are drawn at once and give what one thread would. A GPU batch whose rows need the
// host (prompt logprobs, more than 20 top logprobs) does not wait for one thread to pass over a
// 152k-token row per request; the same threads fill constrained device rows' grammar masks.
#pragma once
#include <memory>
#include <vector>

#include "grpst/sampler.h"
#include "grpst/thread_pool.h"

namespace grpst {

class HostSamplers {
 public:
  /** threads counts the engine loop's own; 1: no pool, everything on the loop. */
  HostSamplers(SamplerMath math, int threads);
  int size() const { return int(samplers_.size()); }
  /** The loop's own sampler (thread 0), for work done one row at a time. */
  Sampler& primary() { return samplers_[0]; }
  const Sampler& primary() const { return samplers_[0]; }

  /** Runs fn(task, sampler) for every task in [0, n); the first exception a task throws is rethrown here. */
  template <class F>
  void parallel_for(int n, F&& fn) {
    if (!pool_ || n < 2) {
      for (int t = 0; t < n; t++) fn(t, samplers_[0]);
      return;
    }
    pool_->parallel_for(n, [&](int task, int thread) { fn(task, samplers_[size_t(thread)]); });
  }

 private:
  std::vector<Sampler> samplers_;
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace grpst
