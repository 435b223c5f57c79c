// Environment switches of the CUDA backend (GRPST_CUDA_*): the measured defaults can be overridden
// to compare kernels and paths in one process (the GPU harness flips them between runs), so they
// are read where they are used, not cached. Host code only.
#pragma once
#include <cstdlib>

namespace grpst::cuda {

// The integer value of an environment variable; `fallback` when it is unset or empty.
inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && v[0] ? std::atoi(v) : fallback;
}

}  // namespace grpst::cuda
