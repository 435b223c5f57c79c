// A row's logit edits (device_sample_rules.h's LogitEdit) put in the form the device sampler
// reads: sorted by token, one entry a token. Shared by the scheduler's device rows and the draft
// model's proposals, which list the same request's edits.
#pragma once
#include <algorithm>
#include <limits>
#include <vector>

#include "grpst/device_sample_rules.h"

namespace grpst {

/** Appends `edits` (sorted here) to `out` merged one entry a token: a ban (-inf) wins, biases add up. */
inline void append_merged(std::vector<LogitEdit>& edits, std::vector<LogitEdit>& out) {
  const float ban = -std::numeric_limits<float>::infinity();
  std::stable_sort(edits.begin(), edits.end(), [](const LogitEdit& a, const LogitEdit& b) { return a.token < b.token; });
  const size_t begin = out.size();
  for (const LogitEdit& e : edits) {
    if (out.size() > begin && out.back().token == e.token) {
      float& delta = out.back().delta;
      delta = delta == ban || e.delta == ban ? ban : delta + e.delta;
    } else {
      out.push_back(e);
    }
  }
}

}  // namespace grpst
