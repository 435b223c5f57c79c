// Error status returned by every CUDA launcher and by the CUDA runner: native code never exits;
// the addon turns a failed Status into a JS exception that names the operation.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace grpst::cuda {

struct Status {
  const char* op = nullptr;  // the operation that failed; nullptr means success
  std::string detail;        // the library's own words (cudaGetErrorString, cuBLAS status, a bound)
  int code = 0;

  bool ok() const { return op == nullptr; }
  std::string message() const { return ok() ? std::string("ok") : std::string(op) + ": " + detail; }
};

inline Status ok_status() { return {}; }
Status cuda_error(const char* op, cudaError_t e);
Status invalid(const char* op, const std::string& why);

// How a launcher enqueues its work: the stream and whether kernels may use programmatic
// dependent launch (the next kernel starts while this one drains; see device_utils.cuh).
struct Exec {
  cudaStream_t stream = nullptr;
  bool pdl = false;
};

}  // namespace grpst::cuda

#define GRPST_CUDA_CHECK(op, expr)                                          \
  do {                                                                      \
    cudaError_t grpst_e_ = (expr);                                          \
    if (grpst_e_ != cudaSuccess) return ::grpst::cuda::cuda_error(op, grpst_e_); \
  } while (0)

#define GRPST_TRY(expr)                              \
  do {                                               \
    ::grpst::cuda::Status grpst_s_ = (expr);         \
    if (!grpst_s_.ok()) return grpst_s_;             \
  } while (0)
