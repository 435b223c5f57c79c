// Embedding gather: one block per token, 16-byte copies.
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

__global__ void embedding_kernel(const int32_t* __restrict__ ids /*[T]*/,
                                 const bf16* __restrict__ table /*[V,H]*/,
                                 bf16* __restrict__ out /*[T,H]*/, int H, int V) {
  griddep_wait();
  griddep_launch_dependents();
  const int t = blockIdx.x;
  const int id = ids[t];
  const bool valid = id >= 0 && id < V;
  const uint4* src = reinterpret_cast<const uint4*>(table + static_cast<size_t>(valid ? id : 0) * H);
  uint4* dst = reinterpret_cast<uint4*>(out + static_cast<size_t>(t) * H);
  for (int i = threadIdx.x; i < H / 8; i += blockDim.x) dst[i] = valid ? src[i] : make_uint4(0, 0, 0, 0);
}

}  // namespace

Status embedding(const int32_t* ids, const bf16* table, bf16* out, int T, int H, int V,
                 const Exec& ex) {
  if (H % 8 != 0) return invalid("embedding", "hidden size must be a multiple of 8");
  return launch("embedding", embedding_kernel, dim3(T), dim3(128), 0, ex, ids, table, out, H, V);
}

}  // namespace grpst::cuda
