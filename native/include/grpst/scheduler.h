// In-flight batching (device-neutral): which tokens of which sequences go into the next step.
// Each step: every running sequence that is decoding gets its one token first, then prompt
// chunks fill the rest of max_num_tokens (chunked prefill), then waiting requests are admitted
// while max_batch_size and the KV pool allow. A request whose prompt does not fit waits; a
// running sequence that needs a block when none is left preempts the youngest running one,
// which frees its blocks and is recomputed later (its full blocks usually stay in the prefix
// cache, so recomputing is cheap). Under priority scheduling "oldest" and "youngest" read as
// first and last in (priority, arrival) order, as vLLM's priority policy orders its queues.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "grpst/block_manager.h"
#include "grpst/draft_model.h"
#include "grpst/host_samplers.h"
#include "grpst/model_runner.h"
#include "grpst/ngram_draft.h"
#include "grpst/request.h"
#include "grpst/sampler.h"
#include "grpst/think_budget.h"

namespace grpst {

struct Sequence {
  Request req;
  std::vector<int32_t> tokens;          // prompt, then generated tokens
  int num_prompt = 0;
  int num_computed = 0;                 // leading tokens whose K/V are in the cache
  uint64_t arrival = 0;                 // order of Scheduler::add calls (ties of priority)
  std::vector<int32_t> blocks;          // block table
  std::vector<uint64_t> block_hashes;   // prefix hashes of the leading full, computed blocks
  SamplerState sampler;
  std::unique_ptr<TokenConstraint> constraint;
  ThinkState think;                     // the thinking token budget's view of the output
  int num_drafts = 0;                   // draft tokens at the end of `tokens` this step checks (speculative decoding)
  NgramIndex ngram_index;               // where its tokens occurred, for prompt lookup (speculative decoding)
  std::vector<int32_t> model_draft;     // the draft model's proposal for this step (speculative decoding with a draft model)
  std::vector<LogitEdit> fixed_edits;   // device rows: its bad tokens (-inf) and logit bias, by token, merged once
  bool fixed_edits_ready = false;
  int cached_prompt_tokens = -1;        // set at first admission
  bool admitted_once = false;
  bool first_event_sent = false;
  int prompt_lp_done = 1;               // prompt positions [1, prompt_lp_done) have their logprobs
  std::vector<float> prompt_lp;         // [num_prompt], NaN at 0
  std::vector<std::vector<TopEntry>> prompt_top;
  std::vector<int32_t> prompt_rank;     // [num_prompt], 0 at 0

  int num_generated() const { return int(tokens.size()) - num_prompt; }
  int pending() const { return int(tokens.size()) - num_computed; }
};

struct SchedulerConfig {
  int max_batch_size = 16;
  int max_num_tokens = 512;
  int max_logit_rows = 256;
  int max_seq_len = 4096;
  int vocab_size = 0;
  bool device_sampling = false;  // the runner samples eligible rows itself (StepBatch::device_samples)
  bool priority_scheduling = false;  // queues in (Request::priority, arrival) order, not arrival alone
  NgramDraftConfig speculative;      // speculative decoding (num_tokens drafts a step); off at num_tokens 0
  DraftModel* draft_model = nullptr;  // drafts from this model instead of by prompt lookup (not owned)
};

struct SchedulerCounters {
  uint64_t prefix_hit_tokens = 0;
  uint64_t prefix_query_tokens = 0;
  uint64_t prompt_tokens = 0;
  uint64_t generated_tokens = 0;
  uint64_t preemptions = 0;
  uint64_t spec_drafts = 0;           // decode steps of a sequence that carried drafts (vLLM's num_drafts)
  uint64_t spec_draft_tokens = 0;     // draft tokens checked
  uint64_t spec_accepted_tokens = 0;  // draft tokens the model's own sampling agreed with
  uint64_t device_drawn_tokens = 0;   // tokens the runner drew on its device (the rest were drawn here)
  uint64_t device_prompt_rows = 0;    // prompt logprob rows the runner read on its device
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, BlockManager& blocks, HostSamplers& samplers);

