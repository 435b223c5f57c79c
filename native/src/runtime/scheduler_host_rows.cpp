// The host's share of a completed step, spread over the host samplers' threads before complete()
// walks the step in order: every prompt logprob row the runner did not read on its device, and
// the draw of every sequence whose one sampled row is the host's (not drawn on the device, not
// forced by a think budget); the device's prompt rows are copied into their sequences. Each task
// writes its own sequence's slots only; what depends on order (emitting, finishing, accepting
// the token into the constraint) stays in complete(). A drafted step's rows are drawn there too,
// one after another: each depends on the draw before it.
#include <algorithm>
#include <limits>

#include "grpst/scheduler.h"

namespace grpst {

void Scheduler::prepare_host_rows(const float* logits, const DeviceDrawResults* device) {
  const size_t vocab = size_t(cfg_.vocab_size);
  host_draws_.assign(scheduled_.size(), HostDraw{});
  host_tasks_.clear();
  for (size_t k = 0; k < scheduled_.size(); k++) {
    const Scheduled& sc = scheduled_[k];
    Sequence& s = *sc.seq;
    if (sc.drafts > 0) continue;
    if (sc.lp_rows > 0 && s.prompt_lp.empty()) {
      s.prompt_lp.assign(s.num_prompt, std::numeric_limits<float>::quiet_NaN());
      s.prompt_top.assign(s.num_prompt, {});
      s.prompt_rank.assign(s.num_prompt, 0);
    }
    if (sc.device_prompt >= 0 && device) {
      take_device_prompt_rows(sc, *device);
    } else {
      for (int j = 0; j < sc.lp_rows; j++) host_tasks_.emplace_back(int(k), j);
    }
    const bool on_device = sc.device_sample >= 0 && device;
    if (sc.samples && sc.hidden_index < 0 && s.req.score_ids.empty() && s.num_generated() < s.req.max_tokens &&
        !think_forced(s.req, s.think) && !on_device)
      host_tasks_.emplace_back(int(k), -1);
  }
  samplers_.parallel_for(int(host_tasks_.size()), [&](int task, Sampler& sampler) {
    const auto [k, j] = host_tasks_[size_t(task)];
    const Scheduled& sc = scheduled_[size_t(k)];
    Sequence& s = *sc.seq;
    if (j < 0) {
      host_draws_[size_t(k)] = draw_on_host(s, logits + size_t(sc.logit_begin + sc.lp_rows) * vocab, sampler);
      return;
    }
    const int pos = sc.lp_first_pos + j;  // this row predicts prompt token pos + 1
    const float* row = logits + size_t(sc.logit_begin + j) * vocab;
    const int top_n = prompt_alternatives(s.req);
    sampler.logprobs(row, int(vocab), s.tokens[size_t(pos + 1)], top_n, &s.prompt_lp[size_t(pos + 1)], &s.prompt_top[size_t(pos + 1)]);
    s.prompt_rank[size_t(pos + 1)] = Sampler::rank_of(row, int(vocab), s.tokens[size_t(pos + 1)]);
  });
  for (const Scheduled& sc : scheduled_)
    if (sc.drafts == 0 && sc.lp_rows > 0) sc.seq->prompt_lp_done = sc.lp_first_pos + sc.lp_rows + 1;
}

void Scheduler::take_device_prompt_rows(const Scheduled& sc, const DeviceDrawResults& device) {
  Sequence& s = *sc.seq;
  const int top_n = prompt_alternatives(s.req);
  const size_t K = DeviceDrawResults::kMaxTop;
  counters_.device_prompt_rows += uint64_t(sc.lp_rows);
  for (int j = 0; j < sc.lp_rows; j++) {
    const size_t i = size_t(sc.device_prompt + j), at = size_t(sc.lp_first_pos + j + 1);
    s.prompt_lp[at] = device.prompt_logprobs[i];
    s.prompt_rank[at] = device.prompt_ranks[i];
    std::vector<TopEntry>& top = s.prompt_top[at];
    top.clear();
    for (size_t k = 0; k < size_t(top_n) && device.prompt_top_tokens[i * K + k] >= 0; k++)
      top.push_back({device.prompt_top_tokens[i * K + k], device.prompt_top_logprobs[i * K + k]});
  }
}

}  // namespace grpst
