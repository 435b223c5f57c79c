// The engine: a model runner, the paged KV cache, the scheduler and the sampler, driven by one
// native thread. Requests and cancels arrive from any thread; every step's outputs leave
// through one callback (the addon forwards them to JS in one call per step or fewer).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpst/block_manager.h"
#include "grpst/draft_model.h"
#include "grpst/model_runner.h"
#include "grpst/request.h"
#include "grpst/sampler.h"
#include "grpst/scheduler.h"

namespace grpst {

struct EngineOptions {
  int max_batch_size = 16;
  int max_num_tokens = 512;
  int max_seq_len = 0;               // 0: the model's max_position_embeddings
  int kv_block_size = 16;
  int64_t max_tokens_in_kv = 0;      // KV pool size, first of these that is set
  int64_t kv_cache_bytes = 0;
  double kv_free_mem_fraction = 0;   // 0: the default fraction of available memory
  std::string kv_dtype = "auto";
  std::vector<float> kv_scales;      // fp8 / int8 cache: [layer][k_scale, v_scale] flattened
  bool prefix_caching = true;
  // vLLM's --scheduling-policy priority: waiting requests are admitted, and running ones keep their
  // KV blocks, in order of (Request::priority, arrival) instead of arrival alone
  bool priority_scheduling = false;
  // vLLM's speculative_config: draft tokens by prompt lookup ({method: ngram}) or from a draft
  // model (the Engine's draft runner), checked in one step
  NgramDraftConfig speculative;
  // Threads that read the host's rows of a step (draws, prompt logprobs); 0: the CPU runner's
  // threads (idle while rows are read), or the machine's cores where the runner samples on its
  // device, up to 8 either way
  int sampling_threads = 0;
  // CPU backend: the rows a GPU would draw on its device are drawn by that sampler's CPU twin
  // instead of the host sampler (the device path's scheduling, tested where no GPU is)
  bool device_sampler_twin = false;
};

/** Defaults filled in and limits checked against the model; KV pool size resolved. */
struct ResolvedEngineOptions {
  EngineOptions opts;
  int max_logit_rows = 256;
  KvCacheSpec kv;
  // The GPU's free bytes (less what was set aside) that kv.num_blocks was sized from; 0 where the
  // conf fixed the pool or it is not on a GPU.
  int64_t kv_sized_from_bytes = 0;
};
ResolvedEngineOptions resolve_engine_options(const EngineOptions& opts, const ModelConfig& cfg,
                                             size_t kv_bytes_per_token);

struct EngineInfo {
  std::string device, kernels, quantization, kv_dtype;
  std::string scheduling_policy;  // "fcfs" or "priority"
  int threads = 0, sampling_threads = 0, max_batch_size = 0, max_seq_len = 0, max_num_tokens = 0, vocab_size = 0, hidden_size = 0;
  int kv_blocks = 0, kv_block_size = 0;
  int64_t weight_bytes_per_step = 0;
  int64_t kv_bytes_per_token = 0;
  int64_t kv_sized_from_bytes = 0;  // ResolvedEngineOptions::kv_sized_from_bytes
  NgramDraftConfig speculative;
  std::string speculative_method;  // "ngram" or "draft_model" (with speculative.num_tokens > 0)
  int64_t draft_kv_bytes = 0;      // the draft model's KV pool
  int64_t draft_kv_bytes_per_token = 0;  // its mirror of one token (the pool also holds scratch blocks)
  int64_t draft_weight_bytes_per_step = 0;
  std::string draft_device;               // where the draft runs: the model's device
  bool draft_samples_on_device = false;   // its greedy proposals drawn there (no logits to the host)
  bool lora = false;  // requests may carry LoRA adapters (ModelRunner::supports_lora)
};

struct EngineStats {
  int running = 0, waiting = 0;
  int kv_blocks_total = 0, kv_blocks_used = 0, kv_block_size = 0;
  uint64_t prefix_hit_tokens = 0, prefix_query_tokens = 0, prompt_tokens = 0, generated_tokens = 0;
  uint64_t steps = 0, preemptions = 0;
  uint64_t spec_drafts = 0, spec_draft_tokens = 0, spec_accepted_tokens = 0;
  uint64_t device_drawn_tokens = 0;  // drawn by the runner on its device, not by the host sampler
  uint64_t device_prompt_rows = 0;   // prompt logprob rows the runner read on its device
  // Wall time of the loop's steps, from taking the step's input to handing its events on, and the
  // part of it inside the runners (forward pass, final-norm rows, a draft model's mirror and
  // proposals, which the schedule runs). The rest is host
  // work between two forward passes (scheduling, stop checks, events), time a GPU sits idle.
  double step_seconds = 0, forward_seconds = 0;
};

class Engine {
 public:
  using EventSink = std::function<void(std::vector<SeqEvent>&&)>;

  /**
   * `draft`: with speculative decoding by a draft model (opts.speculative.num_tokens > 0), its
   * runner (DraftModel); null for prompt lookup or none.
   */
  Engine(std::unique_ptr<ModelRunner> runner, const ResolvedEngineOptions& ro, SamplerMath math,
         const std::string& quantization, EventSink sink, std::unique_ptr<ModelRunner> draft = nullptr);
  ~Engine();

  /** Queues a request; its events arrive through the sink. Thread-safe. */
  void submit(Request req);
  /** Cancels at the next step boundary (a cancelled event follows). Thread-safe. */
  void cancel(uint64_t id);
  /** Finishes everything as cancelled and stops the loop thread (waits for the current step). */
  void shutdown();

  EngineStats stats() const;
  const EngineInfo& info() const { return info_; }

 private:
  void loop();
  void publish_stats();

  std::unique_ptr<ModelRunner> runner_;
  ResolvedEngineOptions ro_;
  EngineInfo info_;
  std::unique_ptr<DraftModel> draft_;  // before scheduler_, which holds a pointer to it
  BlockManager blocks_;
  HostSamplers samplers_;
  Scheduler scheduler_;
  EventSink sink_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Sequence>> incoming_;
  std::vector<uint64_t> cancels_;
  bool stop_ = false;
  EngineStats stats_;
  std::thread thread_;
  std::once_flag shutdown_once_;
};

}  // namespace grpst
