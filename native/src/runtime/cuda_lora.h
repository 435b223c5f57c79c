// The CUDA runner's LoRA adapters: device copies of the adapters its steps run (uploaded on first
// use, the least recently used freed past kMaxResidentLoras), the per-row adapter table the
// kernels read (kernels/cuda/lora.h) and the scratch between A and B. The table and the scratch
// keep their addresses from step to step, so a decode graph captured with adapters replays with
// any mix of them; only a scratch that must grow for a higher rank moves (prepare() says so, and
// the runner captures its graphs again).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "grpst/lora.h"
#include "kernels/cuda/lora.h"

namespace grpst {

/** Adapters kept on the GPU between steps (each the size of its A and B in bf16). */
inline constexpr int kMaxResidentLoras = 8;

class CudaLoraAdapters {
 public:
  explicit CudaLoraAdapters(int max_tokens) : max_tokens_(max_tokens) {}
  ~CudaLoraAdapters();
  CudaLoraAdapters(const CudaLoraAdapters&) = delete;
  CudaLoraAdapters& operator=(const CudaLoraAdapters&) = delete;

  /**
   * Readies a step whose token row m runs adapter rows[m] (null: the base model), for rows
   * [0, rows.size()) in execution order: uploads adapters not on the GPU yet and copies the row
   * table on `stream` (ordered before the step's kernels). Call it with the stream idle (between
   * steps): evicting an adapter frees its memory. Returns true when the scratch moved (graphs
   * captured before read the old one). Throws Error when the GPU has no room for an adapter.
   */
  bool prepare(const std::vector<const LoraAdapter*>& rows, cudaStream_t stream);
  /** What the forward pass reads for the step prepare() readied. */
  cuda::LoraStep step() const { return cuda::LoraStep{dev_rows_, t_, max_rank_}; }

 private:
  struct Resident {
    uint64_t key = 0;                   // LoraAdapter::cache_key
    void* mem = nullptr;                // the table, then every A and B
    const cuda::LoraProj* table = nullptr;  // [layers][kLoraTargetCount] inside mem
    int max_rank = 0;
    uint64_t last_step = 0;
  };
  // The adapter's device copy, uploaded (and the least recently used evicted) if it has none.
  const Resident& resident(const LoraAdapter& a);
  void upload(const LoraAdapter& a, Resident* r);
  void evict_one();

  int max_tokens_;
  uint64_t step_ = 0;
  std::vector<Resident> resident_;
  const cuda::LoraProj** host_rows_ = nullptr;  // pinned [max_tokens]
  const cuda::LoraProj** dev_rows_ = nullptr;   // [max_tokens]
  float* t_ = nullptr;                          // [max_tokens, 3, max_rank_]
  int max_rank_ = 0;
};

}  // namespace grpst
