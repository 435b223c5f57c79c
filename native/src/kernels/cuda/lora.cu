// LoRA on the GPU: A x per (row, target) in one block (the shrink), then B (A x) added to the
// projection's output per (row, block of 256 outputs, target) (the expand). Rows without an
// adapter, and targets an adapter leaves out, return at once, so the launches have the same shape
// whatever the step's mix (a CUDA graph captures them once).
#include "device_utils.cuh"
#include "lora.h"

namespace grpst::cuda {
namespace {

constexpr int kShrinkThreads = 256;  // 8 warps, one rank each
constexpr int kExpandThreads = 256;  // one output column per thread

__device__ __forceinline__ const LoraProj* lora_proj(const LoraStep& s, int row, int layer, int target) {
  const LoraProj* table = s.rows[row];
  if (table == nullptr) return nullptr;
  const LoraProj* p = table + static_cast<size_t>(layer) * kLoraTargetCount + target;
  return p->rank > 0 ? p : nullptr;
}

// grid (M, site.count, ceil(max_rank / 8)): t[m, i, r] = sum_k x[m, k] A_i[r, k] in fp32, one
// rank per warp (ranks spread over blocks: a decode step's few rows still fill many SMs).
__global__ void __launch_bounds__(kShrinkThreads) lora_shrink_kernel(LoraStep s, int layer, LoraSite site,
                                                                     const bf16* __restrict__ x) {
  griddep_wait();
  griddep_launch_dependents();
  const int row = blockIdx.x, i = blockIdx.y;
  const LoraProj* p = lora_proj(s, row, layer, site.first_target + i);
  const int lane = threadIdx.x & 31, r = blockIdx.z * (kShrinkThreads / 32) + (threadIdx.x >> 5);
  if (p == nullptr || r >= p->rank) return;
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<size_t>(row) * site.in);
  float* t = s.t + (static_cast<size_t>(row) * 3 + i) * s.max_rank;
  const uint4* ar = reinterpret_cast<const uint4*>(p->a + static_cast<size_t>(r) * site.in);
  float acc = 0.f;
  for (int c = lane; c < site.in / 8; c += 32) {
    float xf[8], af[8];
    unpack8(xr[c], xf);
    unpack8(ar[c], af);
#pragma unroll
    for (int j = 0; j < 8; ++j) acc = fmaf(xf[j], af[j], acc);
  }
  acc = warp_sum(acc);
  if (lane == 0) t[r] = acc;
}

// grid (M, ceil(max out / 256), site.count): one output column per thread, sum_r t[r] B[j, r] in
// fp32, then y = bf16(y + scale * sum). t of the (row, target) is staged in shared memory.
__global__ void __launch_bounds__(kExpandThreads) lora_expand_kernel(LoraStep s, int layer, LoraSite site,
                                                                     bf16* __restrict__ y, int64_t ldy) {
  extern __shared__ float t_s[];  // [rank]
  griddep_wait();
  griddep_launch_dependents();
  const int row = blockIdx.x, i = blockIdx.z;
  const LoraProj* p = lora_proj(s, row, layer, site.first_target + i);
  if (p == nullptr) return;
  const int R = p->rank, j0 = blockIdx.y * kExpandThreads;
  if (j0 >= site.out[i]) return;  // (the whole block: before its barrier)
  const float* t = s.t + (static_cast<size_t>(row) * 3 + i) * s.max_rank;
  for (int r = threadIdx.x; r < R; r += kExpandThreads) t_s[r] = t[r];
  __syncthreads();
  const int j = j0 + threadIdx.x;
  if (j >= site.out[i]) return;
  // B's block of 64 outputs holds j at [r][j % 64]: consecutive threads read consecutive entries.
  const bf16* b = p->bt + static_cast<size_t>(j / kLoraBlockCols) * R * kLoraBlockCols + j % kLoraBlockCols;
  float acc = 0.f;
  for (int r = 0; r < R; ++r) acc = fmaf(t_s[r], __bfloat162float(b[static_cast<size_t>(r) * kLoraBlockCols]), acc);
  bf16* out = y + static_cast<size_t>(row) * ldy + site.offset[i] + static_cast<int64_t>(j) * site.stride;
  *out = __float2bfloat16_rn(__bfloat162float(*out) + p->scale * acc);
}

}  // namespace

Status lora_add(const LoraStep& step, int layer, const LoraSite& site, const bf16* x, bf16* y, int64_t ldy, int M,
                const Exec& ex) {
  if (step.rows == nullptr || M <= 0) return ok_status();
  if (site.count < 1 || site.count > 3 || site.in % 8 != 0)
    return invalid("lora_add", "a site takes 1 to 3 targets over an input width that is a multiple of 8");
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) return invalid("lora_add", "x must be 16-byte aligned");
  int max_out = 0;
  for (int i = 0; i < site.count; ++i) max_out = site.out[i] > max_out ? site.out[i] : max_out;
  const int rank_blocks = (step.max_rank + kShrinkThreads / 32 - 1) / (kShrinkThreads / 32);
  GRPST_TRY(launch("lora_shrink", lora_shrink_kernel, dim3(M, site.count, rank_blocks), dim3(kShrinkThreads), 0, ex, step,
                   layer, site, x));
  const size_t smem = static_cast<size_t>(step.max_rank) * 4;
  GRPST_TRY(allow_smem("lora_expand", lora_expand_kernel, smem));
  return launch("lora_expand", lora_expand_kernel, dim3(M, (max_out + kExpandThreads - 1) / kExpandThreads, site.count),
                dim3(kExpandThreads), smem, ex, step, layer, site, y, ldy);
}

}  // namespace grpst::cuda
