// The rows a step asks its runner to draw on the device. Each row carries what the host sampler
// would use for it: the settings, the seeded stream position (the generated + i-th token), and,
// with penalties, the history they apply to: the request's distinct prompt tokens (repetition
// penalty) and the counts of its output so far, plus, for a drafted step's row i, the drafts
// before it (the tokens that row was computed with; complete_drafted only uses the row if those
// were all accepted, and then the host's counts would hold them too).
#include <algorithm>

#include "grpst/scheduler.h"

namespace grpst {

void Scheduler::push_device_samples(const Sequence& s, int drafts, int generated, StepBatch& batch) {
  const SamplingParams& sp = s.req.sampling;
  const bool penalized = sp.repetition_penalty != 1.0f || sp.presence_penalty != 0.0f || sp.frequency_penalty != 0.0f;
  const int prompt_begin = int(batch.penalty_prompt_tokens.size());
  int prompt_count = 0;
  if (penalized) {
    // The sampler keeps the prompt's distinct tokens only where the repetition penalty needs them.
    const std::vector<int32_t>& prompt = s.sampler.prompt_tokens_sorted;
    batch.penalty_prompt_tokens.insert(batch.penalty_prompt_tokens.end(), prompt.begin(), prompt.end());
    prompt_count = int(prompt.size());
    history_scratch_.assign(s.sampler.output_counts.begin(), s.sampler.output_counts.end());
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
}

}  // namespace grpst
