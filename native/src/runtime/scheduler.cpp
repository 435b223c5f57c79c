#include "grpst/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "grpst/lora.h"

namespace grpst {

namespace {
int ceil_div(int a, int b) { return (a + b - 1) / b; }
// min_tokens' held-back stops (output_walk.h) for the sequence's next token.
bool bans_stops(const Sequence& s) { return holds_back_stops(s.req, s.num_generated()); }
}  // namespace

Scheduler::Scheduler(const SchedulerConfig& cfg, BlockManager& blocks, HostSamplers& samplers)
    : cfg_(cfg), bm_(blocks), samplers_(samplers), sampler_(samplers.primary()) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  seq->arrival = next_arrival_++;
  place(waiting_, std::move(seq), false);
}

bool Scheduler::goes_before(const Sequence& a, const Sequence& b) const {
  if (cfg_.priority_scheduling && a.req.priority != b.req.priority) return a.req.priority < b.req.priority;
  return a.arrival < b.arrival;
}

void Scheduler::place(std::deque<std::unique_ptr<Sequence>>& queue, std::unique_ptr<Sequence> s, bool fcfs_front) {
  if (!cfg_.priority_scheduling) {
    if (fcfs_front) queue.push_front(std::move(s));
    else queue.push_back(std::move(s));
    return;
  }
  // Queues stay sorted, so the place is found by binary search; equal keys cannot occur (arrival is unique).
  auto at = std::upper_bound(queue.begin(), queue.end(), s, [&](const auto& x, const auto& y) { return goes_before(*x, *y); });
  queue.insert(at, std::move(s));
}

void Scheduler::release_blocks(Sequence& s) {
  for (int32_t b : s.blocks) bm_.release(b);
  s.blocks.clear();
  s.block_hashes.clear();
  s.num_computed = 0;
}

void Scheduler::remove_running(Sequence* s) {
  running_.erase(std::remove_if(running_.begin(), running_.end(), [&](auto& p) { return p.get() == s; }),
                 running_.end());
}

SeqEvent Scheduler::make_event(Sequence& s) {
  SeqEvent ev;
  ev.id = s.req.id;
  if (!s.first_event_sent) {
    ev.cached_prompt_tokens = std::max(0, s.cached_prompt_tokens);
    if (s.req.prompt_logprobs && s.prompt_lp_done >= s.num_prompt) {
      ev.has_prompt_logprobs = true;
      ev.prompt_logprobs = s.prompt_lp;
      ev.prompt_ranks = s.prompt_rank;
      for (const auto& top : s.prompt_top) {
        ev.prompt_top_counts.push_back(int32_t(top.size()));
        ev.prompt_top.insert(ev.prompt_top.end(), top.begin(), top.end());
      }
    }
  }
  return ev;
}

void Scheduler::finish(Sequence& s, FinishReason reason, SeqEvent& ev) {
  ev.finish = reason;
  release_blocks(s);
}

bool Scheduler::cancel(uint64_t id, std::vector<SeqEvent>& events) {
  auto emit = [&](Sequence& s) {
    SeqEvent ev = make_event(s);
    finish(s, FinishReason::Cancelled, ev);
    events.push_back(std::move(ev));
  };
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if ((*it)->req.id == id) {
      emit(**it);
      waiting_.erase(it);
      return true;
    }
  }
  for (auto& p : running_) {
    if (p->req.id == id) {
      emit(*p);
      remove_running(p.get());
      return true;
    }
  }
  return false;
}

void Scheduler::finish_all(FinishReason reason, const std::string& error, std::vector<SeqEvent>& events) {
  auto emit = [&](Sequence& s) {
    SeqEvent ev = make_event(s);
    ev.error = error;
    finish(s, reason, ev);
    events.push_back(std::move(ev));
  };
  for (auto& p : running_) emit(*p);
  for (auto& p : waiting_) emit(*p);
  running_.clear();
  waiting_.clear();
}

bool Scheduler::ensure_blocks(Sequence& s, int num_tokens) {
  while (int(s.blocks.size()) * bm_.block_size() < num_tokens) {
    int32_t b = bm_.allocate();
    if (b < 0) return false;
    s.blocks.push_back(b);
  }
  return true;
}

