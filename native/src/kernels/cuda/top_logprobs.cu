// The best alternatives of logits rows and their log-softmax, one block per row, on the GPU:
// a request's top logprobs without copying its 152k-wide row to the host. The row's max and
// log-sum-exp first, then n passes of a block argmax, each over the entries ranked after the
// previous pick (lower value, or the same value at a higher id): best first, ties to the lower
// id, as the host sampler lists them. n <= kMaxTopLogprobs passes over a row the L2 holds. A
// prompt logprob row also gets its target token's logprob and rank, counted in the sum's pass.
#include "block_argmax.cuh"
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads) top_logprobs_kernel(const float* __restrict__ logits,
                                                                const TopLogprobsRow* __restrict__ rows, int V,
                                                                int32_t* __restrict__ top_tokens,
                                                                float* __restrict__ top_logprobs,
                                                                float* __restrict__ target_logprobs,
                                                                int32_t* __restrict__ target_ranks) {
  __shared__ float scratch[33];
  __shared__ ArgMax picks[33];
  griddep_wait();
  griddep_launch_dependents();
  const TopLogprobsRow r = rows[blockIdx.x];
  const float* x = logits + static_cast<size_t>(r.row) * V;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < V; i += kThreads) mx = fmaxf(mx, x[i]);
  mx = block_max(mx, scratch);
  float sum = 0.f, at_or_above = 0.f;  // counts stay exact in float up to 2^24 entries
  const float xt = r.target >= 0 ? x[r.target] : 0.f;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    sum += expf(x[i] - mx);
    at_or_above += x[i] >= xt ? 1.f : 0.f;
  }
  const float lse = mx + logf(block_sum(sum, scratch));
  if (r.target >= 0) {
    at_or_above = block_sum(at_or_above, scratch);
    if (threadIdx.x == 0) {
      target_logprobs[blockIdx.x] = xt - lse;
      target_ranks[blockIdx.x] = at_or_above < 1.f ? 1 : static_cast<int32_t>(at_or_above);
    }
  }
  ArgMax last{INFINITY, -1};  // everything ranks after it
  const int n = r.n < kMaxTopLogprobs ? r.n : kMaxTopLogprobs;
  for (int k = 0; k < n; ++k) {
    ArgMax best{-INFINITY, 0x7fffffff};
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const ArgMax c{x[i], i};
      if (ranks_before(last, c) && ranks_before(c, best)) best = c;
    }
    best = block_argmax<kThreads>(best, picks);
    if (best.i == 0x7fffffff) best = ArgMax{-INFINITY, -1};  // a row of fewer ranked entries (NaN)
    if (threadIdx.x == 0) {
      top_tokens[static_cast<size_t>(blockIdx.x) * kMaxTopLogprobs + k] = best.i;
      top_logprobs[static_cast<size_t>(blockIdx.x) * kMaxTopLogprobs + k] = best.v - lse;
    }
    if (best.i < 0) break;
    last = best;
  }
}

}  // namespace

Status top_logprobs(const float* logits, const TopLogprobsRow* rows, int R, int V, int32_t* top_tokens,
                    float* top_logprobs_out, float* target_logprobs, int32_t* target_ranks, const Exec& ex) {
  if (R <= 0) return ok_status();
  return launch("top_logprobs", top_logprobs_kernel, dim3(R), dim3(kThreads), 0, ex, logits, rows, V, top_tokens,
                top_logprobs_out, target_logprobs, target_ranks);
}

}  // namespace grpst::cuda
