// LoRA on the GPU: A x per (row, target, 8 ranks) (the shrink), then B (A x) added to the
// projection's output per (row, block of 256 outputs, target) (the expand); for gate_up the
// expand also applies the SwiGLU, over every row. Rows without an adapter, and targets an adapter
// leaves out, return at once, so the launches have the same shape whatever the step's mix (a
// CUDA graph captures them once). Two kernels per projection.
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

// grid (M, site.count, ceil(max_rank / 8)): t[m, i, r] = sum_k a(x)[m, k] A_i[r, k] in fp32, one
// rank per warp (ranks spread over blocks: a decode step's few rows still fill many SMs). With
// norm_w, a(x) is x's RMSNorm as rmsnorm() rounds it: bf16(w * bf16(x * rstd)); the block sums
// the row's squares itself (the row is a few KB: cheaper than a kernel of its own).
__global__ void __launch_bounds__(kShrinkThreads) lora_shrink_kernel(LoraStep s, int layer, LoraSite site,
                                                                     const bf16* __restrict__ x,
                                                                     const float* __restrict__ norm_w, float eps) {
  __shared__ float scratch[33];
  griddep_wait();
  griddep_launch_dependents();
  const int row = blockIdx.x, i = blockIdx.y;
  const LoraProj* p = lora_proj(s, row, layer, site.first_target + i);
  const int lane = threadIdx.x & 31, r = blockIdx.z * (kShrinkThreads / 32) + (threadIdx.x >> 5);
  if (p == nullptr || static_cast<int>(blockIdx.z) * (kShrinkThreads / 32) >= p->rank) return;  // (whole blocks)
  const uint4* xr = reinterpret_cast<const uint4*>(x + static_cast<size_t>(row) * site.in);
  const int chunks = site.in / 8;
  float rstd = 1.f;
  if (norm_w) {
    float ss = 0.f;
    for (int c = threadIdx.x; c < chunks; c += kShrinkThreads) {
      float f[8];
      unpack8(xr[c], f);
#pragma unroll
      for (int j = 0; j < 8; ++j) ss = fmaf(f[j], f[j], ss);
    }
    rstd = rsqrtf(block_sum(ss, scratch) / static_cast<float>(site.in) + eps);
  }
  if (r >= p->rank) return;
  const uint4* ar = reinterpret_cast<const uint4*>(p->a + static_cast<size_t>(r) * site.in);
  float acc = 0.f;
  for (int c = lane; c < chunks; c += 32) {
    float xf[8], af[8];
    unpack8(xr[c], xf);
    unpack8(ar[c], af);
    if (norm_w) {
      const float4 w0 = reinterpret_cast<const float4*>(norm_w)[2 * c], w1 = reinterpret_cast<const float4*>(norm_w)[2 * c + 1];
      const float wf[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) xf[j] = round_bf16(wf[j] * round_bf16(xf[j] * rstd));
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) acc = fmaf(xf[j], af[j], acc);
  }
  acc = warp_sum(acc);
  if (lane == 0) s.t[(static_cast<size_t>(row) * 3 + i) * s.max_rank + r] = acc;
}

