#include "grpst/engine.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>

#include "grpst/lora.h"
#include "grpst/tensor_store.h"

namespace grpst {

namespace {

constexpr double kDefaultKvMemFraction = 0.3;

/** Memory the OS could give us now (MemAvailable), in bytes. */
int64_t available_memory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t value;
  std::string unit;
  while (f >> key >> value >> unit) {
    if (key == "MemAvailable:") return value * 1024;
  }
  long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * page : int64_t(1) << 30;
}

}  // namespace

ResolvedEngineOptions resolve_engine_options(const EngineOptions& in, const ModelConfig& cfg,
                                             size_t kv_bytes_per_token) {
  ResolvedEngineOptions r;
  EngineOptions& o = r.opts;
  o = in;
  if (o.max_batch_size <= 0) throw Error("maxBatchSize must be at least 1");
  if (o.kv_block_size <= 0 || o.kv_block_size > 1024) throw Error("kvBlockSize must be between 1 and 1024");
  if (o.max_seq_len <= 0) o.max_seq_len = cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : 4096;
  if (o.max_seq_len < 2) throw Error("maxSeqLen must be at least 2");
  if (o.max_num_tokens <= 0) throw Error("maxNumTokens must be at least 1");
  const NgramDraftConfig& spec = o.speculative;
  if (spec.num_tokens < 0 || spec.num_tokens > kMaxSpeculativeTokens)
    throw Error("speculativeTokens must be between 0 and " + std::to_string(kMaxSpeculativeTokens));
  if (spec.num_tokens > 0 && (spec.min_n < 1 || spec.max_n < spec.min_n || spec.max_n > kMaxSpeculativeTokens))
    throw Error("promptLookupMin / promptLookupMax must satisfy 1 <= min <= max <= " + std::to_string(kMaxSpeculativeTokens));
  // Every running sequence must be able to decode in one step.
  o.max_num_tokens = std::max(o.max_num_tokens, o.max_batch_size);
  r.max_logit_rows = std::max(256, o.max_batch_size);
  r.kv.block_size = o.kv_block_size;
  r.kv.dtype = parse_kv_dtype(o.kv_dtype);
  set_kv_scales(r.kv, o.kv_scales, cfg.num_layers);
  const int64_t bpt = int64_t(kv_bytes_per_token);
  int64_t tokens;
  if (o.max_tokens_in_kv > 0) {
    tokens = o.max_tokens_in_kv;
  } else if (o.kv_cache_bytes > 0) {
    tokens = o.kv_cache_bytes / bpt;
  } else {
    const double frac = o.kv_free_mem_fraction > 0 ? o.kv_free_mem_fraction : kDefaultKvMemFraction;
    if (frac > 1) throw Error("kv_cache_free_gpu_mem_fraction must be at most 1");
    tokens = int64_t(double(available_memory()) * frac) / bpt;
    // More than every sequence at full length is never needed.
    tokens = std::min<int64_t>(tokens, int64_t(o.max_batch_size) * o.max_seq_len);
  }
  const int64_t blocks = tokens / o.kv_block_size;
  if (blocks < 1)
    throw Error("the KV cache would hold no block of " + std::to_string(o.kv_block_size) +
                " tokens; raise max_tokens_in_paged_kv_cache / kv_cache_bytes (inference conf), or leave both unset to size it from free memory");
  if (blocks > (int64_t(1) << 30)) throw Error("KV cache size is absurdly large");
  r.kv.num_blocks = int(blocks);
  return r;
}

namespace {
// A CPU runner's own threads wait while a step's rows are read, so as many of them (up to 8) read
// rows; where the runner samples on its device only the rows that need the host come back, and 8
// threads of the machine's cores are plenty (a row is 0.1-0.5 ms of work).
int sampling_threads(const EngineOptions& o, const ModelRunner& runner) {
  if (o.sampling_threads > 0) return o.sampling_threads;
  const int available = runner.samples_on_device() ? int(std::thread::hardware_concurrency()) : runner.threads();
  return std::clamp(available, 1, 8);
}

std::unique_ptr<DraftModel> make_draft(std::unique_ptr<ModelRunner> draft, const ModelRunner& runner,
                                       const ResolvedEngineOptions& ro) {
  if (!draft) return nullptr;
  if (ro.opts.speculative.num_tokens <= 0) throw Error("a draft model was given without num_speculative_tokens");
  // Each step runs on both, one after the other: a CPU draft beside a GPU model would hold the GPU idle.
  if (runner.device() != draft->device())
    throw Error("the draft model runs on " + draft->device() + " but the model on " + runner.device() +
                "; load both on one device");
  return std::make_unique<DraftModel>(std::move(draft), runner.config(), ro.kv, ro.opts.max_batch_size,
                                      ro.opts.speculative.num_tokens, ro.opts.max_seq_len);
}
}  // namespace

