// The CUDA ModelRunner: the same model interface as the CPU runner, on one NVIDIA GPU. Weights
// are uploaded once (bf16 and every quantized format, repacked for the GPU kernels where that
// pays), the paged KV cache lives in device memory, decode steps replay CUDA graphs bucketed by
// batch size and context length, and no host synchronization happens inside a step (the one
// sync is the copy of the logits the scheduler needs).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "grpst/forward_observer.h"
#include "grpst/model_runner.h"
#include "grpst/tensor_parallel.h"

namespace grpst {

struct CudaRunnerOptions {
  int device = 0;
  const int32_t* cancel = nullptr;  // CpuRunnerOptions::cancel: checked between layers of the upload
  int max_tokens = 512;      // tokens per step
  int max_logit_rows = 256;
  int max_seq_len = 4096;
  int max_batch_size = 16;   // sequences per step (block-table rows)
  int kv_block_size = 16;
  std::string quantization;  // engine scheme: none/full_prec, int8_wo, int4_awq, fp8, int8_sq
  bool cuda_graphs = true;   // GRPST_CUDA_GRAPHS=0 turns them off
  TensorParallel tp;         // a rank's shard (comm: a device group); cfg stays the whole model
  // Calibration (a build's model tool): statistics of the steps it is active for, reduced on the
  // GPU and handed over by flush_observer(). Not with tensor parallelism.
  ForwardObserver* observer = nullptr;
};

/** True when a CUDA device is usable; otherwise `why` says what is missing. */
bool cuda_device_available(std::string* why);
/** Free device memory now, in bytes (after the runner's allocations: what the KV pool may use). */
int64_t cuda_free_memory_bytes(int device);

/**
 * Uploads the weights `store` holds and keeps no reference to it: once this returns, the host copy
 * (a mapping, or memory the files were read into) is the caller's to release.
 */
std::unique_ptr<ModelRunner> make_cuda_runner(const ModelConfig& cfg, TensorStore& store, const CudaRunnerOptions& opts);

}  // namespace grpst
