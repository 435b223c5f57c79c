// The CUDA runner's sampling stage: after the forward pass, the rows a step's
// StepBatch::device_samples name are drawn on the GPU (cuda::sample), bans, biases, grammar masks
// and penalties included, with
// their top logprobs where asked (cuda::top_logprobs), and only those travel back; their logits
// rows never leave the device.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "grpst/model_runner.h"
#include "kernels/cuda/kernels.h"
#include "runtime/cuda_weights.h"

namespace grpst {

/** Pinned host memory and a device buffer of the same size, grown (never shrunk) on demand. */
class StagedBuffer {
 public:
  StagedBuffer() = default;
  StagedBuffer(const StagedBuffer&) = delete;
  StagedBuffer& operator=(const StagedBuffer&) = delete;
  ~StagedBuffer() { release(); }
  /**
   * `bytes` of `src` staged and copied to the device on `stream`; returns the device copy. Call
   * only while the stream is idle (a larger size reallocates both buffers).
   */
  const void* upload(const void* src, size_t bytes, cudaStream_t stream, const char* what);
  void release();

 private:
  void reserve(size_t bytes);
  void* host_ = nullptr;
  void* dev_ = nullptr;
  size_t capacity_ = 0;
};

class DeviceDraws {
 public:
  /** Buffers for up to `max_rows` draws over a `vocab`-wide row (the fixed ones from `mem`). */
  void init(int max_rows, int vocab, DeviceMemory& mem);
  void release();
  /**
   * Enqueues the draws of `batch`'s device rows and the reads of its device prompt rows from
   * `logits` [rows, vocab] on `stream`, and their copies back; the results are read by take()
   * once the stream has synchronized. Returns the number of draws.
   */
  int enqueue(const StepBatch& batch, const float* logits, cudaStream_t stream);
  /** The last enqueue's `count` draws and its prompt rows. */
  void take(int count, DeviceDrawResults& out) const;

 private:
  void enqueue_draws(const StepBatch& batch, const float* logits, cudaStream_t stream);
  void enqueue_lists(const StepBatch& batch, const float* logits, cudaStream_t stream);

  int max_rows_ = 0, vocab_ = 0;
  float* work_ = nullptr;                  // [max_rows, vocab] the modified logits
  cuda::SampleParams* params_dev_ = nullptr;
  cuda::SampleParams* params_host_ = nullptr;
  int32_t* tokens_dev_ = nullptr;
  float* logprobs_dev_ = nullptr;
  int32_t* results_host_ = nullptr;        // [tokens | logprob bits], max_rows each
  // Top logprobs: the rows that want them, and [max_rows, kMaxTopLogprobs] tokens and logprobs.
  cuda::TopLogprobsRow* top_rows_dev_ = nullptr;
  cuda::TopLogprobsRow* top_rows_host_ = nullptr;
  int32_t* top_tokens_dev_ = nullptr;
  float* top_logprobs_dev_ = nullptr;
  int32_t* top_host_ = nullptr;            // [tokens | logprob bits], max_rows * kMaxTopLogprobs each
  std::vector<int> top_slot_;              // [draws] the draw's row in the top arrays, -1: none
  // Prompt rows follow the draws' rows in the top arrays, from prompt_first_; their targets'
  // logprobs and ranks are [max_rows] each, at the same rows.
  int prompt_first_ = 0, prompt_rows_ = 0;
  float* target_logprobs_dev_ = nullptr;
  int32_t* target_ranks_dev_ = nullptr;
  int32_t* targets_host_ = nullptr;        // [logprob bits | ranks], max_rows each
  StagedBuffer prompt_tokens_, output_counts_;  // the rows' penalty histories
  StagedBuffer edits_, masks_;                  // their bans and biases, constrained rows' allowed tokens
};

}  // namespace grpst
