// Device helpers shared by the CUDA kernels: bf16/fp8/int8 conversions that match the CPU
// twins' rounding, warp and block reductions, programmatic dependent launch, and one launch
// helper that checks the launch and returns a Status.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "cuda_status.h"

namespace grpst::cuda {

using bf16 = __nv_bfloat16;

// ---- launching ---------------------------------------------------------------------------------

// Launches `kernel` on exec.stream in thread-block clusters of `cluster` blocks (1 x 1 x 1: none;
// the grid must be a multiple of it); with exec.pdl the kernel may begin before its predecessor
// has finished (it must call griddep_wait() before reading what the predecessor wrote).
template <typename... KArgs, typename... Args>
Status launch_clusters(const char* op, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                       const Exec& exec, dim3 cluster, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return ok_status();
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = exec.stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (exec.pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster.x * cluster.y * cluster.z > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster.x;
    attr[n].val.clusterDim.y = cluster.y;
    attr[n++].val.clusterDim.z = cluster.z;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  cudaError_t e = cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
  if (e != cudaSuccess) return cuda_error(op, e);
  return ok_status();
}

template <typename... KArgs, typename... Args>
Status launch(const char* op, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
              const Exec& exec, Args&&... args) {
  return launch_clusters(op, kernel, grid, block, smem, exec, dim3(1, 1, 1), std::forward<Args>(args)...);
}

// Raises a kernel's dynamic shared-memory limit (needed near and above 48 KB, which static
// shared memory also counts against). Remembers the largest limit set per kernel, so later
// calls, e.g. inside a CUDA graph capture, change nothing.
Status allow_smem_bytes(const char* op, const void* kernel, size_t bytes);
template <typename... KArgs>
Status allow_smem(const char* op, void (*kernel)(KArgs...), size_t bytes) {
  return allow_smem_bytes(op, reinterpret_cast<const void*>(kernel), bytes);
}

// Whether thread-block clusters of `size` blocks (along z) of `kernel`, `threads` threads and
// `smem` dynamic shared-memory bytes each, can be placed on this GPU (a MIG slice or a smaller
// part may not hold one); past 8 blocks, the portable size, it sets the kernel's non-portable
// opt-in first. The kernel's dynamic shared-memory limit must already allow `smem`.
bool cluster_fits(const void* kernel, int size, int threads, size_t smem);
// How many such clusters the GPU holds at once (0: none fit).
int active_clusters(const void* kernel, int size, int threads, size_t smem);

// Programmatic dependent launch. Every kernel launched through launch() calls griddep_wait()
// before it reads what an earlier kernel wrote, and griddep_launch_dependents() only after that
// wait (test/unit/cuda-dependent-launch.test.ts checks the sources). So when a kernel begins,
// the kernel before its predecessor has finished and its writes are visible: what that one or an
// earlier one wrote may be read before the wait (qk_norm_rope_kv's positions, the residual of a
// LinearOut::residual_settled linear), only the predecessor's own writes need the wait.
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// ---- bf16 --------------------------------------------------------------------------------------

__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ float bf16_bits_to_f32(uint16_t b) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}
__device__ __forceinline__ float to_f32(bf16 v) { return __bfloat162float(v); }
// Round-to-nearest-even, NaN kept: the rounding torch applies when it stores a bf16 tensor.
__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 p = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&p);
}

// 8 bf16 in a uint4 -> 8 floats.
__device__ __forceinline__ void unpack8(const uint4& v, float* f) {
  f[0] = bf16_lo(v.x); f[1] = bf16_hi(v.x);
  f[2] = bf16_lo(v.y); f[3] = bf16_hi(v.y);
  f[4] = bf16_lo(v.z); f[5] = bf16_hi(v.z);
  f[6] = bf16_lo(v.w); f[7] = bf16_hi(v.w);
}
__device__ __forceinline__ uint4 pack8(const float* f) {
  return make_uint4(pack_bf16x2(f[0], f[1]), pack_bf16x2(f[2], f[3]), pack_bf16x2(f[4], f[5]),
                    pack_bf16x2(f[6], f[7]));
}

