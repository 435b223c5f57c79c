// Draft tokens for speculative decoding by prompt lookup (vLLM's "ngram" method): the sequence's
// last n tokens are looked for earlier in the same sequence (prompt and output alike), and the
// tokens that followed that earlier occurrence are proposed as the next ones. The model checks
// them all in one step (Scheduler), so a right guess saves a step and a wrong one costs only the
// rows it added. Device-neutral and cheap next to a step: one backwards scan per n.
#pragma once
#include <cstdint>

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

}  // namespace grpst
