// A compiled grammar as the runtime's ConstraintFactory: each sequence walks the shared Matcher
// from its initial state. Two budgets keep every answer finishable within max_tokens:
// - the answer budget: near the end of max_tokens only tokens after which the rest of the
//   grammar still fits are allowed (the distance of a state is the fewest bytes that complete
//   it, and every byte is a token of the byte-level vocabulary, so it always fits);
// - the think budget: a free-text think block is closed once it has used think_max_tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "grammar/matcher.h"
#include "grpst/request.h"

namespace grpst::grammar {

struct ConstraintOptions {
  /** The request's max_tokens; 0: no answer budget (start_for() takes the request's). */
  int max_tokens = 0;
  /** End-of-sequence tokens, allowed once the output is complete (start_for(): the request's stop tokens if empty). */
  std::vector<int32_t> eos;
  /** Tokens the think block may use before only its closing token is allowed; < 0: unbounded (start_for(): see think_budget). */
  int think_max_tokens = -1;
};

/**
 * The think block's share of max_tokens: all but a reserve for the answer of
 * max(shortest answer + 16, min(max_tokens / 2, 1024)) tokens, so a long thought never leaves
 * the answer less than half of a small budget or less than 1024 tokens of a large one.
 */
int think_budget(int max_tokens, int64_t shortest_answer);

class GrammarConstraintFactory final : public ConstraintFactory {
 public:
  GrammarConstraintFactory(std::shared_ptr<Matcher> matcher, ConstraintOptions options);
  std::unique_ptr<TokenConstraint> start() const override;
  /** Fills what the options leave open from the request: max_tokens, stop tokens, the think budget. */
  std::unique_ptr<TokenConstraint> start_for(const Request& request) const override;
  const std::shared_ptr<Matcher>& matcher() const { return matcher_; }
  const ConstraintOptions& options() const { return options_; }

 private:
  std::shared_ptr<Matcher> matcher_;
  ConstraintOptions options_;
};

class GrammarConstraint final : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<Matcher> matcher, const ConstraintOptions& options);
  void fill_allowed(uint32_t* allowed, int vocab) override;
  void accept(int32_t token) override;
  /** The same state over the same shared matcher. */
  std::unique_ptr<TokenConstraint> clone() const override { return std::make_unique<GrammarConstraint>(*this); }

  /** Not yet failed: every accepted token was allowed. */
  bool alive() const { return state_ >= 0 || ended_; }
  /** The output so far is complete (end-of-sequence allowed). */
  bool complete() const;
  /** An end-of-sequence token was accepted (only with ignore_eos). */
  bool ended() const { return ended_; }
  int generated() const { return generated_; }
  int32_t state() const { return state_; }

 private:
  bool is_eos(int32_t token) const;
  void fill_locked(uint32_t* allowed, int vocab);

  std::shared_ptr<Matcher> matcher_;
  ConstraintOptions options_;
  int32_t state_;
  int generated_ = 0;
  bool ended_ = false;
};

}  // namespace grpst::grammar
