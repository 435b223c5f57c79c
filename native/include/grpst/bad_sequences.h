// Bans of token sequences (vLLM's bad_words of several tokens, TensorRT-LLM's bad-word lists):
// a sequence's last token may not be sampled right after the rest of it. Only the tokens the
// request generated count as "right after" (vLLM matches its output tokens, never the prompt), so
// a sequence that begins in the prompt is not banned at its seam.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

namespace grpst {

/**
 * Calls `ban(token)` with every sequence's last token whose other tokens end `generated`
 * [num_generated], oldest first. Compared from the newest token back, so a sequence that does not
 * match usually costs one comparison.
 */
template <typename Ban>
void for_each_banned_end(const std::vector<std::vector<int32_t>>& sequences, const int32_t* generated, int num_generated,
                         Ban&& ban) {
  for (const std::vector<int32_t>& seq : sequences) {
    const int prefix = int(seq.size()) - 1;
    if (prefix < 0 || prefix > num_generated) continue;
    bool match = true;
    for (int i = 1; i <= prefix && match; i++) match = generated[num_generated - i] == seq[size_t(prefix - i)];
    if (match) ban(seq.back());
  }
}

/** Sets to -inf the logit of every sequence's last token that for_each_banned_end() names. logits: [vocab]. */
inline void ban_sequence_ends(const std::vector<std::vector<int32_t>>& sequences, const int32_t* generated,
                              int num_generated, float* logits, int vocab) {
  for_each_banned_end(sequences, generated, num_generated, [&](int32_t last) {
    if (last >= 0 && last < vocab) logits[last] = -std::numeric_limits<float>::infinity();
  });
}

}  // namespace grpst
