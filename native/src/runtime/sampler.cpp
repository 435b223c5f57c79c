#include "grpst/sampler.h"

#include "grpst/bad_sequences.h"

#include "grammar/matcher.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

namespace grpst {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

/** Whether any of x[0, 16) is above t (NaN is not). SSE2 where there is SSE2 (every x86-64). */
inline bool any_above(const float* x, float t) {
#if defined(__SSE2__)
  const __m128 v = _mm_set1_ps(t);
  const __m128 a = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(x), v), _mm_cmpgt_ps(_mm_loadu_ps(x + 4), v));
  const __m128 b = _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + 8), v), _mm_cmpgt_ps(_mm_loadu_ps(x + 12), v));
  return _mm_movemask_ps(_mm_or_ps(a, b)) != 0;
#else
  int n = 0;
  for (int j = 0; j < 16; j++) n += x[j] > t;
  return n > 0;
#endif
}

/** Orders candidates best first: higher value, then lower token id (deterministic ties). */
struct BetterFirst {
  const float* v;
  bool operator()(int32_t a, int32_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

}  // namespace

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void Sampler::init_state(const Request& req, SamplerState& st) const {
  uint64_t seed = req.sampling.seed;
  if (!req.sampling.has_seed) {
    std::random_device rd;
    seed = (uint64_t(rd()) << 32) ^ rd();
  }
  st.rng.reseed(seed);
  st.seed = seed;
  st.output_counts.clear();
  st.output_index.clear();
  st.prompt_tokens_sorted.clear();
  if (req.sampling.repetition_penalty != 1.0f) {
    st.prompt_tokens_sorted = req.prompt;
    std::sort(st.prompt_tokens_sorted.begin(), st.prompt_tokens_sorted.end());
    st.prompt_tokens_sorted.erase(std::unique(st.prompt_tokens_sorted.begin(), st.prompt_tokens_sorted.end()),
                                  st.prompt_tokens_sorted.end());
  }
}

double Sampler::log_sum_exp(const float* logits, int vocab) const {
  float mx;
  double sum;
  math_.max_sum_exp(logits, vocab, &mx, &sum);
  return double(mx) + std::log(sum);
}

void Sampler::logprobs(const float* logits, int vocab, int32_t token, int top_n, float* token_logprob,
                       std::vector<TopEntry>* top) {
  const double lse = log_sum_exp(logits, vocab);
  if (token_logprob) *token_logprob = float(double(logits[token]) - lse);
  if (top && top_n > 0) {
    // One pass keeping the best top_n in a small sorted list (best first; ties: lower id). Ids only
    // grow, so a later entry beats the list's last only by a strictly larger value: once the list
    // is full, a block of 16 with nothing above it is passed over in one test.
    top_n = std::min(top_n, vocab);
    idx_.clear();
    BetterFirst cmp{logits};
    for (int i = 0; i < vocab; i++) {
      if (int(idx_.size()) == top_n && (i & 15) == 0 && i + 16 <= vocab && !any_above(logits + i, logits[idx_.back()])) {
        i += 15;
        continue;
      }
      if (int(idx_.size()) == top_n && !cmp(i, idx_.back())) continue;
      auto at = std::upper_bound(idx_.begin(), idx_.end(), i, cmp);
      idx_.insert(at, i);
      if (int(idx_.size()) > top_n) idx_.pop_back();
    }
    top->clear();
    for (int32_t t : idx_) top->push_back({t, float(double(logits[t]) - lse)});
  }
}

std::vector<float> Sampler::logprobs_of(const float* logits, int vocab, const std::vector<int32_t>& ids) const {
  const double lse = log_sum_exp(logits, vocab);
  std::vector<float> out;
  out.reserve(ids.size());
  for (int32_t t : ids) out.push_back(float(double(logits[t]) - lse));
  return out;
}

void Sampler::apply_penalties(float* l, const SamplingParams& p, const std::vector<int32_t>& prompt_sorted,
                              const std::vector<std::pair<int32_t, int32_t>>& counts) {
  if (p.repetition_penalty != 1.0f) {
    auto penalise = [&](int32_t t) { l[t] = l[t] > 0 ? l[t] / p.repetition_penalty : l[t] * p.repetition_penalty; };
    for (int32_t t : prompt_sorted) penalise(t);
    for (auto& kv : counts)
      if (!std::binary_search(prompt_sorted.begin(), prompt_sorted.end(), kv.first)) penalise(kv.first);
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    for (auto& kv : counts) l[kv.first] -= p.frequency_penalty * float(kv.second) + p.presence_penalty;
  }
}

int32_t Sampler::draw(float* l, int vocab, const SamplingParams& p, Rng& rng) {
  if (p.temperature <= 0.0f) return math_.argmax(l, vocab);
  // Every token still possible (banned ones stay -inf, as -inf / T is), scaled by the temperature;
  // branch-free so that the compiler vectorizes it. The largest, NaN never taken: argmax's.
  size_t possible = 0;
  int nans = 0;
  for (int i = 0; i < vocab; i++) {
    l[i] /= p.temperature;
    possible += l[i] != kNegInf;
    nans += l[i] != l[i];
  }
  const bool nan = nans > 0;
  const int best = math_.argmax(l, vocab);
  if (best < 0) return -1;  // nothing but -inf and NaN: the full path below would draw a NaN
  const float mx = l[best];
  // Candidates, then cut by top_k, top_p and min_p. `l` becomes unnormalised probabilities (the
  // best is 1) at every candidate.
  BetterFirst cmp{l};
  size_t n;
  bool sorted = false;
  if (p.top_k > 0 && size_t(p.top_k) < possible && !nan && top_k_candidates(l, vocab, size_t(p.top_k), mx)) {
    n = size_t(p.top_k);
    sorted = true;
  } else {
    idx_.clear();
    for (int i = 0; i < vocab; i++)
      if (l[i] != kNegInf) idx_.push_back(i);
    for (int32_t t : idx_) l[t] = std::exp(l[t] - mx);
    n = idx_.size();
    if (p.top_k > 0 && size_t(p.top_k) < n) {
      std::nth_element(idx_.begin(), idx_.begin() + p.top_k, idx_.end(), cmp);
      n = size_t(p.top_k);
      std::sort(idx_.begin(), idx_.begin() + n, cmp);
      sorted = true;
    }
  }
  if (p.top_p < 1.0f) {
    double total = 0;
    for (size_t i = 0; i < n; i++) total += l[idx_[i]];
    const double target = double(p.top_p) * total;
    // Most nucleus cuts fall within the best few hundred tokens: sort those first. Without NaN,
    // found as top_k finds its candidates (idx_ then holds them, not every token: the rare wide
    // nucleus below lists every token again).
    size_t head = sorted ? n : std::min<size_t>(n, 1024);
    const bool head_only = !sorted && !nan && head < n;
    if (head_only) {
      best_first_head(l, vocab, head);
    } else if (!sorted) {
      std::nth_element(idx_.begin(), idx_.begin() + head, idx_.begin() + n, cmp);
      std::sort(idx_.begin(), idx_.begin() + head, cmp);
    }
    double cum = 0;
    size_t keep = 0;
    while (keep < head && cum < target) cum += l[idx_[keep++]];
    if (cum < target && head < n) {  // rare: the nucleus is wider than the head
      if (head_only) {
        idx_.clear();
        for (int i = 0; i < vocab; i++)
          if (l[i] != kNegInf) idx_.push_back(i);
      }
      std::sort(idx_.begin(), idx_.begin() + n, cmp);
      cum = 0;
      keep = 0;
      while (keep < n && cum < target) cum += l[idx_[keep++]];
    }
    n = std::max<size_t>(1, keep);
    sorted = true;
  }
  if (p.min_p > 0.0f) {
    float best = 0;
    for (size_t i = 0; i < n; i++) best = std::max(best, l[idx_[i]]);
    const float cut = p.min_p * best;
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
      if (l[idx_[i]] >= cut) idx_[w++] = idx_[i];
    n = w;
  }
  double total = 0;
  for (size_t i = 0; i < n; i++) total += l[idx_[i]];
  const double u = rng.uniform() * total;
  double cum = 0;
  for (size_t i = 0; i < n; i++) {
    cum += l[idx_[i]];
    if (u < cum) return idx_[i];
  }
  return idx_[n - 1];
}

float Sampler::kth_largest(const float* l, int vocab, size_t k) {
  // A min-heap of the best k seen, where most of a vocabulary fails the one compare against its
  // top: once the heap is full, a block of 16 with nothing above it is passed over in one test.
  heap_.clear();
  for (int i = 0; i < vocab; i++) {
    if (heap_.size() == k && (i & 15) == 0 && i + 16 <= vocab && !any_above(l + i, heap_.front())) {
      i += 15;
      continue;
    }
    const float y = l[i];
    if (heap_.size() < k) {
      if (y == kNegInf) continue;
      heap_.push_back(y);
      std::push_heap(heap_.begin(), heap_.end(), std::greater<float>());
    } else if (y > heap_.front()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<float>());
      heap_.back() = y;
      std::push_heap(heap_.begin(), heap_.end(), std::greater<float>());
    }
  }
  return heap_.front();
}