// ---- fp8 e4m3 and int8 storage (KV cache, activations) ----------------------------------------

__device__ __forceinline__ uint8_t f32_to_e4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}
__device__ __forceinline__ float e4m3_to_f32(uint8_t b) {
  __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(b), __NV_E4M3);
  return __half2float(__half(h));
}
__device__ __forceinline__ int8_t f32_to_i8(float v) {
  float r = rintf(v);
  r = fminf(127.f, fmaxf(-127.f, r));
  return static_cast<int8_t>(static_cast<int>(r));
}

// x / d rounded as __fdiv_rn rounds it, given inv = __frcp_rn(d): the product with the rounded
// reciprocal, then one correction from its exact residual (Markstein's step). Where many values
// share a divisor (a row's or a tensor's quantization scale) this is three instructions per value
// instead of a division each. Equal to __fdiv_rn for every normal quotient: checked bit for bit
// on the GPU by the kernel tests (test_elementwise.cu), and on 1.07e9 CPU pairs while writing it.
__device__ __forceinline__ float div_by(float x, float d, float inv) {
  const float q = __fmul_rn(x, inv);
  return __fmaf_rn(__fmaf_rn(-q, d, x), inv, q);
}

// Cache element types. Load8 reads 8 consecutive elements and returns them as floats times
// `scale` (the per-tensor dequantization scale; 1 for bf16); store1 stores round(v / scale).
struct KvBf16 {
  using T = bf16;
  using Raw = uint4;  // 8 elements as loaded
  static constexpr int kBytes = 2;
  __device__ static Raw load_raw(const T* p) { return *reinterpret_cast<const uint4*>(p); }
  __device__ static void convert(const Raw& r, float scale, float* f) { unpack8(r, f); }
  __device__ static void load8(const T* p, float scale, float* f) {
    unpack8(*reinterpret_cast<const uint4*>(p), f);
  }
  __device__ static T store1(float v, float scale) { return __float2bfloat16_rn(v); }
};
struct KvFp8 {
  using T = uint8_t;
  using Raw = uint2;
  static constexpr int kBytes = 1;
  __device__ static Raw load_raw(const T* p) { return *reinterpret_cast<const uint2*>(p); }
  __device__ static void load8(const T* p, float scale, float* f) { convert(load_raw(p), scale, f); }
  __device__ static void convert(const Raw& v, float scale, float* f) {
    const uint32_t w[2] = {v.x, v.y};
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      __half2_raw lo = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w[i] & 0xffff), __NV_E4M3);
      __half2_raw hi = __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w[i] >> 16), __NV_E4M3);
      float2 a = __half22float2(__half2(lo));
      float2 b = __half22float2(__half2(hi));
      f[i * 4 + 0] = a.x * scale; f[i * 4 + 1] = a.y * scale;
      f[i * 4 + 2] = b.x * scale; f[i * 4 + 3] = b.y * scale;
    }
  }
  __device__ static T store1(float v, float scale) { return f32_to_e4m3(__fdiv_rn(v, scale)); }
};
struct KvInt8 {
  using T = int8_t;
  using Raw = uint2;
  static constexpr int kBytes = 1;
  __device__ static Raw load_raw(const T* p) { return *reinterpret_cast<const uint2*>(p); }
  __device__ static void load8(const T* p, float scale, float* f) { convert(load_raw(p), scale, f); }
  __device__ static void convert(const Raw& v, float scale, float* f) {
    const uint32_t w[2] = {v.x, v.y};
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) f[i * 4 + j] = static_cast<float>(static_cast<int8_t>(w[i] >> (8 * j))) * scale;
  }
  __device__ static T store1(float v, float scale) { return f32_to_i8(__fdiv_rn(v, scale)); }
};

// ---- reductions --------------------------------------------------------------------------------

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// `scratch` holds 33 floats; the call contains barriers, so every thread must reach it.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < nwarps ? scratch[lane] : 0.f;
    t = warp_sum(t);
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  return scratch[32];
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < nwarps ? scratch[lane] : -INFINITY;
    t = warp_max(t);
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  return scratch[32];
}

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

}  // namespace grpst::cuda
