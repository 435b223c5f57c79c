#include "cuda_status.h"

#include <mutex>
#include <unordered_map>

namespace grpst::cuda {

Status cuda_error(const char* op, cudaError_t e) {
  Status s;
  s.op = op;
  s.code = static_cast<int>(e);
  s.detail = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")";
  return s;
}

Status invalid(const char* op, const std::string& why) {
  Status s;
  s.op = op;
  s.code = -1;
  s.detail = why;
  return s;
}

// Per kernel, the largest dynamic shared-memory limit set so far.
Status allow_smem_bytes(const char* op, const void* kernel, size_t bytes) {
  static std::mutex mu;
  static std::unordered_map<const void*, size_t> allowed;
  if (bytes <= 40 * 1024) return ok_status();
  std::lock_guard<std::mutex> lock(mu);
  size_t& cur = allowed[kernel];
  if (bytes <= cur) return ok_status();
  const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e != cudaSuccess) return cuda_error(op, e);
  cur = bytes;
  return ok_status();
}

}  // namespace grpst::cuda
