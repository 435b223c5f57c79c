#include "grammar/constraint.h"

#include <algorithm>
#include <chrono>

namespace grpst::grammar {

namespace {

void set_bit(uint32_t* words, int32_t token, int vocab) {
  if (token >= 0 && token < vocab) words[size_t(token) >> 5] |= 1u << (token & 31);
}

void copy_mask(const TokenMask& m, uint32_t* allowed, int vocab) {
  if (!m.dense) {
    for (int32_t t : m.ids) set_bit(allowed, t, vocab);
    return;
  }
  const size_t words = std::min(m.bits.size(), (size_t(vocab) + 31) / 32);
  for (size_t w = 0; w < words; w++) allowed[w] |= m.bits[w];
  if (size_t(vocab) < m.bits.size() * 32 && (vocab & 31))  // tokens past the model's vocabulary
    allowed[size_t(vocab) >> 5] &= (1u << (vocab & 31)) - 1u;
}

}  // namespace

GrammarConstraintFactory::GrammarConstraintFactory(std::shared_ptr<Matcher> matcher, ConstraintOptions options)
    : matcher_(std::move(matcher)), options_(std::move(options)) {}

std::unique_ptr<TokenConstraint> GrammarConstraintFactory::start() const {
  return std::make_unique<GrammarConstraint>(matcher_, options_);
}

int think_budget(int max_tokens, int64_t shortest_answer) {
  const int64_t reserve = std::max<int64_t>(shortest_answer + 16, std::min(max_tokens / 2, 1024));
  return int(std::max<int64_t>(0, int64_t(max_tokens) - reserve));
}

std::unique_ptr<TokenConstraint> GrammarConstraintFactory::start_for(const Request& request) const {
  ConstraintOptions o = options_;
  if (o.max_tokens == 0) o.max_tokens = request.max_tokens;
  if (o.eos.empty()) o.eos = request.stop_token_ids;
  if (o.think_max_tokens < 0 && o.max_tokens > 0) {
    int64_t shortest;
    {
      std::lock_guard<std::mutex> lock(matcher_->mutex());
      shortest = matcher_->distance(matcher_->initial_state());
    }
    o.think_max_tokens = think_budget(o.max_tokens, shortest);
  }
  return std::make_unique<GrammarConstraint>(matcher_, o);
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<Matcher> matcher, const ConstraintOptions& options)
    : matcher_(std::move(matcher)), options_(options), state_(matcher_->initial_state()) {}

bool GrammarConstraint::is_eos(int32_t token) const {
  return std::find(options_.eos.begin(), options_.eos.end(), token) != options_.eos.end();
}

bool GrammarConstraint::complete() const {
  if (ended_) return true;
  if (state_ < 0) return false;
  std::lock_guard<std::mutex> lock(matcher_->mutex());
  return matcher_->complete(state_);
}

void GrammarConstraint::fill_allowed(uint32_t* allowed, int vocab) {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(matcher_->mutex());
  fill_locked(allowed, vocab);
  matcher_->record_fill(std::chrono::steady_clock::now() - t0);
}

void GrammarConstraint::fill_locked(uint32_t* allowed, int vocab) {
  Matcher& m = *matcher_;
  if (ended_) {
    for (int32_t t : options_.eos) set_bit(allowed, t, vocab);
    return;
  }
  if (state_ < 0) return;  // a token the grammar refused was forced in: nothing may follow
  const bool complete = m.complete(state_);
  if (options_.think_max_tokens >= 0 && generated_ >= options_.think_max_tokens && m.in_free_text(state_)) {
    m.fill_free_text_exits(state_, allowed, vocab);
    return;
  }
  const TokenMask& mask = m.mask(state_);
  bool within_budget = true;
  int64_t limit = 0;
  if (options_.max_tokens > 0) {
    // After this token, max_tokens - generated - 1 tokens remain: the rest of the output and
    // the end-of-sequence token must fit in them.
    limit = int64_t(options_.max_tokens) - generated_ - 2;
    if (!complete && limit < mask.min_after) limit = mask.min_after;  // too late to fit: take the shortest way
    within_budget = limit >= mask.max_after;
  }
  if (within_budget)
    copy_mask(mask, allowed, vocab);
  else
    m.fill_within(state_, limit, allowed, vocab);
  if (complete)
    for (int32_t t : options_.eos) set_bit(allowed, t, vocab);
}

void GrammarConstraint::accept(int32_t token) {
  std::lock_guard<std::mutex> lock(matcher_->mutex());
  generated_++;
  if (ended_) return;
  if (state_ >= 0 && is_eos(token) && matcher_->complete(state_)) {
    ended_ = true;
    return;
  }
  state_ = matcher_->advance_token(state_, token);
}

}  // namespace grpst::grammar
