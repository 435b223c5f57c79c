// What a request's rules let each next position of a sequence's output be, walked ahead of the
// model's own draws: the bad tokens, the stop tokens min_tokens holds back, each bad sequence's
// end after the rest of it, the thinking budget's forced close and the grammar (a copy of the
// sequence's state, so the original does not move). Speculative decoding guesses tokens for the
// model to check: a draft model's proposals follow the walk, and prompt lookup's drafts are cut
// where it refuses them (the check would turn that row down, and compute the rows after it for
// nothing). Temperature, top-k / top-p / min-p and logit bias are not rules here: they shape a
// draw, not what may be drawn.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "grpst/bad_sequences.h"
#include "grpst/request.h"
#include "grpst/think_budget.h"

namespace grpst {

/** vLLM's min_tokens: the stop tokens stay out of reach while fewer than min_tokens are out
 * (`generated`; ignore_eos already keeps going past them). */
inline bool holds_back_stops(const Request& q, int generated) { return !q.ignore_eos && generated < q.min_tokens; }

/**
 * Calls `ban(t)` with each token in [0, vocab) the next output position may not be that moves
 * with the output: the stop tokens while holds_back_stops(), and each bad sequence's last token
 * after the rest of it. `generated`: tokens out so far; `tail` [tail_len]: the output's last
 * tokens (all of them, or as many as the longest bad sequence reaches back). The request's bad
 * tokens and logit bias never move, and are not among them.
 */
template <typename Ban>
void for_each_moving_ban(const Request& q, int generated, const int32_t* tail, int tail_len, int vocab, Ban&& ban) {
  auto in_vocab = [&](int32_t t) {
    if (t >= 0 && t < vocab) ban(t);
  };
  if (!q.bad_sequences.empty()) for_each_banned_end(q.bad_sequences, tail, tail_len, in_vocab);
  if (holds_back_stops(q, generated))
    for (int32_t t : q.stop_token_ids) in_vocab(t);
}

class OutputWalk {
 public:
  /**
   * Starts after the `num_generated` output tokens at `generated` (the pending one included),
   * with the thinking state and `constraint` (null: none) as they stand after them.
   */
  void start(const Request& request, const int32_t* generated, int num_generated, const ThinkState& think,
             const TokenConstraint* constraint);

  /** The token the next position must be (a spent thinking budget's close), or -1. */
  int32_t forced() const;
  /** Appends the tokens in [0, vocab) the next position may not be that move with the output
   * (held-back stops, bad sequences' ends); the request's bad tokens are not among them. */
  void moving_bans(std::vector<int32_t>& bans, int vocab) const;
  /** Sets `words` (ceil(vocab / 32), zeroed here) to the grammar's allowed tokens; false: no
   * grammar to follow (none, one that cannot be copied, or one whose copy failed and was dropped). */
  bool fill_allowed(std::vector<uint32_t>& words, int vocab);
  /** Whether the next position may be `token` under every rule (the bad tokens included). */
  bool allows(int32_t token, int vocab);
  /** Moves past `token` as the next position. */
  void advance(int32_t token);
  /** Follows no request (every token allowed, nothing forced), keeping its buffers. */
  void clear() {
    request_ = nullptr;
    grammar_.reset();
  }

 private:
  const Request* request_ = nullptr;
  int generated_ = 0;
  std::vector<int32_t> recent_;  // the output's last tokens a bad sequence can reach back to, then the walk's
  ThinkState think_;
  std::unique_ptr<TokenConstraint> grammar_;
  std::vector<uint32_t> words_;  // allows()'s grammar mask
  std::vector<int32_t> bans_;    // allows()'s moving bans
};

}  // namespace grpst