// sum_r t[r] B[j, r] in fp32 for output j of a projection, t staged in shared memory. B's block of
// 64 outputs holds j at [r][j % 64]: consecutive threads read consecutive entries. The adapter
// does not stay in the L2, so each load waits out DRAM's latency: eight are issued before the
// first is used, into four sums. Decode step with one adapter against the base step, rank 16 /
// 64: one dependent load per rank 1.69x / 2.51x at batch 1, 1.82x / 3.26x at 64 (an H200); eight
// in flight 1.38x / 1.57x and 1.47x / 1.93x (an H100; docs/benchmarks.md "LoRA adapters").
__device__ __forceinline__ float lora_column(const LoraProj& p, const float* t_s, int j) {
  const bf16* b = p.bt + static_cast<size_t>(j / kLoraBlockCols) * p.rank * kLoraBlockCols + j % kLoraBlockCols;
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  int r = 0;
  for (; r + 8 <= p.rank; r += 8) {
    bf16 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = b[static_cast<size_t>(r + i) * kLoraBlockCols];
#pragma unroll
    for (int i = 0; i < 8; ++i) acc[i % 4] = fmaf(t_s[r + i], __bfloat162float(v[i]), acc[i % 4]);
  }
  for (; r < p.rank; ++r) acc[0] = fmaf(t_s[r], __bfloat162float(b[static_cast<size_t>(r) * kLoraBlockCols]), acc[0]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// grid (M, ceil(max out / 256), site.count): y = bf16(y + scale * B (A x)), one output per thread.
__global__ void __launch_bounds__(kExpandThreads) lora_expand_kernel(LoraStep s, int layer, LoraSite site,
                                                                     bf16* __restrict__ y, int64_t ldy) {
  extern __shared__ float t_s[];  // [rank]
  griddep_wait();
  griddep_launch_dependents();
  const int row = blockIdx.x, i = blockIdx.z;
  const LoraProj* p = lora_proj(s, row, layer, site.first_target + i);
  if (p == nullptr) return;
  const int j0 = blockIdx.y * kExpandThreads;
  if (j0 >= site.out[i]) return;  // (the whole block: before its barrier)
  const float* t = s.t + (static_cast<size_t>(row) * 3 + i) * s.max_rank;
  for (int r = threadIdx.x; r < p->rank; r += kExpandThreads) t_s[r] = t[r];
  __syncthreads();
  const int j = j0 + threadIdx.x;
  if (j >= site.out[i]) return;
  bf16* out = y + static_cast<size_t>(row) * ldy + site.offset[i] + static_cast<int64_t>(j) * site.stride;
  *out = __float2bfloat16_rn(__bfloat162float(*out) + p->scale * lora_column(*p, t_s, j));
}

// grid (M, ceil(I / 256)): out[m, j] = bf16(bf16(silu(g)) * u) with g, u = gate_up[m, 2j], [m, 2j + 1]
// after the gate / up updates of the row's adapter (each rounded to bf16, as the separate expand
// stores it), for every row: rows of the base model take the SwiGLU alone.
__global__ void __launch_bounds__(kExpandThreads) lora_expand_swiglu_kernel(LoraStep s, int layer,
                                                                            const bf16* __restrict__ gate_up,
                                                                            bf16* __restrict__ out, int I) {
  extern __shared__ float t_s[];  // [2][max_rank]: the gate's A x, then the up's
  griddep_wait();
  griddep_launch_dependents();
  const int row = blockIdx.x, j = blockIdx.y * kExpandThreads + threadIdx.x;
  const LoraProj* pg = lora_proj(s, row, layer, kLoraGate);
  const LoraProj* pu = lora_proj(s, row, layer, kLoraUp);
  const float* t = s.t + static_cast<size_t>(row) * 3 * s.max_rank;
  if (pg)
    for (int r = threadIdx.x; r < pg->rank; r += kExpandThreads) t_s[r] = t[r];
  if (pu)
    for (int r = threadIdx.x; r < pu->rank; r += kExpandThreads) t_s[s.max_rank + r] = t[s.max_rank + r];
  __syncthreads();
  if (j >= I) return;
  const __nv_bfloat162 gu = reinterpret_cast<const __nv_bfloat162*>(gate_up + static_cast<size_t>(row) * 2 * I)[j];
  float g = __low2float(gu), u = __high2float(gu);
  if (pg) g = round_bf16(g + pg->scale * lora_column(*pg, t_s, j));
  if (pu) u = round_bf16(u + pu->scale * lora_column(*pu, t_s + s.max_rank, j));
  out[static_cast<size_t>(row) * I + j] = __float2bfloat16_rn(round_bf16(g / (1.f + expf(-g))) * u);
}

Status check_input(const LoraStep& step, int in, const bf16* x) {
  if (step.rows == nullptr || step.t == nullptr) return invalid("lora_add", "no rows table or scratch");
  if (in % 8 != 0) return invalid("lora_add", "the input width must be a multiple of 8");
  if (reinterpret_cast<uintptr_t>(x) % 16 != 0) return invalid("lora_add", "x must be 16-byte aligned");
  return ok_status();
}

Status shrink(const LoraStep& step, int layer, const LoraSite& site, const bf16* x, const float* norm_w, float eps,
              int M, const Exec& ex) {
  const int rank_blocks = (step.max_rank + kShrinkThreads / 32 - 1) / (kShrinkThreads / 32);
  return launch("lora_shrink", lora_shrink_kernel, dim3(M, site.count, rank_blocks), dim3(kShrinkThreads), 0, ex, step,
                layer, site, x, norm_w, eps);
}

}  // namespace

Status lora_add(const LoraStep& step, int layer, const LoraSite& site, const bf16* x, const float* norm_w, float eps,
                bf16* y, int64_t ldy, int M, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (site.count < 1 || site.count > 3) return invalid("lora_add", "a site takes 1 to 3 targets");
  GRPST_TRY(check_input(step, site.in, x));
  int max_out = 0;
  for (int i = 0; i < site.count; ++i) max_out = site.out[i] > max_out ? site.out[i] : max_out;
  GRPST_TRY(shrink(step, layer, site, x, norm_w, eps, M, ex));
  const size_t smem = static_cast<size_t>(step.max_rank) * 4;
  GRPST_TRY(allow_smem("lora_expand", lora_expand_kernel, smem));
  return launch("lora_expand", lora_expand_kernel, dim3(M, (max_out + kExpandThreads - 1) / kExpandThreads, site.count),
                dim3(kExpandThreads), smem, ex, step, layer, site, y, ldy);
}

Status lora_add_swiglu(const LoraStep& step, int layer, const bf16* x, const float* norm_w, float eps, int in,
                       const bf16* gate_up, bf16* out, int I, int M, const Exec& ex) {
  if (M <= 0) return ok_status();
  GRPST_TRY(check_input(step, in, x));
  const LoraSite site{kLoraGate, 2, in, {I, I, 0}, {0, 1, 0}, 2};
  GRPST_TRY(shrink(step, layer, site, x, norm_w, eps, M, ex));
  const size_t smem = static_cast<size_t>(step.max_rank) * 2 * 4;
  GRPST_TRY(allow_smem("lora_expand_swiglu", lora_expand_swiglu_kernel, smem));
  return launch("lora_expand_swiglu", lora_expand_swiglu_kernel, dim3(M, (I + kExpandThreads - 1) / kExpandThreads),
                dim3(kExpandThreads), smem, ex, step, layer, gate_up, out, I);
}

}  // namespace grpst::cuda
