#include "grpst/draft_model.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>

#include "grammar/matcher.h"
#include "grpst/logit_edits.h"

namespace grpst {

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();
}  // namespace

DraftModel::DraftModel(std::unique_ptr<ModelRunner> runner, const ModelConfig& model, const KvCacheSpec& kv,
                       int max_batch, int max_drafts, int max_seq_len)
    : runner_(std::move(runner)), max_batch_(max_batch), max_drafts_(max_drafts) {
  const ModelConfig& d = runner_->config();
  if (d.vocab_size != model.vocab_size)
    throw Error("the draft model's vocabulary has " + std::to_string(d.vocab_size) + " tokens but the model's has " +
                std::to_string(model.vocab_size) + "; a draft must share the model's tokenizer (a smaller model of the same family)");
  if (d.max_position_embeddings > 0 && d.max_position_embeddings < max_seq_len)
    throw Error("the draft model handles " + std::to_string(d.max_position_embeddings) + " positions but the engine runs up to " +
                std::to_string(max_seq_len) + " (max_seq_len); lower max_seq_len or use a draft with a longer context");
  if (max_batch < 1 || max_drafts < 1) throw Error("a draft model needs a batch and at least one draft token");
  vocab_ = d.vocab_size;
  block_size_ = kv.block_size;
  shared_blocks_ = kv.num_blocks;
  // A proposal of max_drafts positions from any offset in a block reaches at most this many blocks
  // past the ones the sequence holds (the first of them may be the block of `pos` itself).
  scratch_per_job_ = scratch_blocks(1, max_drafts, block_size_);
  KvCacheSpec own;
  own.block_size = kv.block_size;
  own.num_blocks = shared_blocks_ + scratch_blocks(max_batch, max_drafts, block_size_);
  own.dtype = kv_dtype_for(kv.dtype);
  runner_->allocate_kv(own);
  kv_bytes_ = int64_t(own.num_blocks) * own.block_size * int64_t(runner_->kv_bytes_per_token(own.dtype));
  tables_.resize(size_t(max_batch));
  rows_.resize(size_t(max_batch));
  counts_.resize(size_t(max_batch));
  fixed_at_.resize(size_t(max_batch));
  walks_.resize(size_t(max_batch));
  // A runner that samples on its device draws the greedy proposals there: no logits come back.
  if (!runner_->samples_on_device()) logits_.resize(size_t(max_batch) * vocab_);
}

void DraftModel::propose(const std::vector<Job>& jobs) {
  if (int(jobs.size()) > max_batch_) throw Error("draft model: more proposals than its batch");
  const auto start = std::chrono::steady_clock::now();
  struct Timed {  // counted however propose() ends
    const std::chrono::steady_clock::time_point& start;
    double& total;
    ~Timed() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
  } timed{start, propose_seconds_};
  int rounds = 0;
  for (size_t j = 0; j < jobs.size(); j++) {
    const Job& job = jobs[j];
    if (job.count < 1 || job.count > max_drafts_) throw Error("draft model: proposal length out of range");
    rounds = std::max(rounds, job.count);
    // Blocks for positions [0, pos + count): the sequence's own, then this job's scratch ones.
    const int needed = (job.pos + job.count + block_size_ - 1) / block_size_;
    std::vector<int32_t>& t = tables_[j];
    t.assign(job.blocks, job.blocks + std::min(job.num_blocks, needed));
    for (int s = 0; int(t.size()) < needed; s++) t.push_back(shared_blocks_ + int32_t(j) * scratch_per_job_ + s);
    if (job.penalties) counts_[j] = job.history->output_counts;
    if (job.request) walks_[j].start(*job.request, job.generated, job.num_generated, job.think, job.constraint);
    else walks_[j].clear();
  }
  // A device draw's bans, biases and prompt tokens are the same every round: listed once, each job's
  // rows pointing at its part (only the output counts grow with the proposals, round by round).
  const bool on_device = runner_->samples_on_device();
  batch_.logit_edits.clear();
  batch_.penalty_prompt_tokens.clear();
  for (size_t j = 0; on_device && j < jobs.size(); j++) {
    fixed_at_[j] = {int(batch_.logit_edits.size()), int(batch_.penalty_prompt_tokens.size())};
    if (jobs[j].edits) batch_.logit_edits.insert(batch_.logit_edits.end(), jobs[j].edits->begin(), jobs[j].edits->end());
    if (jobs[j].penalties) {
      const std::vector<int32_t>& prompt = jobs[j].history->prompt_tokens_sorted;
      batch_.penalty_prompt_tokens.insert(batch_.penalty_prompt_tokens.end(), prompt.begin(), prompt.end());
    }
  }
  fixed_edits_end_ = batch_.logit_edits.size();
  // Round r computes position pos + r (the job's token, then its own proposals) and proposes pos + r + 1.
  for (int r = 0; r < rounds; r++) {
    batch_.tokens.clear();
    batch_.seqs.clear();
    batch_.logit_rows.clear();
    batch_.device_samples.clear();
    batch_.penalty_output_counts.clear();
    batch_.logit_edits.resize(fixed_edits_end_);  // the last round's merged lists
    batch_.masks.clear();
    for (size_t j = 0; j < jobs.size(); j++) {
      const Job& job = jobs[j];
      rows_[j] = -1;
      if (r >= job.count) continue;
      rows_[j] = int(batch_.logit_rows.size());
      SeqSlice sl;
      sl.first_row = batch_.num_tokens();
      sl.num_tokens = 1;
      sl.start_pos = job.pos + r;
      sl.block_table = tables_[j].data();
      sl.num_blocks = int(tables_[j].size());
      batch_.seqs.push_back(sl);
      batch_.tokens.push_back(r == 0 ? job.token : job.out[r - 1]);
      batch_.logit_rows.push_back(sl.first_row);
    }
    // The draft's likeliest token (the first of equals) under the request's bans, biases,
    // penalties, thinking budget and grammar: a guess only, so its temperature and top-k / top-p /
    // min-p are left to the model's check.
    if (on_device) {
      for (size_t j = 0; j < jobs.size(); j++)
        if (rows_[j] >= 0) batch_.device_samples.push_back(greedy_sample(jobs[j], j));
      runner_->forward_sampled(batch_, nullptr, draws_, nullptr);
      for (size_t j = 0; j < jobs.size(); j++)
        // -1 (every logit NaN): any token; the model's check turns it down.
        if (rows_[j] >= 0) propose_token(jobs[j], j, r, std::max(0, draws_.tokens[size_t(rows_[j])]));
      continue;
    }
    runner_->forward(batch_, logits_.data());
    for (size_t j = 0; j < jobs.size(); j++) {
      if (rows_[j] < 0) continue;
      float* row = logits_.data() + size_t(rows_[j]) * vocab_;
      if (jobs[j].edits)
        for (const LogitEdit& e : *jobs[j].edits) row[e.token] = e.delta == -kInf ? -kInf : row[e.token] + e.delta;
      bans_.clear();
      walks_[j].moving_bans(bans_, vocab_);
      for (int32_t t : bans_) row[t] = -kInf;
      if (walks_[j].fill_allowed(mask_, vocab_)) grammar::mask_logits(mask_.data(), row, vocab_);
      if (jobs[j].penalties) Sampler::apply_penalties(row, *jobs[j].penalties, jobs[j].history->prompt_tokens_sorted, counts_[j]);
      propose_token(jobs[j], j, r, int32_t(std::max_element(row, row + vocab_) - row));
    }
  }
}

