// Sampling on the GPU, one block per row, no host round trip: bans, biases and the grammar's
// mask, penalties, temperature, top_k / top_p thresholds found by bisection over the
// order-preserving integer image of the float logits (exact, no sort, no atomics), min_p, then a
// Gumbel-max draw. See kernels.h for the order of operations.
#include "block_argmax.cuh"
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const float* __restrict__ logits,
                                                          const SampleParams* __restrict__ params,
                                                          SampleHistory hist, int V, float* __restrict__ work,
                                                          int32_t* __restrict__ tokens, float* __restrict__ logprobs) {
  __shared__ float scratch[33];
  __shared__ ArgMax am_scratch[33];
  griddep_wait();
  griddep_launch_dependents();
  const int b = blockIdx.x;
  const SampleParams p = params[b];
  const float* raw = logits + static_cast<size_t>(p.row) * V;
  float* lg = work + static_cast<size_t>(b) * V;
  const bool penal = (p.prompt_count > 0 || p.output_count > 0) &&
                     (p.repetition_penalty != 1.f || p.presence_penalty != 0.f || p.frequency_penalty != 0.f);
  const LogitEdit* edits = p.edit_count > 0 ? hist.edits + p.edit_begin : nullptr;
  const uint32_t* mask = p.mask >= 0 ? hist.masks + static_cast<size_t>(p.mask) * ((V + 31) / 32) : nullptr;
  const bool greedy = p.temperature <= 0.f;
  const float inv_t = greedy ? 1.f : 1.f / p.temperature;
  // A token's logit before the penalties: -inf outside the mask, else raw plus its edit (a ban's
  // -inf stays -inf).
  auto start = [&](int t) {
    return sample_allowed(mask, t) ? raw[t] + (edits ? sample_edit_delta(edits, p.edit_count, t) : 0.f) : -INFINITY;
  };

  // Pass 1: raw max; logits / temperature into work, masked (and their max, final unless edited
  // or penalized).
  float raw_max = -INFINITY, mod_max = -INFINITY;
  for (int i = threadIdx.x; i < V; i += kThreads) {
    const float l = raw[i];
    raw_max = fmaxf(raw_max, l);
    lg[i] = sample_allowed(mask, i) ? l * inv_t : -INFINITY;
    mod_max = fmaxf(mod_max, lg[i]);
  }
  raw_max = block_max(raw_max, scratch);
  if (edits || penal) __syncthreads();
  if (edits)
    for (int j = threadIdx.x; j < p.edit_count; j += kThreads) {
      const int t = edits[j].token;
      lg[t] = start(t) * inv_t;
    }
  if (penal) {
    // The history's tokens again from their starting logits: the prompt's with the repetition
    // penalty, then the output's with all three (a token in both lists is written twice, the
    // second time in full). Lists hold distinct tokens, so no two threads write one entry at a time.
    __syncthreads();
    const float rp = p.repetition_penalty;
    if (rp != 1.f)
      for (int j = threadIdx.x; j < p.prompt_count; j += kThreads) {
        const int t = hist.prompt_tokens[p.prompt_begin + j];
        const float l = start(t);
        lg[t] = (l > 0.f ? l / rp : l * rp) * inv_t;
      }
    __syncthreads();
    for (int j = threadIdx.x; j < p.output_count; j += kThreads) {
      const int2 e = hist.output_counts[p.output_begin + j];
      float l = start(e.x);
      if (rp != 1.f) l = l > 0.f ? l / rp : l * rp;
      l -= static_cast<float>(e.y) * p.frequency_penalty + p.presence_penalty;
      lg[e.x] = l * inv_t;
    }
  }
  if (edits || penal) {
    __syncthreads();
    mod_max = -INFINITY;
    for (int i = threadIdx.x; i < V; i += kThreads) mod_max = fmaxf(mod_max, lg[i]);
  }
  mod_max = block_max(mod_max, scratch);
  // The work row is read back by other threads below.
  __syncthreads();

  float raw_sum = 0.f;
  if (logprobs) {
    for (int i = threadIdx.x; i < V; i += kThreads) raw_sum += expf(raw[i] - raw_max);
    raw_sum = block_sum(raw_sum, scratch);
  }

  int chosen;
  if (mod_max == -INFINITY) {
    chosen = -1;  // every token banned or masked out: no draw (the scheduler reports why)
  } else if (greedy) {
    ArgMax a{-INFINITY, 0x7fffffff};
    for (int i = threadIdx.x; i < V; i += kThreads) a = better(a, ArgMax{lg[i], i});
    chosen = block_argmax<kThreads>(a, am_scratch).i;
  } else {
    // top_k: the largest key t with count(key >= t) >= k.
    uint32_t key_k = 0;
    if (p.top_k > 0 && p.top_k < V) {
      uint32_t lo = 0, hi = order_key(mod_max);  // invariant: count(>= lo) >= k
      while (lo < hi) {
        const uint32_t mid = lo + (hi - lo + 1) / 2;
        float c = 0.f;
        for (int i = threadIdx.x; i < V; i += kThreads) c += order_key(lg[i]) >= mid ? 1.f : 0.f;
        c = block_sum(c, scratch);
        if (c >= static_cast<float>(p.top_k)) lo = mid; else hi = mid - 1;
      }
      key_k = lo;
    }
    // top_p over the top_k survivors: the largest key t with mass(key >= t) >= top_p * mass(top_k).
    uint32_t key_p = 0;
    if (p.top_p < 1.f) {
      float z = 0.f;
      for (int i = threadIdx.x; i < V; i += kThreads) {
        const float l = lg[i];
        if (order_key(l) >= key_k) z += expf(l - mod_max);
      }
      z = block_sum(z, scratch);
      const float target = p.top_p * z;
      uint32_t lo = key_k, hi = order_key(mod_max);  // mass(>= lo) = z >= target
      while (lo < hi) {
        const uint32_t mid = lo + (hi - lo + 1) / 2;
        float m = 0.f;
        for (int i = threadIdx.x; i < V; i += kThreads) {
          const float l = lg[i];
          if (order_key(l) >= mid) m += expf(l - mod_max);
        }
        m = block_sum(m, scratch);
        if (m >= target) lo = mid; else hi = mid - 1;
      }
      key_p = lo;
    }
    const uint32_t key_min = key_k > key_p ? key_k : key_p;
    const float min_l = p.min_p > 0.f ? mod_max + logf(p.min_p) : -INFINITY;
    ArgMax a{-INFINITY, 0x7fffffff};
    for (int i = threadIdx.x; i < V; i += kThreads) {
      const float l = lg[i];
      if (order_key(l) < key_min || l < min_l) continue;
      const float gumbel = -logf(-logf(sample_uniform(p.seed, p.step, i)));
      a = better(a, ArgMax{l + gumbel, i});
    }
    chosen = block_argmax<kThreads>(a, am_scratch).i;
  }
  if (threadIdx.x == 0) {
    tokens[b] = chosen;
    if (logprobs) logprobs[b] = chosen >= 0 ? raw[chosen] - raw_max - logf(raw_sum) : -INFINITY;
  }
}

}  // namespace

Status sample(const float* logits, const SampleParams* params, SampleHistory history, int B, int V, float* work,
              int32_t* tokens, float* logprobs, const Exec& ex) {
  if (!work) return invalid("sample", "a [B,V] float workspace is required");
  return launch("sample", sample_kernel, dim3(B), dim3(kThreads), 0, ex, logits, params, history, V, work, tokens,
                logprobs);
}

}  // namespace grpst::cuda
