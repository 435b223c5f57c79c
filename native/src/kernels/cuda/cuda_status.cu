#include "cuda_status.h"

#include <map>
#include <mutex>
#include <tuple>
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

// Asked once per (kernel, cluster size, block shape) and remembered: runner threads share it, and
// later calls (e.g. inside a graph capture) ask nothing.
int active_clusters(const void* kernel, int size, int threads, size_t smem) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int, int, size_t>, int> known;
  std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_tuple(kernel, size, threads, smem);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  bool fits = size <= 8 || cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess;
  int clusters = 0;
  if (fits) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(1, 1, size);
    cfg.blockDim = dim3(threads);
    cfg.dynamicSmemBytes = smem;
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 1;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = size;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    fits = cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) == cudaSuccess && clusters > 0;
  }
  if (!fits) cudaGetLastError();  // a refusal is an answer, not an error for the next launch
  const int count = fits ? clusters : 0;
  known.emplace(key, count);
  return count;
}

bool cluster_fits(const void* kernel, int size, int threads, size_t smem) {
  return active_clusters(kernel, size, threads, smem) > 0;
}

}  // namespace grpst::cuda