DeviceSample DraftModel::greedy_sample(const Job& job, size_t j) {
  DeviceSample d;
  d.logit_row = rows_[j];
  d.temperature = 0.f;
  bans_.clear();
  walks_[j].moving_bans(bans_, vocab_);
  if (!bans_.empty()) {
    // This round's bans with the fixed edits, merged as one row's list after the fixed lists.
    merge_scratch_.clear();
    for (int32_t t : bans_) merge_scratch_.push_back(LogitEdit{t, -kInf});
    if (job.edits) merge_scratch_.insert(merge_scratch_.end(), job.edits->begin(), job.edits->end());
    d.edit_begin = int(batch_.logit_edits.size());
    append_merged(merge_scratch_, batch_.logit_edits);
    d.edit_count = int(batch_.logit_edits.size()) - d.edit_begin;
  } else if (job.edits) {
    d.edit_begin = fixed_at_[j].first;
    d.edit_count = int(job.edits->size());
  }
  if (walks_[j].fill_allowed(mask_, vocab_)) {
    d.mask = int(batch_.masks.size() / mask_.size());
    batch_.masks.insert(batch_.masks.end(), mask_.begin(), mask_.end());
  }
  if (!job.penalties) return d;
  d.repetition_penalty = job.penalties->repetition_penalty;
  d.presence_penalty = job.penalties->presence_penalty;
  d.frequency_penalty = job.penalties->frequency_penalty;
  d.prompt_begin = fixed_at_[j].second;
  d.prompt_count = int(job.history->prompt_tokens_sorted.size());
  d.output_begin = int(batch_.penalty_output_counts.size() / 2);
  d.output_count = int(counts_[j].size());
  for (const auto& [token, count] : counts_[j]) {
    batch_.penalty_output_counts.push_back(token);
    batch_.penalty_output_counts.push_back(count);
  }
  return d;
}

void DraftModel::propose_token(const Job& job, size_t j, int r, int32_t drawn) {
  const int32_t forced = walks_[j].forced();
  const int32_t token = forced >= 0 ? forced : drawn;
  job.out[r] = token;
  walks_[j].advance(token);
  if (!job.penalties) return;
  // The next proposal's history holds this one, as the model's check will have drawn it.
  auto& counts = counts_[j];
  auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& kv) { return kv.first == token; });
  if (it == counts.end()) counts.emplace_back(token, 1);
  else it->second++;
}

void DraftModel::mirror(const StepBatch& batch) {
  // The step's tokens alone: no logit rows, so no runner computes the draft's head over the
  // model's rows (a large share of a small draft's bytes: Qwen3-0.6B's tied head is 0.31 of its
  // 1.19 GB), and nothing comes back. The model's LoRA adapters are shaped for the model, not the
  // draft: the draft runs as it is (its guesses are the base draft's; the model's check keeps every
  // output the adapter's).
  mirror_.tokens = batch.tokens;
  mirror_.seqs = batch.seqs;
  for (SeqSlice& s : mirror_.seqs) s.lora = nullptr;
  runner_->forward(mirror_, nullptr);
}

}  // namespace grpst
