#include "grpst/output_walk.h"

#include <algorithm>
#include <exception>

namespace grpst {

void OutputWalk::start(const Request& request, const int32_t* generated, int num_generated, const ThinkState& think,
                       const TokenConstraint* constraint) {
  request_ = &request;
  generated_ = num_generated;
  think_ = think;
  grammar_ = constraint ? constraint->clone() : nullptr;
  recent_.clear();
  if (!request.bad_sequences.empty()) {
    // A bad sequence reaches back at most its length less one: that much of the output is enough.
    size_t longest = 0;
    for (const auto& seq : request.bad_sequences) longest = std::max(longest, seq.size());
    const int keep = std::min(num_generated, int(longest) - 1);
    recent_.assign(generated + num_generated - keep, generated + num_generated);
  }
}

int32_t OutputWalk::forced() const {
  // As the scheduler's sample_next: a spent budget closes the block whatever the logits say.
  return request_ && think_forced(*request_, think_) ? request_->think_close : -1;
}

void OutputWalk::moving_bans(std::vector<int32_t>& bans, int vocab) const {
  if (request_)
    for_each_moving_ban(*request_, generated_, recent_.data(), int(recent_.size()), vocab, [&](int32_t t) { bans.push_back(t); });
}

bool OutputWalk::fill_allowed(std::vector<uint32_t>& words, int vocab) {
  if (!grammar_) return false;
  try {
    words.assign(size_t(vocab + 31) / 32, 0u);
    grammar_->fill_allowed(words.data(), vocab);
    return true;
  } catch (const std::exception&) {
    grammar_.reset();  // the sequence's own constraint meets the failure and reports it
    return false;
  }
}

bool OutputWalk::allows(int32_t token, int vocab) {
  if (!request_ || token < 0 || token >= vocab) return false;
  const int32_t must = forced();
  if (must >= 0) return token == must;
  const std::vector<int32_t>& bad = request_->bad_token_ids;
  if (std::find(bad.begin(), bad.end(), token) != bad.end()) return false;
  bans_.clear();
  moving_bans(bans_, vocab);
  if (std::find(bans_.begin(), bans_.end(), token) != bans_.end()) return false;
  return !fill_allowed(words_, vocab) || (words_[size_t(token) >> 5] >> (token & 31) & 1u);
}

void OutputWalk::advance(int32_t token) {
  if (!request_) return;
  generated_++;
  think_advance(*request_, think_, token);
  if (!request_->bad_sequences.empty()) recent_.push_back(token);
  if (grammar_) {
    try {
      grammar_->accept(token);
    } catch (const std::exception&) {
      grammar_.reset();
    }
  }
}

}  // namespace grpst