void Sampler::collect_at_least(const float* l, int vocab, float floor) {
  idx_.clear();
  const float below_floor = std::nextafter(floor, kNegInf);
  for (int i = 0; i < vocab; i += 16) {
    if (i + 16 <= vocab && !any_above(l + i, below_floor)) continue;
    for (int j = i; j < std::min(vocab, i + 16); j++)
      if (l[j] >= floor) idx_.push_back(j);
  }
}

void Sampler::best_first_head(const float* l, int vocab, size_t head) {
  // Every entry at least the head-th largest value holds the head best (ties in value go to the
  // lower id, and there are at least `head` entries that large).
  collect_at_least(l, vocab, kth_largest(l, vocab, head));
  BetterFirst cmp{l};
  if (idx_.size() > head) std::nth_element(idx_.begin(), idx_.begin() + ptrdiff_t(head), idx_.end(), cmp);
  std::sort(idx_.begin(), idx_.begin() + ptrdiff_t(head), cmp);
}

bool Sampler::top_k_candidates(float* l, int vocab, size_t k, float mx) {
  // The k-th largest scaled logit y_k.
  const float yk = kth_largest(l, vocab, k);
  // Probabilities exp(y - mx) tie where y differs by less than expf's rounding (~1e-7 relative);
  // a token below y_k by more than the margin has a probability strictly under the k-th's, so it
  // cannot be among the k best (ties go to the lower id). Where the k-th probability is not a
  // normal float (y_k - mx < -80), ties are wide: the full path decides.
  if (yk - mx < -80.0f) return false;
  const float margin = 1e-5f * std::max({1.0f, std::fabs(yk), std::fabs(mx)});
  collect_at_least(l, vocab, yk - margin);
  for (int32_t t : idx_) l[t] = std::exp(l[t] - mx);
  BetterFirst cmp{l};
  if (idx_.size() > k) std::nth_element(idx_.begin(), idx_.begin() + ptrdiff_t(k), idx_.end(), cmp);
  std::sort(idx_.begin(), idx_.begin() + ptrdiff_t(k), cmp);
  return true;
}

