// Helpers shared by the linear_<format>.cpp files of the quantized formats: typed tensor lookups
// that name the tensor and the expected layout on a mismatch, and per-thread scratch.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "grpst/common.h"
#include "grpst/tensor_store.h"

namespace grpst::quant {

/** The raw bytes of `name` after checking its dtype and shape. */
inline const void* tensor(TensorStore& store, const std::string& name, DType dtype, std::vector<int64_t> shape) {
  const TensorDesc& d = store.desc(name);
  if (d.dtype != dtype || d.shape != shape) {
    std::string want, got;
    for (auto s : shape) want += (want.empty() ? "" : ",") + std::to_string(s);
    for (auto s : d.shape) got += (got.empty() ? "" : ",") + std::to_string(s);
    throw Error("tensor " + name + " is " + dtype_name(d.dtype) + " [" + got + "], expected " + dtype_name(dtype) + " [" +
                want + "] (engine folder damaged or built by another grpst?)");
  }
  return store.raw(name);
}

/** Weight rows decoded per block: about 256 KiB of fp32, a multiple of 4 rows. */
inline int block_rows(int K) { return std::max(4, std::min(64, (65536 / std::max(K, 1)) / 4 * 4)); }

/** Per-thread scratch that grows to the largest request and stays. */
template <typename T>
T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace grpst::quant
