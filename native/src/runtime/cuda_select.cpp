#include "runtime/cuda_select.h"

#include <algorithm>

#include "grpst/common.h"
#include "grpst/draft_model.h"
#ifdef GRPST_WITH_CUDA
#include "runtime/cuda_runner.h"
#endif

namespace grpst {

void check_device_name(const std::string& device) {
  if (device != "cpu" && device != "cuda" && device != "auto")
    throw Error("device \"" + device + "\" is unknown: use \"cpu\", \"cuda\" or \"auto\"");
  if (device == "cuda" && !built_with_cuda())
    throw Error("device \"cuda\" is not available: this build has only the CPU backend (install the CUDA toolkit with "
                "nvcc and cuBLAS, then rebuild with npm run build:native)");
}

bool built_with_cuda() {
#ifdef GRPST_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int64_t gpu_free_memory_bytes(int device) {
#ifdef GRPST_WITH_CUDA
  return cuda_free_memory_bytes(device);
#else
  (void)device;
  return -1;
#endif
}

#ifdef GRPST_WITH_CUDA
namespace {
/** The one rule for the CUDA runner: a visible GPU, a device other than "cpu", and no in-process group. */
bool picks_cuda(const std::string& device, bool in_process_group, bool gpu_visible) {
  return gpu_visible && device != "cpu" && !in_process_group;
}

/** A CUDA runner for the engine's steps as `ro` resolved them, on GPU 0. */
CudaRunnerOptions cuda_runner_options(const CpuRunnerOptions& cpu, const ResolvedEngineOptions& ro) {
  CudaRunnerOptions o;
  o.max_tokens = ro.opts.max_num_tokens;
  o.max_logit_rows = ro.max_logit_rows;
  o.max_seq_len = ro.opts.max_seq_len;
  o.max_batch_size = ro.opts.max_batch_size;
  o.kv_block_size = ro.kv.block_size;
  o.quantization = cpu.quantization;
  o.cancel = cpu.cancel;
  o.observer = cpu.observer;  // calibration (a build's model tool); null when serving
  return o;
}

/**
 * ro.kv.num_blocks from GPU `device`'s free memory now, unless the conf fixed the pool: each token
 * takes `bytes_per_token` (the model's, plus a draft model's mirror of it), and `reserved` bytes
 * are set aside first (a draft's scratch blocks). Called before any pool is allocated.
 */
void size_kv_from_free_gpu_memory(int device, int64_t bytes_per_token, int64_t reserved, const EngineOptions& eo,
                                  ResolvedEngineOptions& ro) {
  if (eo.max_tokens_in_kv > 0 || eo.kv_cache_bytes > 0) return;
  const double frac = eo.kv_free_mem_fraction > 0 ? eo.kv_free_mem_fraction : 0.9;
  if (frac > 1) throw Error("kv_cache_free_gpu_mem_fraction must be at most 1");
  ro.kv_sized_from_bytes = cuda_free_memory_bytes(device) - reserved;
  int64_t tokens = int64_t(double(ro.kv_sized_from_bytes) * frac) / bytes_per_token;
  tokens = std::min<int64_t>(tokens, int64_t(ro.opts.max_batch_size) * ro.opts.max_seq_len);
  const int64_t blocks = tokens / ro.kv.block_size;
  if (blocks < 1)
    throw Error("no GPU memory is left for the KV cache after the weights; use a smaller model, a quantized "
                "engine, or lower maxNumTokens");
  ro.kv.num_blocks = int(std::min<int64_t>(blocks, int64_t(1) << 30));
}
}  // namespace
#endif

bool builds_cuda_runner(const std::string& device, bool in_process_group) {
#ifdef GRPST_WITH_CUDA
  if (device == "cpu" || in_process_group) return false;
  std::string why;  // (the GPU is asked only where the rest allows CUDA)
  return picks_cuda(device, in_process_group, cuda_device_available(&why));
#else
  (void)device;
  (void)in_process_group;
  return false;
#endif
}

std::unique_ptr<ModelRunner> make_runner_for_device(const std::string& device, const ModelConfig& cfg,
                                                    std::shared_ptr<TensorStore> store, const CpuRunnerOptions& cpu,
                                                    const EngineOptions& eo, ResolvedEngineOptions& ro,
                                                    const TensorParallel& tp) {
  check_device_name(device);
  if (cfg.moe.on() && tp.on())
    throw Error("tensor parallelism is not available for Qwen3-MoE engines yet; load the engine without tp_size");
  if (tp.on() && tp.comm->on_device() && (device == "cpu" || !built_with_cuda()))
    throw Error("a tensor-parallel engine across processes runs on GPUs: load it with device \"cuda\" or \"auto\" on a "
                "build with the CUDA backend");
#ifdef GRPST_WITH_CUDA
  std::string why;
  const bool gpu = cuda_device_available(&why);
  if (device == "cuda" && !gpu) throw Error("device \"cuda\" is not available: " + why);
  if (tp.on() && tp.comm->on_device() && !gpu) throw Error("a tensor-parallel engine across processes needs GPUs: " + why);
  if (picks_cuda(device, tp.on() && !tp.comm->on_device(), gpu)) {
    CudaRunnerOptions o = cuda_runner_options(cpu, ro);
    o.tp = tp;
    o.device = tp.on() ? tp.shard.rank : 0;
    auto runner = make_cuda_runner(cfg, *store, o);
    // The weights are on the GPU: the host copy goes now (callers hand the store over), instead
    // of holding the files' size in RAM, or their mapping, for the server's whole life.
    store.reset();
    size_kv_from_free_gpu_memory(o.device, int64_t(runner->kv_bytes_per_token(ro.kv.dtype)), 0, eo, ro);
    return runner;
  }
#endif
  CpuRunnerOptions c = cpu;
  c.tp = tp;
  return make_cpu_runner(cfg, std::move(store), c);
}

std::unique_ptr<ModelRunner> make_draft_runner(const ModelRunner& model, const ModelConfig& cfg,
                                               std::shared_ptr<TensorStore> store, const CpuRunnerOptions& cpu,
                                               const EngineOptions& eo, ResolvedEngineOptions& ro) {
  CpuRunnerOptions c = cpu;
  c.observer = nullptr;  // a draft is never calibrated
#ifdef GRPST_WITH_CUDA
  if (model.device() == "cuda") {
    auto draft = make_cuda_runner(cfg, *store, cuda_runner_options(c, ro));
    store.reset();
    // The model's pool was sized before the draft's weights took their share of the GPU; neither
    // pool is allocated yet, so both are sized again from what is free now: per token the model's
    // bytes and the draft's mirror of them, the draft's scratch blocks set aside first.
    const int64_t draft_bpt = int64_t(draft->kv_bytes_per_token(DraftModel::kv_dtype_for(ro.kv.dtype)));
    const int64_t scratch = int64_t(DraftModel::scratch_blocks(ro.opts.max_batch_size, ro.opts.speculative.num_tokens,
                                                               ro.kv.block_size)) * ro.kv.block_size * draft_bpt;
    size_kv_from_free_gpu_memory(0, int64_t(model.kv_bytes_per_token(ro.kv.dtype)) + draft_bpt, scratch, eo, ro);
    return draft;
  }
#else
  (void)model;
  (void)eo;
  (void)ro;
#endif
  return make_cpu_runner(cfg, std::move(store), c);
}

}  // namespace grpst