void Scheduler::preempt(Sequence* s) {
  release_blocks(*s);
  counters_.preemptions++;
  for (auto it = running_.begin(); it != running_.end(); ++it) {
    if (it->get() == s) {
      // First come, first served: it resumes before anything that arrived after it was admitted.
      std::unique_ptr<Sequence> seq = std::move(*it);
      running_.erase(it);
      place(waiting_, std::move(seq), true);
      return;
    }
  }
}

int Scheduler::chunk_size(const Sequence& s, int budget, int logit_budget) const {
  const int c = s.num_computed, size = int(s.tokens.size());
  int n = std::min(s.pending(), budget);
  // Blocks limit the chunk: what is held plus what could still be allocated.
  n = std::min(n, (int(s.blocks.size()) + bm_.num_available()) * bm_.block_size() - c);
  auto rows = [&](int k) {
    int r = (c + k == size) ? 1 : 0;
    if (s.req.prompt_logprobs) r += std::max(0, std::min(c + k, s.num_prompt - 1) - std::max(c, s.prompt_lp_done - 1));
    return r;
  };
  while (n > 0 && rows(n) > logit_budget) n--;
  return std::max(0, n);
}

void Scheduler::add_to_batch(Sequence& s, int n, StepBatch& batch, int& budget, int& logit_budget) {
  const int c = s.num_computed;
  Scheduled sc{&s, n, 0, 0, int(batch.logit_rows.size()), false, -1, -1, s.num_drafts, -1, -1, {}};
  SeqSlice sl;
  sl.first_row = batch.num_tokens();
  sl.num_tokens = n;
  sl.start_pos = c;
  sl.block_table = s.blocks.data();
  sl.num_blocks = int(s.blocks.size());
  sl.lora = s.req.lora.get();
  batch.seqs.push_back(sl);
  batch.tokens.insert(batch.tokens.end(), s.tokens.begin() + c, s.tokens.begin() + c + n);
  if (s.req.prompt_logprobs) {
    const int first = std::max(c, s.prompt_lp_done - 1), last = std::min(c + n, s.num_prompt - 1);
    sc.lp_first_pos = first;
    sc.lp_rows = std::max(0, last - first);
    // Where the runner reads rows on its device, it lists them there too: only their logprobs,
    // ranks and best entries come back, not a 152k-wide row per prompt token.
    const int top_n = prompt_alternatives(s.req);
    const bool on_device = cfg_.device_sampling && top_n <= DeviceDrawResults::kMaxTop && sc.lp_rows > 0;
    if (on_device) sc.device_prompt = int(batch.device_prompt_rows.size());
    for (int p = first; p < last; p++) {
      if (on_device) batch.device_prompt_rows.push_back(DevicePromptRow{int(batch.logit_rows.size()), s.tokens[size_t(p + 1)], top_n});
      batch.logit_rows.push_back(sl.first_row + (p - c));
    }
  }
  sc.samples = c + n == int(s.tokens.size());
  // A drafted decode step wants every row: row i's logits check draft i (the last one's give a token more).
  for (int i = n - 1 - sc.drafts; sc.samples && i < n; i++) batch.logit_rows.push_back(sl.first_row + i);
  if (sc.samples && s.req.embed) {
    // Its last prompt row's final-norm output is the answer: nothing is sampled from it.
    sc.hidden_index = int(batch.hidden_rows.size());
    batch.hidden_rows.push_back(int(batch.logit_rows.size()) - 1);
  }
  // A drafted step's rows are drawn the same way, row i as the (generated + i)-th token.
  const int generated = s.num_generated() - sc.drafts;
  if (sc.samples && device_eligible(s, sc.drafts, generated)) {
    sc.device_sample = int(batch.device_samples.size());
    sc.mask = push_device_samples(s, sc.drafts, generated, batch);
    if (sc.mask >= 0) mask_tasks_.push_back(int(scheduled_.size()));
  }
  budget -= n;
  logit_budget -= sc.lp_rows + (sc.samples ? 1 + sc.drafts : 0);
  scheduled_.push_back(sc);
}

