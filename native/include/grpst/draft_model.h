// Speculative decoding with a draft model (vLLM's speculative_config method "draft_model"): a
// smaller model of the same family (the same vocabulary) proposes each decoding sequence's next
// tokens greedily, and the model checks them all in one step (scheduler_speculative.cpp), so a
// right guess saves a step and the output is the model's own either way.
//
// The draft keeps its own KV pool laid out like the model's (the same block size and block ids),
// so a sequence's block table addresses both pools, and every step the model runs is run through
// the draft too (mirror): the draft's cache then holds every position the model's does, prefix-
// cache hits and recomputed preemptions included, without a second block manager. Proposals write
// positions past what the model has computed: into the sequence's own blocks where it holds them
// (no other sequence reads an uncomputed position, and the model's step rewrites them) and into
// scratch blocks past the shared ids where it does not yet.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "grpst/common.h"
#include "grpst/device_sample_rules.h"
#include "grpst/model_runner.h"
#include "grpst/output_walk.h"
#include "grpst/request.h"
#include "grpst/sampler.h"
#include "grpst/think_budget.h"

namespace grpst {

class DraftModel {
 public:
  /**
   * `runner`: the draft's runner, its tokens per step and logit rows at least the model's (the
   * mirror runs the model's steps). `kv`: the model's pool (block size and count); the draft's
   * pool is bf16 (or float32 where the model's is) with `max_batch` sequences' worth of scratch
   * blocks for up to `max_drafts` proposed positions each. Throws Error where the draft cannot
   * stand in for `model` (another vocabulary, a shorter context than `max_seq_len`).
   */
  DraftModel(std::unique_ptr<ModelRunner> runner, const ModelConfig& model, const KvCacheSpec& kv, int max_batch,
             int max_drafts, int max_seq_len);

  /** The draft's KV dtype for a model whose pool is `model`'s: the model's quantized-cache scales are the model's own. */
  static KvDType kv_dtype_for(KvDType model) { return model == KvDType::F32 ? KvDType::F32 : KvDType::BF16; }
  /** Blocks past the shared ids the draft's pool holds: a proposal of `max_drafts` positions from
   * any offset reaches at most ceil(max_drafts / block_size) + 1 blocks the sequence may not hold. */
  static int scratch_blocks(int max_batch, int max_drafts, int block_size) {
    return max_batch * ((max_drafts + block_size - 1) / block_size + 1);
  }

  /** One sequence's proposal: `count` tokens after `token` at position `pos`, into out[0, count). */
  struct Job {
    const int32_t* blocks = nullptr;  // the sequence's block table (positions below pos are computed)
    int num_blocks = 0;
    int pos = 0;          // the position of `token`, the sequence's last (not yet computed by the model)
    int32_t token = 0;
    int count = 0;        // 1 .. max_drafts
    int32_t* out = nullptr;
    // The request's repetition / presence / frequency penalties, which the proposals follow as the
    // model's own draws will, over its history and the proposals before each (null: none).
    const SamplingParams* penalties = nullptr;
    const SamplerState* history = nullptr;
    // Its bad tokens (-inf) and logit bias by token, applied before the penalties as the model's
    // sampler does (null: none).
    const std::vector<LogitEdit>* edits = nullptr;
    // The rules that move with the output (output_walk.h), followed over the output and the
    // proposals before each as the model's sampler follows them row by row (null: none): the
    // stop tokens min_tokens holds back, the bad sequences' ends, the thinking budget's forced
    // close and the grammar, whose state after `token` the proposals walk a copy of.
    const Request* request = nullptr;
    const int32_t* generated = nullptr;  // [num_generated]: the output so far, `token` its last
    int num_generated = 0;
    ThinkState think;                    // the budget's state after `token`
    const TokenConstraint* constraint = nullptr;
  };
  /** Greedy proposals (under each job's rules) for up to max_batch jobs: `count` one-token steps of the draft, all jobs batched. */
  void propose(const std::vector<Job>& jobs);
  /** Seconds propose() ran since the last call (the engine counts them as forward time). */
  double take_propose_seconds() {
    const double s = propose_seconds_;
    propose_seconds_ = 0;
    return s;
  }
  /** Runs the model's step `batch` through the draft, writing its KV (no logits). */
  void mirror(const StepBatch& batch);

  const ModelRunner& runner() const { return *runner_; }
  /** Bytes of the draft's KV pool. */
  int64_t kv_bytes() const { return kv_bytes_; }

 private:
  /** Job j's greedy draw on the runner's device: its edits and prompt at fixed_at_[j] (or, under
   * the round's moving bans, its edits merged with them after the fixed lists), its grammar's
   * mask, its output counts_[j] appended. */
  DeviceSample greedy_sample(const Job& job, size_t j);
  /** Proposal r of job j (`drawn` unless its thinking budget forces the close); its counts and walk take it in. */
  void propose_token(const Job& job, size_t j, int r, int32_t drawn);

  std::unique_ptr<ModelRunner> runner_;
  int vocab_ = 0, block_size_ = 0, shared_blocks_ = 0, scratch_per_job_ = 0, max_batch_ = 0, max_drafts_ = 0;
  int64_t kv_bytes_ = 0;
  double propose_seconds_ = 0;
  StepBatch batch_;
  StepBatch mirror_;  // a model step with its adapters left out (mirror())
  DeviceDrawResults draws_;  // a runner that samples on its device: the proposals' greedy draws
  std::vector<std::vector<int32_t>> tables_;  // [job]: its block table for the proposal steps
  std::vector<int> rows_;                     // [job]: its row in the current proposal step, -1: done
  std::vector<float> logits_;                 // [max_batch, vocab]: a runner that draws on the host only
  std::vector<std::vector<std::pair<int32_t, int32_t>>> counts_;  // [job]: its output counts and proposals so far (penalized jobs)
  std::vector<std::pair<int, int>> fixed_at_;  // [job]: where its edits and prompt tokens start in batch_'s lists (device draws)
  size_t fixed_edits_end_ = 0;                 // batch_.logit_edits past the jobs' fixed edits: rounds' merged lists follow
  std::vector<OutputWalk> walks_;              // [job]: its rules, walked through its proposals
  std::vector<uint32_t> mask_;                 // a row's grammar mask, ceil(vocab / 32) words
  std::vector<int32_t> bans_;                  // a row's moving bans
  std::vector<LogitEdit> merge_scratch_;       // a round's bans with a job's fixed edits, before merging
};

}  // namespace grpst
