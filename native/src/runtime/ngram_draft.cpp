#include "grpst/ngram_draft.h"

#include <algorithm>

namespace grpst {

int propose_ngram_draft(const int32_t* tokens, int len, const NgramDraftConfig& cfg, int k, int32_t* out) {
  if (k <= 0 || len < 2) return 0;
  const int32_t last = tokens[len - 1];
  for (int n = std::min(cfg.max_n, len - 1); n >= std::max(1, cfg.min_n); --n) {
    const int32_t* suffix = tokens + len - n;
    // An occurrence ending at e (exclusive, e <= len - 1) is followed by len - e tokens. The most
    // recent one followed by all k is taken; in a loop that is one period back, where the most
    // recent occurrence of all would offer a single token. Failing that, the one followed by the
    // most. The last token is compared first: the cheap test that fails most.
    auto occurs_at = [&](int e) { return tokens[e - 1] == last && std::equal(suffix, suffix + n - 1, tokens + e - n); };
    int found = -1;
    for (int e = len - k; e >= n && found < 0; --e)
      if (occurs_at(e)) found = e;
    for (int e = std::max(n, len - k + 1); e <= len - 1 && found < 0; ++e)
      if (occurs_at(e)) found = e;
    if (found < 0) continue;
    const int m = std::min(k, len - found);
    std::copy(tokens + found, tokens + found + m, out);
    return m;
  }
  return 0;
}

namespace {
uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
}  // namespace

void NgramIndex::extend(const int32_t* tokens, int len) {
  if (len < int(prev1_.size()) - 1) *this = NgramIndex();
  for (int e = int(prev1_.size()); e <= len; ++e) {
    int32_t& one = latest1_[tokens[e - 1]];
    prev1_.push_back(one);
    one = e;
    if (e >= 2) {
      int32_t& two = latest2_[pair_key(tokens[e - 2], tokens[e - 1])];
      prev2_.push_back(two);
      two = e;
    } else {
      prev2_.push_back(0);
    }
  }
}

int NgramIndex::latest(int32_t t) const {
  const auto it = latest1_.find(t);
  return it == latest1_.end() ? 0 : it->second;
}

int NgramIndex::latest(int32_t a, int32_t b) const {
  const auto it = latest2_.find(pair_key(a, b));
  return it == latest2_.end() ? 0 : it->second;
}

int propose_ngram_draft(const int32_t* tokens, int len, const NgramDraftConfig& cfg, int k, int32_t* out, NgramIndex& index) {
  if (k <= 0 || len < 2) return 0;
  index.extend(tokens, len);
  const int32_t last = tokens[len - 1], before = tokens[len - 2];
  for (int n = std::min(cfg.max_n, len - 1); n >= std::max(1, cfg.min_n); --n) {
    const int32_t* suffix = tokens + len - n;
    auto occurs_at = [&](int e) { return tokens[e - 1] == last && std::equal(suffix, suffix + n - 1, tokens + e - n); };
    // The scan's two phases over the same ends: down from len - k along the chain of ends that
    // share the suffix's last one (n = 1) or two tokens, then up through the last k - 1 directly.
    const bool pairs = n >= 2;
    auto prev = [&](int e) { return pairs ? index.previous_pair(e) : index.previous(e); };
    int found = -1;
    int e = pairs ? index.latest(before, last) : index.latest(last);
    while (e > 0 && e > len - k) e = prev(e);
    for (; e >= n && found < 0; e = prev(e))
      if (occurs_at(e)) found = e;
    for (int u = std::max(n, len - k + 1); u <= len - 1 && found < 0; ++u)
      if (occurs_at(u)) found = u;
    if (found < 0) continue;
    const int m = std::min(k, len - found);
    std::copy(tokens + found, tokens + found + m, out);
    return m;
  }
  return 0;
}

}  // namespace grpst