// What keeps a request on the host: what the device sampler does not do (more than 20 top
// logprobs, a forced think-budget token), embeddings and scores. Within a step only the think
// budget and a constraint's state can change (the budget may force a later drafted row, whose
// logits must then be on the host; a drafted row's mask would need the drafts accepted first),
// so drafted rows with either stay there.
bool Scheduler::device_eligible(const Sequence& s, int drafts, int generated) const {
  return cfg_.device_sampling && (drafts == 0 || (s.req.think_max_tokens < 0 && !s.constraint)) && !s.req.embed &&
         s.req.score_ids.empty() && s.req.logprobs <= DeviceDrawResults::kMaxTop && !think_forced(s.req, s.think);
}

std::string Scheduler::no_token_failure(const Sequence& s) const {
  return bans_stops(s) ? "no token may follow: the constraint allows only a stop token, which min_tokens holds back for " +
                             std::to_string(s.req.min_tokens - s.num_generated()) + " more tokens"
                       : "no token may follow: the bad-token list and the constraint exclude the whole vocabulary";
}

bool Scheduler::admit(std::unique_ptr<Sequence>& sp, std::vector<SeqEvent>& events, bool& stop) {
  Sequence& s = *sp;
  const int bs = bm_.block_size();
  auto reject = [&](const std::string& msg) {
    SeqEvent ev = make_event(s);
    ev.error = msg;
    finish(s, FinishReason::Error, ev);
    events.push_back(std::move(ev));
    return false;
  };
  if (!s.admitted_once) {
    if (s.tokens.empty()) return reject("the prompt is empty; send at least one token");
    if (int(s.tokens.size()) >= cfg_.max_seq_len)
      return reject("the prompt has " + std::to_string(s.tokens.size()) + " tokens but max_seq_len is " +
                    std::to_string(cfg_.max_seq_len) + "; shorten the prompt or load the engine with a larger maxSeqLen");
    for (int32_t t : s.tokens)
      if (t < 0 || t >= cfg_.vocab_size)
        return reject("prompt token id " + std::to_string(t) + " is outside the vocabulary (size " +
                      std::to_string(cfg_.vocab_size) + ")");
    if (s.req.embed && !s.req.score_ids.empty()) return reject("a request either embeds or scores, not both");
    for (int32_t t : s.req.score_ids)
      if (t < 0 || t >= cfg_.vocab_size)
        return reject("score token id " + std::to_string(t) + " is outside the vocabulary (size " + std::to_string(cfg_.vocab_size) + ")");
    if (s.req.think_max_tokens >= 0 && (s.req.think_open >= cfg_.vocab_size || s.req.think_close >= cfg_.vocab_size))
      return reject("the think block's token ids (" + std::to_string(s.req.think_open) + ", " + std::to_string(s.req.think_close) +
                    ") are outside the vocabulary (size " + std::to_string(cfg_.vocab_size) + ")");
  }
  const int size = int(s.tokens.size());
  // The last token a request emits is sampled, never computed, so it takes no KV slot: a request
  // with at most one token left to emit (or whose next token reaches max_seq_len) needs slots for
  // its tokens so far only; one that will decode again needs one more.
  const bool decodes_again = s.req.max_tokens - s.num_generated() > 1 && size + 1 < cfg_.max_seq_len;
  const int needed_tokens = size + (decodes_again ? 1 : 0);
  const int total_needed = ceil_div(needed_tokens, bs);
  if (total_needed > bm_.num_blocks())
    return reject("the request needs " + std::to_string(total_needed) + " KV cache blocks (" + std::to_string(needed_tokens) +
                  " tokens) but the whole cache holds " + std::to_string(bm_.num_blocks()) + " blocks of " +
                  std::to_string(bs) + " tokens; raise max_tokens_in_paged_kv_cache / kv_cache_bytes (inference conf) or shorten the prompt");
  const bool wants_prompt_lp = s.req.prompt_logprobs && s.prompt_lp_done < s.num_prompt;
  std::vector<int32_t> blocks;
  std::vector<uint64_t> hashes;
  int matched = 0;
  if (!wants_prompt_lp) matched = bm_.match_prefix(s.tokens.data(), size, (size - 1) / bs, blocks, hashes, lora_cache_root(s.req.cache_salt, s.req.lora.get()));
  if (ceil_div(size, bs) - matched > bm_.num_available()) {
    for (int32_t b : blocks) bm_.release(b);
    stop = true;  // first come, first served: later requests wait behind this one
    return false;
  }
  s.blocks = std::move(blocks);
  s.block_hashes = std::move(hashes);
  s.num_computed = matched * bs;
  // The whole prompt's blocks are taken now, so its later chunks never wait for blocks.
  ensure_blocks(s, size);
  if (!s.admitted_once) {
    s.admitted_once = true;
    s.cached_prompt_tokens = matched * bs;
    counters_.prompt_tokens += uint64_t(s.num_prompt);
    if (bm_.prefix_caching() && !wants_prompt_lp) {
      counters_.prefix_query_tokens += uint64_t(s.num_prompt);
      counters_.prefix_hit_tokens += uint64_t(matched * bs);
    }
  }
  // First come, first served: admission order; by priority: the running queue's order is the
  // order decoding sequences get tokens and blocks in, so the last one is the one preempted.
  if (cfg_.priority_scheduling) place(running_, std::move(sp), false);
  else running_.push_back(std::move(sp));
  return true;
}

