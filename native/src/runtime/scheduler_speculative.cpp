// Speculative decoding in the scheduler: a decoding sequence carries draft tokens (prompt lookup,
// ngram_draft.h, cut where the request's rules refuse it, or a draft model's proposal under them,
// draft_model.h; the rules' walk is output_walk.h) into its step, the step computes every one of them, and complete_drafted samples
// the model's own token row by row with the request's full sampling rules, keeping going while
// the token drawn is the draft that the next row was computed with. Each emitted token is drawn
// exactly as a one-token step would draw it (same seeded stream position, same penalties,
// constraint and think-budget state, from its own row's logits), so outputs do not change where
// the backend computes a row alike in one-row and many-row steps (the CPU; a GPU's multi-row
// kernels round differently); the drafts only decide how many of those draws one step makes. The KV rows of rejected drafts stay in their blocks
// and are overwritten when those positions are computed again; they are never registered in the
// prefix cache, which only takes blocks below num_computed.
#include <algorithm>

#include "grpst/scheduler.h"

namespace grpst {

namespace {
// Drafts a sequence may carry: every checked draft can emit a token, and row c + k must be a
// position the sequence may hold.
int draft_limit(const Sequence& s, const SchedulerConfig& cfg, int budget, int logit_budget) {
  if (cfg.speculative.num_tokens <= 0 || s.req.embed || !s.req.score_ids.empty()) return 0;
  return std::min({cfg.speculative.num_tokens, s.req.max_tokens - s.num_generated() - 1,
                   cfg.max_seq_len - int(s.tokens.size()) - 1, budget - 1, logit_budget - 1});
}

// Whether any of the request's rules can refuse a token (output_walk.h); most requests have none.
bool has_rules(const Sequence& s) {
  const Request& q = s.req;
  return s.constraint || !q.bad_token_ids.empty() || !q.bad_sequences.empty() || q.think_max_tokens >= 0 ||
         (!q.stop_token_ids.empty() && holds_back_stops(q, s.num_generated()));
}
}  // namespace

int Scheduler::cut_at_rules(Sequence& s, const int32_t* drafts, int k) {
  // Draft i is row i's token: drawn after the output so far (the pending token included) and drafts [0, i).
  rules_walk_.start(s.req, s.tokens.data() + s.num_prompt, s.num_generated(), s.think, s.constraint.get());
  for (int i = 0; i < k; i++) {
    if (!rules_walk_.allows(drafts[i], cfg_.vocab_size)) return i;
    rules_walk_.advance(drafts[i]);
  }
  return k;
}

void Scheduler::propose_with_draft_model(int tokens, int rows) {
  draft_jobs_.clear();
  for (auto& p : running_) {
    Sequence& s = *p;
    s.model_draft.clear();
    if (s.pending() != 1) continue;
    const int k = draft_limit(s, cfg_, 1 + std::max(0, tokens), 1 + std::max(0, rows));
    if (k <= 0) continue;
    tokens -= k;
    rows -= k;
    s.model_draft.resize(size_t(k));
    DraftModel::Job job;
    job.blocks = s.blocks.data();
    job.num_blocks = int(s.blocks.size());
    job.pos = s.num_computed;
    job.token = s.tokens.back();
    job.count = k;
    job.out = s.model_draft.data();
    if (!s.req.logit_bias.empty() || !s.req.bad_token_ids.empty()) job.edits = &fixed_edits(s);
    if (s.req.sampling.penalized()) {
      job.penalties = &s.req.sampling;
      job.history = &s.sampler;
    }
    if (has_rules(s)) {
      job.request = &s.req;
      job.generated = s.tokens.data() + s.num_prompt;
      job.num_generated = s.num_generated();
      job.think = s.think;
      job.constraint = s.constraint.get();
    }
    draft_jobs_.push_back(job);
  }
  if (!draft_jobs_.empty()) cfg_.draft_model->propose(draft_jobs_);
}

int Scheduler::draft(Sequence& s, int budget, int logit_budget) {
  int k = draft_limit(s, cfg_, budget, logit_budget);
  if (k <= 0) return 0;
  draft_scratch_.resize(size_t(k));
  if (cfg_.draft_model) {
    k = std::min(k, int(s.model_draft.size()));
    std::copy_n(s.model_draft.begin(), k, draft_scratch_.begin());
  } else {
    k = propose_ngram_draft(s.tokens.data(), int(s.tokens.size()), cfg_.speculative, k, draft_scratch_.data(), s.ngram_index);
    if (k > 0 && has_rules(s)) k = cut_at_rules(s, draft_scratch_.data(), k);
  }
  // Drafts use free blocks only: a guess never preempts another sequence.
  const int c = s.num_computed;
  k = std::min(k, (int(s.blocks.size()) + bm_.num_available()) * bm_.block_size() - (c + 1));
  if (k <= 0 || !ensure_blocks(s, c + 1 + k)) return 0;
  s.tokens.insert(s.tokens.end(), draft_scratch_.begin(), draft_scratch_.begin() + k);
  s.num_drafts = k;
  return k;
}

void Scheduler::complete_drafted(Sequence& s, const Scheduled& sc, const float* logits, const DeviceDrawResults* device,
                                 SeqEvent& ev) {
  const int vocab = cfg_.vocab_size, c = s.num_computed, k = sc.drafts;
  // tokens: [..., c] the step's first token, then the drafts [c + 1, c + 1 + k).
  draft_scratch_.assign(s.tokens.begin() + c + 1, s.tokens.begin() + c + 1 + k);
  s.tokens.resize(size_t(c) + 1);
  s.num_drafts = 0;
  s.num_computed = c + 1;
  counters_.spec_drafts++;
  counters_.spec_draft_tokens += uint64_t(k);
  for (int i = 0; i <= k; i++) {
    // Row i predicts position c + 1 + i from the tokens before it, all of them the model's own.
    const int drawn = sc.device_sample >= 0 ? sc.device_sample + i : -1;
    if (!sample_next(s, logits + size_t(sc.logit_begin + i) * vocab, drawn, device, ev)) break;
    if (i == k || s.tokens.back() != draft_scratch_[size_t(i)]) break;
    s.num_computed++;  // position c + 1 + i was computed with the token just drawn
    counters_.spec_accepted_tokens++;
  }
  register_full_blocks(s);
}

}  // namespace grpst
