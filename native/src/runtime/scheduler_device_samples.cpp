// The rows a step asks its runner to draw on the device. Each row carries what the host sampler
// would use for it: the settings, the seeded stream position (the generated + i-th token), its
// bans and logit biases, a constrained row's allowed tokens, and, with penalties, the history
// they apply to: the request's distinct prompt tokens (repetition penalty) and the counts of its
// output so far, plus, for a drafted step's row i, the drafts before it (the tokens that row was
// computed with; complete_drafted only uses the row if those were all accepted, and then the
// host's counts would hold them too).
#include <algorithm>
#include <limits>

#include "grpst/logit_edits.h"
#include "grpst/scheduler.h"

namespace grpst {

int Scheduler::push_device_samples(Sequence& s, int drafts, int generated, StepBatch& batch) {
  const SamplingParams& sp = s.req.sampling;
  const bool penalized = sp.penalized();
  const int prompt_begin = int(batch.penalty_prompt_tokens.size());
  int prompt_count = 0;
  if (penalized) {
    // The sampler keeps the prompt's distinct tokens only where the repetition penalty needs them.
    const std::vector<int32_t>& prompt = s.sampler.prompt_tokens_sorted;
    batch.penalty_prompt_tokens.insert(batch.penalty_prompt_tokens.end(), prompt.begin(), prompt.end());
    prompt_count = int(prompt.size());
    history_scratch_.assign(s.sampler.output_counts.begin(), s.sampler.output_counts.end());
  }
  // A constraint's mask depends on its state after every accepted token, so only an undrafted
  // row has one (device_eligible keeps drafted constrained rows on the host).
  int mask = -1;
  if (s.constraint && drafts == 0) {
    const size_t words = size_t(cfg_.vocab_size + 31) / 32;
    mask = int(batch.masks.size() / words);
    batch.masks.resize(batch.masks.size() + words);
  }
  // tokens: [..., c] the step's first token, then its drafts [c + 1, c + 1 + drafts).
  const int c = int(s.tokens.size()) - 1 - drafts;
  for (int i = 0; i <= drafts; i++) {
    DeviceSample d;
    d.logit_row = int(batch.logit_rows.size()) - 1 - drafts + i;
    d.temperature = sp.temperature;
    d.top_p = sp.top_p;
    d.min_p = sp.min_p;
    d.top_k = sp.top_k;
    d.seed = s.sampler.seed;
    d.step = uint64_t(generated + i);
    d.top_n = std::max(0, s.req.logprobs);
    d.mask = mask;
    push_logit_edits(s, generated + i, batch, d);
    if (penalized) {
      if (i > 0) {
        const int32_t t = s.tokens[size_t(c + i)];
        auto it = history_scratch_.begin();
        while (it != history_scratch_.end() && it->first != t) ++it;
        if (it == history_scratch_.end()) history_scratch_.emplace_back(t, 1);
        else it->second++;
      }
      d.repetition_penalty = sp.repetition_penalty;
      d.presence_penalty = sp.presence_penalty;
      d.frequency_penalty = sp.frequency_penalty;
      d.prompt_begin = prompt_begin;
      d.prompt_count = prompt_count;
      d.output_begin = int(batch.penalty_output_counts.size() / 2);
      d.output_count = int(history_scratch_.size());
      for (const auto& [token, count] : history_scratch_) {
        batch.penalty_output_counts.push_back(token);
        batch.penalty_output_counts.push_back(count);
      }
    }
    batch.device_samples.push_back(d);
  }
  return mask;
}

// The host sampler's order, as edits: bad tokens, bad sequences' ends and (under min_tokens) stop
// tokens are banned; biases add to the rest (a banned token stays -inf). The bad tokens and the
// bias never change, so they are sorted once per request (Sequence::fixed_edits); a row adds
// the bans that depend on its generated tokens, when there are any.
const std::vector<LogitEdit>& Scheduler::fixed_edits(Sequence& s) {
  if (!s.fixed_edits_ready) {
    const Request& r = s.req;
    const float ban = -std::numeric_limits<float>::infinity();
    edits_scratch_.clear();
    for (int32_t t : r.bad_token_ids)
      if (t >= 0 && t < cfg_.vocab_size) edits_scratch_.push_back(LogitEdit{t, ban});
    for (const auto& [t, bias] : r.logit_bias)
      if (t >= 0 && t < cfg_.vocab_size) edits_scratch_.push_back(LogitEdit{t, bias});
    append_merged(edits_scratch_, s.fixed_edits);
    s.fixed_edits_ready = true;
  }
  return s.fixed_edits;
}

void Scheduler::push_logit_edits(Sequence& s, int generated, StepBatch& batch, DeviceSample& d) {
  const Request& r = s.req;
  const float ban = -std::numeric_limits<float>::infinity();
  const int vocab = cfg_.vocab_size;
  fixed_edits(s);
  edits_scratch_.clear();
  // Row `generated` follows the request's first `generated` output tokens (a drafted row's drafts included).
  for_each_moving_ban(r, generated, s.tokens.data() + s.num_prompt, generated, vocab,
                      [&](int32_t t) { edits_scratch_.push_back(LogitEdit{t, ban}); });
  d.edit_begin = int(batch.logit_edits.size());
  if (edits_scratch_.empty()) {
    batch.logit_edits.insert(batch.logit_edits.end(), s.fixed_edits.begin(), s.fixed_edits.end());
  } else {
    edits_scratch_.insert(edits_scratch_.end(), s.fixed_edits.begin(), s.fixed_edits.end());
    append_merged(edits_scratch_, batch.logit_edits);
  }
  d.edit_count = int(batch.logit_edits.size()) - d.edit_begin;
}

void Scheduler::fill_device_masks(StepBatch& batch) {
  if (mask_tasks_.empty()) return;
  const size_t words = size_t(cfg_.vocab_size + 31) / 32;
  samplers_.parallel_for(int(mask_tasks_.size()), [&](int task, Sampler&) {
    Scheduled& sc = scheduled_[size_t(mask_tasks_[size_t(task)])];
    uint32_t* mask = batch.masks.data() + size_t(sc.mask) * words;
    try {
      sc.seq->constraint->fill_allowed(mask, cfg_.vocab_size);
    } catch (const std::exception& e) {
      // The row is drawn anyway (from an empty mask: no token); complete() fails its request with this.
      std::fill(mask, mask + words, 0u);
      sc.mask_failure = std::string("sampling failed: ") + e.what();
    }
  });
  mask_tasks_.clear();
}

}  // namespace grpst