bool Scheduler::schedule(StepBatch& batch, std::vector<SeqEvent>& events) {
  scheduled_.clear();
  batch.tokens.clear();
  batch.seqs.clear();
  batch.logit_rows.clear();
  batch.device_samples.clear();
  batch.penalty_prompt_tokens.clear();
  batch.penalty_output_counts.clear();
  batch.logit_edits.clear();
  batch.masks.clear();
  batch.device_prompt_rows.clear();
  mask_tasks_.clear();
  batch.hidden_rows.clear();
  int budget = cfg_.max_num_tokens, logit_budget = cfg_.max_logit_rows;
  // Drafts are a guess: they take only the tokens and logit rows this step's certain work leaves
  // (every running sequence's pending tokens, the prompts of the waiting ones that could be
  // admitted), so that they never hold back a decode, a prompt chunk or an admission.
  int draft_tokens = 0, draft_rows = 0;
  if (cfg_.speculative.num_tokens > 0) {
    int need_tokens = 0, need_rows = 0, slots = cfg_.max_batch_size - int(running_.size());
    for (const auto& p : running_) need_tokens += p->pending(), need_rows++;
    for (const auto& p : waiting_) {
      if (slots-- <= 0) break;
      need_tokens += p->pending(), need_rows++;
    }
    draft_tokens = budget - need_tokens;
    draft_rows = logit_budget - need_rows;
    if (cfg_.draft_model) propose_with_draft_model(draft_tokens, draft_rows);
  }

  // 1. Decoding sequences, oldest first; the youngest give way when blocks run out.
  for (size_t i = 0; i < running_.size();) {
    Sequence* s = running_[i].get();
    if (s->pending() != 1) {
      i++;
      continue;
    }
    if (budget < 1 || logit_budget < 1) break;
    bool ok = ensure_blocks(*s, s->num_computed + 1);
    while (!ok && running_.back().get() != s) {
      preempt(running_.back().get());
      ok = ensure_blocks(*s, s->num_computed + 1);
    }
    if (!ok) {
      if (running_.size() == 1) {
        SeqEvent ev = make_event(*s);
        ev.error = "the KV cache is full: this sequence alone fills all " + std::to_string(bm_.num_blocks()) +
                   " blocks; raise max_tokens_in_paged_kv_cache / kv_cache_bytes (inference conf) or lower max_tokens";
        finish(*s, FinishReason::Error, ev);
        events.push_back(std::move(ev));
        remove_running(s);
      } else {
        preempt(s);
      }
      continue;
    }
    const int k = draft(*s, 1 + std::max(0, draft_tokens), 1 + std::max(0, draft_rows));
    draft_tokens -= k;
    draft_rows -= k;
    add_to_batch(*s, 1 + k, batch, budget, logit_budget);
    i++;
  }
  // 2. Prompt chunks of running sequences (a drafted sequence is decoding, not prefilling).
  for (auto& p : running_) {
    Sequence& s = *p;
    if (s.pending() <= 1 || s.num_drafts > 0 || budget <= 0) continue;
    const int n = chunk_size(s, budget, logit_budget);
    if (n <= 0 || !ensure_blocks(s, s.num_computed + n)) continue;
    add_to_batch(s, n, batch, budget, logit_budget);
  }
  // 3. Admit waiting requests while there is room.
  bool stop = false;
  while (!stop && !waiting_.empty() && int(running_.size()) < cfg_.max_batch_size && budget > 0) {
    std::unique_ptr<Sequence> s = std::move(waiting_.front());
    waiting_.pop_front();
    Sequence* raw = s.get();
    if (!admit(s, events, stop)) {
      if (stop) waiting_.push_front(std::move(s));
      continue;
    }
    const int n = chunk_size(*raw, budget, logit_budget);
    if (n > 0 && ensure_blocks(*raw, raw->num_computed + n)) add_to_batch(*raw, n, batch, budget, logit_budget);
  }
  return !batch.tokens.empty();
}

