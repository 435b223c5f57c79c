// The grammar matcher: a pushdown automaton over bytes and special tokens, run as a lazily built
// deterministic automaton. A configuration is a stack of grammar nodes (the top is where
// matching stands, the ones below are where each enclosing rule continues); a matcher state is
// the set of configurations the output so far allows (grammars may be ambiguous, e.g. anyOf).
// Stacks and states are interned, so a state is a small integer: transitions are memoized per
// state and symbol, and the token mask of a state is computed once (one pass over the
// vocabulary trie) and then served from a cache. One Matcher per compiled grammar, shared by
// every request that uses it; callers hold mutex() around every call.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "grammar/grammar.h"
#include "grammar/vocab.h"

namespace grpst::grammar {

constexpr int32_t kDead = -1;

/** The tokens allowed in one state (special tokens included, end-of-sequence not). */
struct TokenMask {
  bool dense = false;
  std::vector<uint32_t> bits;  // dense: bit t set for allowed token t
  std::vector<int32_t> ids;    // sparse: the allowed tokens
  int count = 0;
  int64_t min_after = 0;       // over allowed tokens: fewest symbols still needed after the token
  int64_t max_after = 0;       //                      most symbols still needed after the token
};

/**
 * Sets logits[t] to -infinity for every token t < vocab whose bit in `allowed` (ceil(vocab/32)
 * words) is clear: what the sampler does with a constraint's mask each step. Whole words are
 * settled at once: an all-one word (most of a string's vocabulary is allowed) leaves its 32
 * logits alone and an all-zero word (outside strings nearly everything is masked) fills them;
 * only mixed words are read bit by bit. The same result as testing every token's bit.
 */
void mask_logits(const uint32_t* allowed, float* logits, int vocab);

struct MatcherStats {
  int64_t states = 0;
  int64_t stacks = 0;
  int64_t cached_masks = 0;
  int64_t mask_bytes = 0;
  int64_t masks_computed = 0;
  int64_t mask_hits = 0;
  int64_t transitions = 0;  // (state, symbol) pairs computed
  double mask_seconds = 0;  // time spent computing masks (cache misses and budget filters)
  int64_t fills = 0;        // masks handed to the sampler
  double fill_seconds = 0;  // time those took in all, computing included
};

class Matcher {
 public:
  Matcher(std::shared_ptr<const Vocabulary> vocab, Grammar grammar);

  std::mutex& mutex() const { return mutex_; }
  const Vocabulary& vocab() const { return *vocab_; }
  const Grammar& grammar() const { return grammar_; }

  int32_t initial_state() const { return initial_; }
  /** The state after one symbol (byte, or 256 + special index), or kDead. */
  int32_t advance(int32_t state, int32_t symbol);
  /** The state after a whole token, or kDead (also for tokens the grammar never names). */
  int32_t advance_token(int32_t state, int32_t token);

  /** The output so far is a complete sentence of the grammar (end-of-sequence may follow). */
  bool complete(int32_t state) const { return states_[size_t(state)].complete; }
  /** Fewest symbols (bytes or special tokens) that complete the output from this state. */
  int64_t distance(int32_t state) const { return states_[size_t(state)].dist; }
  /** Some configuration stands in a free-text loop (the think block). */
  bool in_free_text(int32_t state) const { return states_[size_t(state)].free_text; }

  /** The cached mask of a state, computed on first use. */
  const TokenMask& mask(int32_t state);
  /**
   * Sets in `allowed` (words of 32 tokens, tokens >= vocab ignored) the tokens of `state` after
   * which at most `max_after` symbols are needed to complete; not cached (used near the end of a
   * request's token budget).
   */
  void fill_within(int32_t state, int64_t max_after, uint32_t* allowed, int vocab);
  /** Special tokens that leave every free-text loop (closing the think block when its budget is spent). */
  void fill_free_text_exits(int32_t state, uint32_t* allowed, int vocab);

  MatcherStats stats() const;
  /** Counts one mask handed out and the time it took (callers time fill_allowed). */
  void record_fill(std::chrono::steady_clock::duration d) {
    fills_++;
    fill_time_ += d;
  }

 private:
  struct Stack {
    int32_t node;
    int32_t parent;  // -1: the bottom (the root rule)
    int64_t dist;    // fewest symbols to empty this stack
    int32_t depth;
  };
  struct State {
    std::vector<int32_t> stacks;  // sorted; every top node has symbol edges
    bool complete = false;
    bool free_text = false;
    int64_t dist = 0;
    // Symbols some top node has an edge for: the state's row covers only these, so a state
    // deep inside a large enum's trie (one or two bytes possible) holds a row of that size,
    // not one entry per symbol.
    int32_t first_symbol = 0;
    int32_t last_symbol = -1;
    std::unique_ptr<TokenMask> mask;
  };
  struct KeyHash {
    size_t operator()(const std::vector<int32_t>& v) const;
  };

  int32_t intern_stack(int32_t node, int32_t parent);
  int32_t intern_state(std::vector<int32_t>& stacks, bool complete);
  void next_visit_mark();
  /** Adds to scratch_ the stacks that `stack` stands for once calls are entered and ended rules return. */
  void closure(int32_t stack, bool& complete);
  int32_t* row(int32_t state);
  int32_t step(int32_t state, int32_t symbol) {
    const State& st = states_[size_t(state)];
    if (symbol < st.first_symbol || symbol > st.last_symbol) return kDead;
    const int32_t v = row(state)[symbol - st.first_symbol];
    return v != kUnknown ? v : advance(state, symbol);
  }
  /** One pass over the trie from `state`; calls on_token(token, state_after) for every token the grammar allows. */
  template <class F>
  void walk(int32_t state, F&& on_token);
  void set_bit(uint32_t* words, int32_t token, int vocab) const {
    if (token < vocab) words[size_t(token) >> 5] |= 1u << (token & 31);
  }

  static constexpr int32_t kUnknown = -2;

  std::shared_ptr<const Vocabulary> vocab_;
  Grammar grammar_;
  int32_t initial_ = kDead;
  std::vector<Stack> stacks_;
  std::unordered_map<uint64_t, int32_t> stack_ids_;
  std::vector<State> states_;
  std::vector<std::unique_ptr<int32_t[]>> rows_;  // per state: next state for symbols first..last_symbol, kUnknown until asked
  int64_t row_bytes_ = 0;
  std::unordered_map<std::vector<int32_t>, int32_t, KeyHash> state_ids_;
  std::vector<uint32_t> visited_;  // closure marks, by stack id
  uint32_t visit_mark_ = 0;
  std::vector<int32_t> work_;
  std::vector<int32_t> scratch_;
  std::vector<int32_t> walk_states_;
  int64_t mask_bytes_ = 0;
  int64_t cached_masks_ = 0;
  int64_t masks_computed_ = 0;
  int64_t mask_hits_ = 0;
  int64_t transitions_ = 0;
  std::chrono::steady_clock::duration mask_time_{};
  int64_t fills_ = 0;
  std::chrono::steady_clock::duration fill_time_{};
  mutable std::mutex mutex_;
};

}  // namespace grpst::grammar