Engine::Engine(std::unique_ptr<ModelRunner> runner, const ResolvedEngineOptions& ro, SamplerMath math,
               const std::string& quantization, EventSink sink, std::unique_ptr<ModelRunner> draft)
    : runner_(std::move(runner)),
      ro_(ro),
      draft_(make_draft(std::move(draft), *runner_, ro)),
      blocks_(ro.kv.num_blocks, ro.kv.block_size, ro.opts.prefix_caching),
      samplers_(math, sampling_threads(ro.opts, *runner_)),
      scheduler_(SchedulerConfig{ro.opts.max_batch_size, ro.opts.max_num_tokens, ro.max_logit_rows,
                                 ro.opts.max_seq_len, runner_->config().vocab_size, runner_->samples_on_device(),
                                 ro.opts.priority_scheduling, ro.opts.speculative, draft_.get()},
                 blocks_, samplers_),
      sink_(std::move(sink)) {
  runner_->allocate_kv(ro_.kv);
  info_.device = runner_->device();
  info_.kernels = runner_->kernels();
  info_.quantization = quantization.empty() ? "none" : quantization;
  info_.kv_dtype = kv_dtype_name(ro_.kv.dtype);
  info_.scheduling_policy = ro_.opts.priority_scheduling ? "priority" : "fcfs";
  info_.threads = runner_->threads();
  info_.lora = runner_->supports_lora();
  info_.sampling_threads = samplers_.size();
  info_.max_batch_size = ro_.opts.max_batch_size;
  info_.max_seq_len = ro_.opts.max_seq_len;
  info_.max_num_tokens = ro_.opts.max_num_tokens;
  info_.speculative = ro_.opts.speculative;
  if (ro_.opts.speculative.num_tokens > 0) info_.speculative_method = draft_ ? "draft_model" : "ngram";
  if (draft_) {
    info_.draft_kv_bytes = draft_->kv_bytes();
    info_.draft_kv_bytes_per_token = int64_t(draft_->runner().kv_bytes_per_token(DraftModel::kv_dtype_for(ro_.kv.dtype)));
    info_.draft_weight_bytes_per_step = draft_->runner().weight_bytes_per_step();
    info_.draft_device = draft_->runner().device();
    info_.draft_samples_on_device = draft_->runner().samples_on_device();
  }
  info_.vocab_size = runner_->config().vocab_size;
  info_.hidden_size = runner_->config().hidden_size;
  info_.kv_blocks = ro_.kv.num_blocks;
  info_.kv_block_size = ro_.kv.block_size;
  info_.weight_bytes_per_step = runner_->weight_bytes_per_step();
  info_.kv_bytes_per_token = int64_t(runner_->kv_bytes_per_token(ro_.kv.dtype));
  info_.kv_sized_from_bytes = ro_.kv_sized_from_bytes;
  publish_stats();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::submit(Request req) {
  if (req.lora) {
    if (!runner_->supports_lora())
      throw Error("LoRA adapters are served by a single process (tensor_parallel_size 1, on the CPU or one GPU); "
                  "this engine runs with tensor parallelism: serve the adapter with tensor_parallel_size 1, or build "
                  "an engine with it merged (grpst build --merge_lora)");
    if (!(req.lora->shape == LoraShape::of(runner_->config())))
      throw Error("this LoRA adapter was made for a model of another shape (layers, hidden or intermediate size); "
                  "serve it with the base model it was trained on");
  }
  auto seq = std::make_unique<Sequence>();
  seq->num_prompt = int(req.prompt.size());
  seq->tokens = req.prompt;
  samplers_.primary().init_state(req, seq->sampler);
  if (req.constraint) seq->constraint = req.constraint->start_for(req);
  seq->think = think_start(req);
  seq->req = std::move(req);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) throw Error("the engine is closed");
    incoming_.push_back(std::move(seq));
  }
  wake_.notify_one();
}

void Engine::cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

void Engine::shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  });
}

