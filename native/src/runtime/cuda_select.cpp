#include "runtime/cuda_select.h"

#include <algorithm>

#include "grpst/common.h"
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
    CudaRunnerOptions o;
    o.tp = tp;
    o.device = tp.on() ? tp.shard.rank : 0;
    o.max_tokens = ro.opts.max_num_tokens;
    o.max_logit_rows = ro.max_logit_rows;
    o.max_seq_len = ro.opts.max_seq_len;
    o.max_batch_size = ro.opts.max_batch_size;
    o.kv_block_size = ro.kv.block_size;
    o.quantization = cpu.quantization;
    o.cancel = cpu.cancel;
    o.observer = cpu.observer;  // calibration (a build's model tool); null when serving
    auto runner = make_cuda_runner(cfg, *store, o);
    // The weights are on the GPU: the host copy goes now (callers hand the store over), instead
    // of holding the files' size in RAM, or their mapping, for the server's whole life.
    store.reset();
    if (eo.max_tokens_in_kv <= 0 && eo.kv_cache_bytes <= 0) {
      const double frac = eo.kv_free_mem_fraction > 0 ? eo.kv_free_mem_fraction : 0.9;
      if (frac > 1) throw Error("kv_cache_free_gpu_mem_fraction must be at most 1");
      const int64_t bpt = int64_t(runner->kv_bytes_per_token(ro.kv.dtype));
      int64_t tokens = int64_t(double(cuda_free_memory_bytes(o.device)) * frac) / bpt;
      tokens = std::min<int64_t>(tokens, int64_t(ro.opts.max_batch_size) * ro.opts.max_seq_len);
      const int64_t blocks = tokens / ro.kv.block_size;
      if (blocks < 1)
        throw Error("no GPU memory is left for the KV cache after the weights; use a smaller model, a quantized "
                    "engine, or lower maxNumTokens");
      ro.kv.num_blocks = int(std::min<int64_t>(blocks, int64_t(1) << 30));
    }
    return runner;
  }
#endif
  CpuRunnerOptions c = cpu;
  c.tp = tp;
  return make_cpu_runner(cfg, std::move(store), c);
}

}  // namespace grpst