SampleResult Sampler::sample(const float* logits, int vocab, const Request& req, SamplerState& st,
                             TokenConstraint* c, bool ban_stops, const int32_t* generated, int num_generated) {
  SampleResult r;
  const SamplingParams& p = req.sampling;
  const bool edits_row = !req.bad_token_ids.empty() || !req.bad_sequences.empty() ||
                         (ban_stops && !req.stop_token_ids.empty()) || !req.logit_bias.empty() || c || p.penalized();
  if (p.temperature <= 0.0f && !edits_row) {
    // Plain greedy reads the row where it is: no copy of a vocabulary's worth of floats per token.
    r.token = math_.argmax(logits, vocab);
  } else {
    r.token = draw_edited(logits, vocab, req, st, c, ban_stops, generated, num_generated);
  }
  if (r.token >= 0 && req.logprobs >= 0)
    logprobs(logits, vocab, r.token, req.logprobs, &r.logprob, req.logprobs > 0 ? &r.top : nullptr);
  return r;
}

int32_t Sampler::draw_edited(const float* logits, int vocab, const Request& req, SamplerState& st, TokenConstraint* c,
                             bool ban_stops, const int32_t* generated, int num_generated) {
  work_.assign(logits, logits + vocab);
  float* l = work_.data();
  for (int32_t t : req.bad_token_ids)
    if (t >= 0 && t < vocab) l[t] = kNegInf;
  ban_sequence_ends(req.bad_sequences, generated, generated ? num_generated : 0, l, vocab);
  if (ban_stops)
    for (int32_t t : req.stop_token_ids)
      if (t >= 0 && t < vocab) l[t] = kNegInf;
  for (const auto& [t, bias] : req.logit_bias)
    if (t >= 0 && t < vocab) l[t] += bias;  // a banned token stays -inf
  if (c) {
    mask_.assign(size_t(vocab + 31) / 32, 0u);
    c->fill_allowed(mask_.data(), vocab);
    grammar::mask_logits(mask_.data(), l, vocab);
  }
  apply_penalties(l, req.sampling, st.prompt_tokens_sorted, st.output_counts);
  return draw(l, vocab, req.sampling, st.rng);
}

}  // namespace grpst