EngineStats Engine::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Engine::publish_stats() {
  EngineStats s;
  s.running = scheduler_.num_running();
  s.waiting = scheduler_.num_waiting();
  s.kv_blocks_total = blocks_.num_blocks();
  s.kv_blocks_used = blocks_.num_used();
  s.kv_block_size = blocks_.block_size();
  const SchedulerCounters& c = scheduler_.counters();
  s.prefix_hit_tokens = c.prefix_hit_tokens;
  s.prefix_query_tokens = c.prefix_query_tokens;
  s.prompt_tokens = c.prompt_tokens;
  s.generated_tokens = c.generated_tokens;
  s.preemptions = c.preemptions;
  s.spec_drafts = c.spec_drafts;
  s.spec_draft_tokens = c.spec_draft_tokens;
  s.spec_accepted_tokens = c.spec_accepted_tokens;
  s.device_drawn_tokens = c.device_drawn_tokens;
  s.device_prompt_rows = c.device_prompt_rows;
  std::lock_guard<std::mutex> lock(mutex_);
  s.steps = stats_.steps;
  s.step_seconds = stats_.step_seconds;
  s.forward_seconds = stats_.forward_seconds;
  s.waiting += int(incoming_.size());
  stats_ = s;
}

namespace {
using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

void Engine::loop() {
  const int vocab = runner_->config().vocab_size;
  AlignedBuffer logits(size_t(ro_.max_logit_rows) * vocab * sizeof(float));
  StepBatch batch;
  DeviceDrawResults draws;  // device-side draws (runners that sample on their device)
  std::vector<float> hidden;  // embedding requests' final-norm rows, [hidden_rows, hidden_size]
  bool stalled = false;  // nothing could be scheduled: wait for new input instead of spinning
  for (;;) {
    std::vector<std::unique_ptr<Sequence>> incoming;
    std::vector<uint64_t> cancels;
    bool stop;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] {
        return stop_ || !incoming_.empty() || !cancels_.empty() || (scheduler_.has_work() && !stalled);
      });
      incoming.swap(incoming_);
      cancels.swap(cancels_);
      stop = stop_;
    }
    const Clock::time_point step_start = Clock::now();
    bool stepped = false;
    double forward_seconds = 0;
    std::vector<SeqEvent> events;
    try {
      for (auto& s : incoming) scheduler_.add(std::move(s));
      if (!incoming.empty()) stalled = false;
      for (uint64_t id : cancels) {
        if (scheduler_.cancel(id, events)) stalled = false;
      }
      if (stop) {
        scheduler_.finish_all(FinishReason::Cancelled, "", events);
        publish_stats();
        if (!events.empty()) sink_(std::move(events));
        return;
      }
      if (scheduler_.has_work() && !stalled) {
        if (scheduler_.schedule(batch, events)) {
          stepped = true;
          // A draft model's proposals ran inside schedule(): forward passes of its runner, not host work.
          const double drafting = draft_ ? draft_->take_propose_seconds() : 0;
          Clock::time_point forward_start = Clock::now(), forward_end = forward_start;
          try {
            const bool on_device = runner_->samples_on_device();
            const float* rows = static_cast<const float*>(logits.ptr);
            if (on_device) {
              rows = runner_->forward_sampled(batch, static_cast<float*>(logits.ptr), draws,
                                              [&] { scheduler_.fill_device_masks(batch); });
            } else {
              runner_->forward(batch, static_cast<float*>(logits.ptr));
            }
            // The draft's cache follows the model's, position for position (draft_model.h).
            if (draft_) draft_->mirror(batch);
            // Embedding requests of this step: their last prompt rows' final-norm output.
            const int H = runner_->config().hidden_size;
            if (!batch.hidden_rows.empty()) {
              hidden.resize(batch.hidden_rows.size() * size_t(H));
              runner_->final_hidden(batch.hidden_rows, hidden.data());
            }
            forward_end = Clock::now();
            scheduler_.complete(rows, events, on_device ? &draws : nullptr, batch.hidden_rows.empty() ? nullptr : hidden.data(), H);
          } catch (const std::exception& e) {
            if (forward_end == forward_start) forward_end = Clock::now();  // the runner threw
            scheduler_.fail_step(std::string("forward pass failed: ") + e.what(), events);
          }
          std::lock_guard<std::mutex> lock(mutex_);
          stats_.steps++;
          forward_seconds = seconds_between(forward_start, forward_end) + drafting;
        } else {
          stalled = true;
        }
      }
    } catch (const std::exception& e) {
      scheduler_.finish_all(FinishReason::Error, std::string("engine error: ") + e.what(), events);
    }
    publish_stats();
    if (!events.empty()) sink_(std::move(events));
    if (stepped) {
      // After the sink: handing the events on is host work between two forward passes too. Both
      // counters move together, so a reading never has a step's forward time without its step.
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.step_seconds += seconds_between(step_start, Clock::now());
      stats_.forward_seconds += forward_seconds;
    }
  }
}

}  // namespace grpst
