// Token sampling on one logits row (device-neutral C++): bad-token and constraint masks,
// repetition / presence / frequency penalties, then greedy (temperature 0) or temperature ->
// top_k -> top_p -> min_p -> a draw from the sequence's own seeded PRNG. Logprobs come from the
// raw model distribution (log-softmax of the logits before penalties and temperature).
#pragma once
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "grpst/request.h"

namespace grpst {

/** xoshiro256** seeded through splitmix64: the same seed gives the same stream everywhere. */
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next();
  /** Uniform in [0, 1) with 53 random bits. */
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

 private:
  uint64_t s_[4];
};

/** Per-sequence sampling state: the PRNG and token counts for penalties. */
struct SamplerState {
  Rng rng;
  uint64_t seed = 0;  // the stream's seed (device-side sampling derives its draws from it)
  // (token, times generated) in first-seen order, and each token's place in that list: the
  // penalties walk the list, and a device row's penalty history is a copy of it.
  std::vector<std::pair<int32_t, int32_t>> output_counts;
  std::unordered_map<int32_t, int32_t> output_index;
  std::vector<int32_t> prompt_tokens_sorted;  // unique, for the repetition penalty
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0.0f;  // raw distribution
  std::vector<TopEntry> top;
};

/** The fast math the sampler needs over a vocabulary row (the CPU kernels provide it). */
using MaxSumExpFn = void (*)(const float* x, int n, float* max_out, double* sum_out);
using ArgmaxFn = int (*)(const float* x, int n);
struct SamplerMath {
  MaxSumExpFn max_sum_exp;  // log-softmax's max and sum of exponentials
  ArgmaxFn argmax;          // greedy: the lowest index of the largest entry, -1 when none is left
};

class Sampler {
 public:
  explicit Sampler(SamplerMath math) : math_(math) {}

  void init_state(const Request& req, SamplerState& st) const;
  /** Samples the next token; returns token -1 if the masks leave nothing to sample. */
  /** ban_stops: the request's stop tokens are excluded too (fewer than min_tokens generated). */
  /** generated: [num_generated], the sequence's output so far (the request's bad sequences match it). */
  SampleResult sample(const float* logits, int vocab, const Request& req, SamplerState& st, TokenConstraint* c,
                      bool ban_stops = false, const int32_t* generated = nullptr, int num_generated = 0);
  /** log-softmax of the raw row at `token`, and the `top_n` best alternatives (ties: lower id first). */
  void logprobs(const float* logits, int vocab, int32_t token, int top_n, float* token_logprob,
                std::vector<TopEntry>* top);
  /** log-softmax of the raw row at each of `ids` (one log-sum-exp for all): a scoring request's answer. */
  std::vector<float> logprobs_of(const float* logits, int vocab, const std::vector<int32_t>& ids) const;
  /**
   * The token's rank in the raw row, as vLLM counts it: how many tokens score at least as high (1:
   * the likeliest). Here in the header: the device sampler's twin counts ranks with it too.
   */
  static int32_t rank_of(const float* logits, int vocab, int32_t token) {
    const float x = logits[token];
    int32_t n = 0;
    for (int i = 0; i < vocab; i++) n += logits[i] >= x ? 1 : 0;
    return n > 1 ? n : 1;  // a NaN row counts nothing: the token is still ranked
  }
  /**
   * The request's repetition, presence and frequency penalties on a logits row: the repetition
   * penalty over `prompt_sorted` (distinct prompt tokens) and the output, the other two over
   * `counts` (output tokens, times generated). A draft model's proposals follow them too.
   */
  static void apply_penalties(float* l, const SamplingParams& p, const std::vector<int32_t>& prompt_sorted,
                              const std::vector<std::pair<int32_t, int32_t>>& counts);
  /** Records a token the sequence emitted (penalty counts). */
  static void observe(SamplerState& st, int32_t token) {
    const auto [at, added] = st.output_index.try_emplace(token, int32_t(st.output_counts.size()));
    if (added) st.output_counts.emplace_back(token, 1);
    else st.output_counts[size_t(at->second)].second++;
  }

 private:
  /** log(sum(exp(row))), the log-softmax's normalizer. */
  double log_sum_exp(const float* logits, int vocab) const;
  int32_t draw(float* l, int vocab, const SamplingParams& p, Rng& rng);
  /**
   * top_k without an exp per vocabulary entry: idx_[0, k) = the k best candidates, best first, with
   * their probabilities in `l` (as the full path gives them). `l`: temperature-scaled logits, more
   * than k of them above -inf, none NaN; `mx` their largest. False where it cannot promise that.
   */
  bool top_k_candidates(float* l, int vocab, size_t k, float mx);
  /** The k-th largest of l's entries above -inf (more than k of them, none NaN). */
  float kth_largest(const float* l, int vocab, size_t k);
  /** idx_ = the ids of the entries >= floor, ascending. */
  void collect_at_least(const float* l, int vocab, float floor);
  /** idx_[0, head) = the head best entries of l (more than head above -inf, none NaN), best first; idx_ holds only candidates. */
  void best_first_head(const float* l, int vocab, size_t head);
  /** A copy of the row with the request's bans, biases, grammar mask and penalties, then draw. */
  int32_t draw_edited(const float* logits, int vocab, const Request& req, SamplerState& st, TokenConstraint* c,
                      bool ban_stops, const int32_t* generated, int num_generated);

  SamplerMath math_;
  std::vector<float> work_;
  std::vector<int32_t> idx_;
  std::vector<float> heap_;
  std::vector<uint32_t> mask_;
};

}  // namespace grpst
