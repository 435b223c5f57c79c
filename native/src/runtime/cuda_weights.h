// Uploads a Qwen3 model's weights (as load_qwen3_weights resolved them from the engine's tensor
// table) to the GPU once: q/k/v fused into one matrix, gate/up interleaved row by row (one
// GEMM yields both, SwiGLU fuses into its epilogue), int8_wo and int4_awq repacked into the
// tensor-core fragment order of linear_skinny.cu, norms kept in fp32. Qwen3-MoE's sparse layers:
// the router (bf16) and the experts in natural row order (bf16; int8_wo, fp8 and int8_sq with a
// scale per row; int4_awq with its groups' scales and zeros), each expert's gate/up interleaved the
// same way and the experts stacked (cuda::MoeWeights).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "grpst/model_config.h"
#include "model/qwen3_weights.h"
#include "runtime/cuda_forward.h"

namespace grpst {

/** Device allocations freed together. Throws Error on failure. */
struct DeviceMemory {
  std::vector<void*> ptrs;
  int64_t bytes = 0;
  void* get(size_t n, const char* what);
  DeviceMemory() = default;
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
  ~DeviceMemory();
};

/** The device copy of `hw`; `decode_bytes` receives the bytes one decode step reads. */
cuda::ModelWeights upload_qwen3(const ModelConfig& cfg, const Qwen3Weights& hw, DeviceMemory& mem,
                                int64_t* decode_bytes, const int32_t* cancel = nullptr);

}  // namespace grpst