void Scheduler::register_full_blocks(Sequence& s) {
  const int bs = bm_.block_size();
  while (int(s.block_hashes.size()) < s.num_computed / bs) {
    const size_t i = s.block_hashes.size();
    const uint64_t parent = i ? s.block_hashes[i - 1] : lora_cache_root(s.req.cache_salt, s.req.lora.get());
    s.block_hashes.push_back(bm_.register_full(s.blocks[i], parent, s.tokens.data() + i * bs));
  }
}

void Scheduler::complete(const float* logits, std::vector<SeqEvent>& events, const DeviceDrawResults* device,
                         const float* hidden, int hidden_size) {
  const int vocab = cfg_.vocab_size;
  prepare_host_rows(logits, device);
  std::vector<Sequence*> done;
  for (size_t k = 0; k < scheduled_.size(); k++) {
    const Scheduled& sc = scheduled_[k];
    Sequence& s = *sc.seq;
    // One event per sequence that sampled, with every token it emitted this step.
    auto emit = [&](SeqEvent& ev) {
      s.first_event_sent = true;
      if (ev.finish != FinishReason::None) done.push_back(&s);
      events.push_back(std::move(ev));
    };
    if (sc.drafts > 0) {
      SeqEvent ev = make_event(s);
      complete_drafted(s, sc, logits, device, ev);
      emit(ev);
      continue;
    }
    s.num_computed += sc.num_tokens;
    register_full_blocks(s);
    // Its prompt logprob rows were read by prepare_host_rows.
    if (s.req.prompt_logprobs && s.num_prompt == 1 && s.prompt_lp.empty()) {
      s.prompt_lp.assign(1, std::numeric_limits<float>::quiet_NaN());
      s.prompt_top.assign(1, {});
      s.prompt_rank.assign(1, 0);
    }
    if (!sc.samples) continue;
    SeqEvent ev = make_event(s);
    if (sc.hidden_index >= 0) {
      // An embedding request ends with its prompt: the event carries the vector, no token.
      if (hidden) ev.embedding.assign(hidden + size_t(sc.hidden_index) * hidden_size, hidden + size_t(sc.hidden_index + 1) * hidden_size);
      else ev.error = "the step returned no hidden states for an embedding request";
      finish(s, ev.error.empty() ? FinishReason::Length : FinishReason::Error, ev);
    } else if (!s.req.score_ids.empty()) {
      // A scoring request ends with its prompt too: the logprobs of its tokens at the last position.
      const float* row = logits + size_t(sc.logit_begin + sc.lp_rows) * vocab;
      ev.scores = sampler_.logprobs_of(row, vocab, s.req.score_ids);
      finish(s, FinishReason::Length, ev);
    } else if (s.num_generated() >= s.req.max_tokens) {
      finish(s, FinishReason::Length, ev);
    } else if (device && !sc.mask_failure.empty()) {
      // Its constraint failed while its mask was filled: it ends this request, not the batch.
      ev.error = sc.mask_failure;
      finish(s, FinishReason::Error, ev);
    } else {
      sample_next(s, logits + size_t(sc.logit_begin + sc.lp_rows) * vocab, sc.device_sample, device, ev,
                  host_draws_[k].ready ? &host_draws_[k] : nullptr);
    }
    emit(ev);
  }
  scheduled_.clear();
  for (Sequence* s : done) remove_running(s);
}