  void add(std::unique_ptr<Sequence> seq);
  /** Finishes the request as cancelled (freeing its blocks); false if it is unknown or done. */
  bool cancel(uint64_t id, std::vector<SeqEvent>& events);
  /** Finishes everything with `reason` (engine shutdown). */
  void finish_all(FinishReason reason, const std::string& error, std::vector<SeqEvent>& events);

  /** Builds the next step into `batch`; false when nothing can run. Rejected requests add events. */
  bool schedule(StepBatch& batch, std::vector<SeqEvent>& events);
  /** Consumes the step's logits: prompt logprobs, sampling, stop checks, events, freeing. */
  void complete(const float* logits, std::vector<SeqEvent>& events, const DeviceDrawResults* device = nullptr,
                const float* hidden = nullptr, int hidden_size = 0);
  /** The step's forward pass failed: its sequences finish with the error. */
  void fail_step(const std::string& error, std::vector<SeqEvent>& events);

  int num_running() const { return int(running_.size()); }
  int num_waiting() const { return int(waiting_.size()); }
  bool has_work() const { return !running_.empty() || !waiting_.empty(); }
  const SchedulerCounters& counters() const { return counters_; }
  /**
   * The allowed tokens of the last schedule()'s constrained device rows into batch.masks, on the
   * host samplers' threads (their matchers lock themselves). The runner calls it while its device
   * runs the step (ModelRunner::forward_sampled's before_draws), so masks cost the step nothing
   * where they take less time than the model.
   */
  void fill_device_masks(StepBatch& batch);

 private:
  struct Scheduled {
    Sequence* seq;
    int num_tokens;
    int lp_first_pos;   // first position whose row gives a prompt logprob
    int lp_rows;        // how many such rows
    int logit_begin;    // index of its first logit row in the step's output
    bool samples;       // its last row samples the next token
    int device_sample;  // index into StepBatch::device_samples (of its first row; a drafted step's rows follow), -1: sampled here
    int hidden_index;   // an embedding request's row in StepBatch::hidden_rows, else -1
    int drafts = 0;     // draft tokens after its first token: every one of its rows is a logit row
    int mask = -1;      // its device row's allowed-token mask in StepBatch::masks, filled by fill_device_masks()
    int device_prompt = -1;  // its first prompt logprob row in StepBatch::device_prompt_rows (the rest follow), -1: read here
    std::string mask_failure;  // why the constraint could not give that mask (the request fails with it)
  };

