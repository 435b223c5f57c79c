// Chooses the model runner for LoadOptions.device: "cpu", "cuda", or "auto" (CUDA when this build
// has the CUDA backend and a GPU is visible, else CPU). For CUDA the KV pool is sized the way
// TensorRT-LLM sizes it: free GPU memory after the weights and activations times
// kvCacheFreeMemFraction (default 0.9), unless maxTokensInPagedKvCache or kvCacheBytes fix it.
#pragma once
#include <memory>
#include <string>

#include "grpst/engine.h"
#include "grpst/model_runner.h"

namespace grpst {

/** "cpu", "cuda" or "auto"; anything else throws Error naming the choices. */
void check_device_name(const std::string& device);
/** Whether this build includes the CUDA backend. */
bool built_with_cuda();
/** Free memory of GPU `device` in bytes, or -1 without the CUDA backend (tests: a failed load frees what it took). */
int64_t gpu_free_memory_bytes(int device);

/**
 * Whether make_runner_for_device builds a CUDA runner for `device` (`in_process_group`: a
 * tensor-parallel group whose ranks all run in this process, which runs on the CPU). Asked before
 * the weights are loaded, to load them for an upload (runtime/weights_on_gpu.h).
 */
bool builds_cuda_runner(const std::string& device, bool in_process_group);

/**
 * The runner for `device`; may change ro.kv.num_blocks (CUDA: sized from free GPU memory). With
 * `tp` on (a device group), the runner is that rank's shard on GPU `tp.shard.rank`. A CUDA runner
 * keeps no reference to `store` (a CPU runner computes from it): hand it over (std::move) so the
 * host copy of the weights is released once they are on the GPU.
 */
std::unique_ptr<ModelRunner> make_runner_for_device(const std::string& device, const ModelConfig& cfg,
                                                    std::shared_ptr<TensorStore> store, const CpuRunnerOptions& cpu,
                                                    const EngineOptions& eo, ResolvedEngineOptions& ro,
                                                    const TensorParallel& tp = {});

/**
 * The runner of a speculative-decoding draft model for `model`'s engine: on the model's device
 * (a CUDA model gets a CUDA draft, which re-sizes ro.kv.num_blocks so that the model's pool and
 * the draft's mirror of it share the GPU's free memory), else on the CPU. Hand `store` over.
 */
std::unique_ptr<ModelRunner> make_draft_runner(const ModelRunner& model, const ModelConfig& cfg,
                                               std::shared_ptr<TensorStore> store, const CpuRunnerOptions& cpu,
                                               const EngineOptions& eo, ResolvedEngineOptions& ro);

}  // namespace grpst
