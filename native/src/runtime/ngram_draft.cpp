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

}  // namespace grpst
