#include "cuda_status.h"

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

}  // namespace grpst::cuda
