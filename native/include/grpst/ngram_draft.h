// Draft tokens for speculative decoding by prompt lookup (vLLM's "ngram" method): the sequence's
// last n tokens are looked for earlier in the same sequence (prompt and output alike), and the
// tokens that followed that earlier occurrence are proposed as the next ones. The model checks
// them all in one step (Scheduler), so a right guess saves a step and a wrong one costs only the
// rows it added. Device-neutral and cheap next to a step: an index of the sequence's tokens
// (NgramIndex) makes a lookup cost the earlier occurrences of its last one or two tokens, not the
// sequence's length (a backwards scan per n took 43 us at 32k tokens, 2.8 ms a batch-64 step).
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace grpst {

// The most drafts one step checks, and the longest suffix looked up.
constexpr int kMaxSpeculativeTokens = 16;

struct NgramDraftConfig {
  int num_tokens = 0;  // most drafts per step; 0: speculative decoding off
  int min_n = 2;       // shortest suffix that counts as a match
  int max_n = 4;       // longest suffix tried first
};

/**
 * Proposes up to `k` tokens to follow tokens[0, len) into `out`; returns how many (0: no match).
 * The longest suffix of length max_n down to min_n with an earlier occurrence wins; among its
 * occurrences the most recent one that k tokens follow (recent text is the likeliest to repeat:
 * loops, edits of text just quoted), else the one that the most tokens follow.
 */
int propose_ngram_draft(const int32_t* tokens, int len, const NgramDraftConfig& cfg, int k, int32_t* out);

/**
 * Where each token and each pair of tokens ended earlier in one sequence, kept as the sequence
 * grows: for every end e (tokens[e - 1] is the last token), the previous end with the same last
 * token and the previous one with the same last two. Walking those chains visits only the
 * occurrences a lookup compares.
 */
class NgramIndex {
 public:
  /**
   * Indexes tokens[0, len). The tokens indexed before must be unchanged (a sequence's committed
   * tokens only grow); a shorter `len` than before starts over.
   */
  void extend(const int32_t* tokens, int len);
  /** The latest end at or before the indexed length whose last token is `t` (0: none). */
  int latest(int32_t t) const;
  /** The latest end whose last two tokens are (a, b) (0: none). */
  int latest(int32_t a, int32_t b) const;
  /** The end before e with the same last token (0: none). */
  int previous(int e) const { return prev1_[std::size_t(e)]; }
  /** The end before e (e >= 2) with the same last two tokens (0: none). */
  int previous_pair(int e) const { return prev2_[std::size_t(e)]; }

 private:
  std::vector<int32_t> prev1_{0}, prev2_{0};  // [end], end 0 unused
  std::unordered_map<int32_t, int32_t> latest1_;
  std::unordered_map<uint64_t, int32_t> latest2_;
};

/** propose_ngram_draft's proposal, found through `index` (extended to tokens[0, len) first): the same tokens. */
int propose_ngram_draft(const int32_t* tokens, int len, const NgramDraftConfig& cfg, int k, int32_t* out, NgramIndex& index);

}  // namespace grpst
