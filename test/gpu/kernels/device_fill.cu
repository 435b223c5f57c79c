#include <cuda_fp8.h>

#include "device_fill.h"

namespace harness {
namespace {

__device__ __forceinline__ uint64_t mix(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ float unit(uint64_t h) { return static_cast<float>(h >> 40) / 16777216.f * 2.f - 1.f; }

__global__ void fill_bf16_kernel(grpst::cuda::bf16* p, size_t n, float scale, float offset, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16_rn(unit(mix(seed ^ i)) * scale + offset);
}
__global__ void fill_f32_kernel(float* p, size_t n, float scale, float offset, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = unit(mix(seed ^ i)) * scale + offset;
}
__global__ void fill_bytes_kernel(uint64_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = mix(seed ^ i);
}
__global__ void fill_e4m3_kernel(uint8_t* p, size_t n, float scale, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(unit(mix(seed ^ i)) * scale, __NV_SATFINITE, __NV_E4M3));
}
__global__ void fill_i32_kernel(int32_t* p, size_t n, int32_t v) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x)
    p[i] = v;
}
constexpr int kBlocks = 132 * 8;

}  // namespace

void fill_bf16(grpst::cuda::bf16* p, size_t n, float scale, float offset, uint64_t seed) {
  fill_bf16_kernel<<<kBlocks, 256>>>(p, n, scale, offset, seed * 0x100000001B3ull);
}
void fill_f32(float* p, size_t n, float scale, float offset, uint64_t seed) {
  fill_f32_kernel<<<kBlocks, 256>>>(p, n, scale, offset, seed * 0x100000001B3ull);
}
void fill_bytes(void* p, size_t bytes, uint64_t seed) {
  fill_bytes_kernel<<<kBlocks, 256>>>(static_cast<uint64_t*>(p), bytes / 8, seed * 0x100000001B3ull);
}
void fill_e4m3(uint8_t* p, size_t n, float scale, uint64_t seed) {
  fill_e4m3_kernel<<<kBlocks, 256>>>(p, n, scale, seed * 0x100000001B3ull);
}
void fill_i32(int32_t* p, size_t n, int32_t value) { fill_i32_kernel<<<kBlocks, 256>>>(p, n, value); }

}  // namespace harness