  bool ensure_blocks(Sequence& s, int num_tokens);
  void preempt(Sequence* s);
  bool admit(std::unique_ptr<Sequence>& s, std::vector<SeqEvent>& events, bool& stop);
  void add_to_batch(Sequence& s, int n, StepBatch& batch, int& budget, int& logit_budget);
  int chunk_size(const Sequence& s, int budget, int logit_budget) const;
  /**
   * Appends draft tokens to a decoding sequence whose next token's block is held; returns how
   * many. `budget` / `logit_budget`: tokens and logit rows the sequence may take, its own first included.
   */
  int draft(Sequence& s, int budget, int logit_budget);
  /**
   * With a draft model: its proposals for every decoding sequence (Sequence::model_draft), all in
   * one batch of draft steps before the decodes are scheduled; `tokens` / `rows`: what the step
   * leaves for drafts, handed out in the decodes' order as draft() will take them.
   */
  void propose_with_draft_model(int tokens, int rows);
  /** Prompt lookup's `k` drafts of `s` cut before the first its rules refuse (output_walk.h): how many are left. */
  int cut_at_rules(Sequence& s, const int32_t* drafts, int k);
  /** Whether the runner may draw this step's token(s) of `s` (the `generated`-th onwards) on its device. */
  bool device_eligible(const Sequence& s, int drafts, int generated) const;
  /**
   * The device rows of `s`'s step (its drafted rows too): settings, seeded stream positions,
   * penalty histories, bans and biases; a constrained row's mask is reserved in batch.masks and
   * its index returned (-1: none), to be filled by fill_device_masks().
   */
  int push_device_samples(Sequence& s, int drafts, int generated, StepBatch& batch);
  /** Row `generated`'s bans (bad words, stops held back by min_tokens) and biases, by token, into batch.logit_edits. */
  void push_logit_edits(Sequence& s, int generated, StepBatch& batch, DeviceSample& d);
  /** The request's bad tokens (-inf) and logit bias, merged by token once per sequence (Sequence::fixed_edits). */
  const std::vector<LogitEdit>& fixed_edits(Sequence& s);
  /** Why no token could be drawn for `s` (every one banned or masked out). */
  std::string no_token_failure(const Sequence& s) const;
  /** A token drawn on the host for a sequence's step, or why none could be. */
  struct HostDraw {
    bool ready = false;
    SampleResult result;
    std::string failure;
  };
  /** Draws `s`'s next token from `row` with the request's rules, on `sampler` (any thread's). */
  HostDraw draw_on_host(Sequence& s, const float* row, Sampler& sampler) const;
  /**
   * Before complete() walks the step in order: the rows the host reads that depend on nothing
   * else in the step (prompt logprobs, and the draws of sequences with one sampled row, not
   * forced and not drawn on the device), on the host samplers' threads; draws go to host_draws_.
   */
  void prepare_host_rows(const float* logits, const DeviceDrawResults* device);
  /** `sc`'s prompt logprob rows as the runner read them on its device. */
  void take_device_prompt_rows(const Scheduled& sc, const DeviceDrawResults& device);
  /** Samples (or takes the runner's draw `device_sample`, if >= 0), checks and emits one next token from `row`; false when the sequence finished. */
  bool sample_next(Sequence& s, const float* row, int device_sample, const DeviceDrawResults* device, SeqEvent& ev, HostDraw* drawn = nullptr);
  /** A drafted step: the model's tokens row by row while they agree with the drafts; the cache keeps those. */
  void complete_drafted(Sequence& s, const Scheduled& sc, const float* logits, const DeviceDrawResults* device, SeqEvent& ev);
  /** Newly completed blocks join the prefix cache. */
  void register_full_blocks(Sequence& s);
  void finish(Sequence& s, FinishReason reason, SeqEvent& ev);
  SeqEvent make_event(Sequence& s);
  void release_blocks(Sequence& s);
  void remove_running(Sequence* s);
  /** Whether a goes before b: by (priority, arrival) under priority scheduling. */
  bool goes_before(const Sequence& a, const Sequence& b) const;
  /** Into `queue` at its place: after every sequence that goes before it (or at the front / back, first come first served). */
  void place(std::deque<std::unique_ptr<Sequence>>& queue, std::unique_ptr<Sequence> s, bool fcfs_front);

  SchedulerConfig cfg_;
  BlockManager& bm_;
  HostSamplers& samplers_;
  Sampler& sampler_;  // samplers_.primary(): the loop's own
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::deque<std::unique_ptr<Sequence>> running_;  // oldest admission (or first by priority) first
  std::vector<Scheduled> scheduled_;
  std::vector<DraftModel::Job> draft_jobs_;  // propose_with_draft_model()'s proposals
  std::vector<int32_t> draft_scratch_;  // draft()'s proposal, then complete_drafted()'s copy of the drafts
  OutputWalk rules_walk_;               // cut_at_rules()'s walk
  std::vector<HostDraw> host_draws_;  // [scheduled_] prepare_host_rows()'s draws
  std::vector<std::pair<int, int>> host_tasks_;  // (scheduled index, prompt logprob row or -1 for the draw)
  std::vector<std::pair<int32_t, int32_t>> history_scratch_;  // push_device_samples()'s (token, count) list
  std::vector<LogitEdit> edits_scratch_;                      // push_logit_edits()'s lists before merging
  std::vector<int> mask_tasks_;                               // scheduled_ indices whose device row has a mask
  SchedulerCounters counters_;
  uint64_t next_arrival_ = 0;
};

}  // namespace grpst