Scheduler::HostDraw Scheduler::draw_on_host(Sequence& s, const float* row, Sampler& sampler) const {
  HostDraw d;
  try {
    d.result = sampler.sample(row, cfg_.vocab_size, s.req, s.sampler, s.constraint.get(), bans_stops(s),
                              s.tokens.data() + s.num_prompt, s.num_generated());
    if (d.result.token < 0) d.failure = no_token_failure(s);
  } catch (const std::exception& e) {
    // A failing constraint ends its own request, not the batch.
    d.failure = std::string("sampling failed: ") + e.what();
  }
  d.ready = true;
  return d;
}

bool Scheduler::sample_next(Sequence& s, const float* row, int device_sample, const DeviceDrawResults* device, SeqEvent& ev,
                            HostDraw* drawn) {
  const int vocab = cfg_.vocab_size;
  SampleResult r;
  std::string failure;
  try {
    if (think_forced(s.req, s.think)) {
      // The budget is spent: the block closes here, whatever the logits say. Its logprob is
      // still the model's own, as every reported logprob is.
      r.token = s.req.think_close;
      if (s.req.logprobs >= 0) sampler_.logprobs(row, vocab, r.token, s.req.logprobs, &r.logprob, &r.top);
    } else if (device_sample >= 0 && device) {
      const size_t i = size_t(device_sample);
      r.token = device->tokens[i];
      r.logprob = device->logprobs[i];
      if (r.token < 0) failure = no_token_failure(s);
      else counters_.device_drawn_tokens++;
      // Its top logprobs, where the request wants them (the device drew them; token -1: no more).
      for (int k = 0; k < s.req.logprobs; k++) {
        const size_t at = i * DeviceDrawResults::kMaxTop + size_t(k);
        if (device->top_tokens[at] < 0) break;
        r.top.push_back({device->top_tokens[at], device->top_logprobs[at]});
      }
    } else {
      // A draw made ahead (prepare_host_rows) is used once: moved, not copied.
      HostDraw d = drawn ? std::move(*drawn) : draw_on_host(s, row, sampler_);
      r = std::move(d.result);
      failure = std::move(d.failure);
    }
  } catch (const std::exception& e) {
    // A failing constraint ends its own request, not the batch.
    failure = std::string("sampling failed: ") + e.what();
  }
  const bool is_stop = r.token >= 0 && !s.req.ignore_eos &&
                       std::find(s.req.stop_token_ids.begin(), s.req.stop_token_ids.end(), r.token) != s.req.stop_token_ids.end();
  if (!failure.empty()) {
    ev.error = failure;
    finish(s, FinishReason::Error, ev);
    return false;
  }
  if (is_stop) {
    ev.stop_token = r.token;
    if (s.req.logprobs >= 0) {
      ev.stop_logprob = r.logprob;
      ev.stop_top = r.top;
    }
    finish(s, FinishReason::Stop, ev);
    return false;
  }
  s.tokens.push_back(r.token);
  Sampler::observe(s.sampler, r.token);
  think_advance(s.req, s.think, r.token);
  if (s.constraint) {
    try {
      s.constraint->accept(r.token);
    } catch (const std::exception& e) {
      ev.error = std::string("constraint failed: ") + e.what();
    }
  }
  counters_.generated_tokens++;
  ev.tokens.push_back(r.token);
  if (s.req.logprobs >= 0) {
    ev.logprobs.push_back(r.logprob);
    ev.top_counts.push_back(int32_t(r.top.size()));
    ev.top.insert(ev.top.end(), r.top.begin(), r.top.end());
  }
  if (!ev.error.empty()) {
    finish(s, FinishReason::Error, ev);
    return false;
  }
  if (s.num_generated() >= s.req.max_tokens || int(s.tokens.size()) >= cfg_.max_seq_len) {
    finish(s, FinishReason::Length, ev);
    return false;
  }
  return true;
}

void Scheduler::fail_step(const std::string& error, std::vector<SeqEvent>& events) {
  std::vector<Sequence*> failed;
  for (const Scheduled& sc : scheduled_) {
    SeqEvent ev = make_event(*sc.seq);
    ev.error = error;
    finish(*sc.seq, FinishReason::Error, ev);
    events.push_back(std::move(ev));
    failed.push_back(sc.seq);
  }
  scheduled_.clear();
  for (Sequence* s : failed) remove_running(s);
}

}  // namespace grpst
