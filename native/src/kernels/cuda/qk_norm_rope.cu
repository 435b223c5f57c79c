// Per-head q_norm / k_norm, rotary embedding (rotate-half form) and the KV-cache write, one warp
// per (token, head); the per-head math (and its bf16 rounding points) is norm_rope_head's, its
// weights and cos / sin taken before the wait on the QKV projection (norm_rope_coeffs).
#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"
#include "norm_rope.cuh"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 4;

template <class Kv>
__global__ void __launch_bounds__(kWarps * 32) qk_norm_rope_kv_kernel(
    const bf16* __restrict__ qkv /*[T,(nh+2nkv)*hd]*/, const int32_t* __restrict__ positions,
    const int32_t* __restrict__ slots, const float* __restrict__ q_norm_w,
    const float* __restrict__ k_norm_w, float eps, Rope rope, int nh, int nkv, int hd,
    int block_size, KvLayer kv, bf16* __restrict__ q_out /*[T,nh,hd]*/, bool coeffs_early) {
  const int t = blockIdx.x;
  const int head = blockIdx.y * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int heads = nh + 2 * nkv;
  if (head >= heads) return;
  // Before the wait on the QKV projection: everything but the head's values. positions and slots
  // come from before the step's first kernel, the weights and inv_freq are the model's.
  const bf16* src = qkv + (static_cast<size_t>(t) * heads + head) * hd;
  const int slot = slots[t];
  const bool is_q = head < nh, is_k = !is_q && head < nh + nkv;
  NormRopeCoeffs<1> co;
  auto coeffs = [&] {
    if (!is_q && !is_k) return;
    const float* const nw[1] = {is_q ? q_norm_w : k_norm_w};
    norm_rope_coeffs<1>(nw, 1, hd, rope, static_cast<float>(positions[t]), lane, co);
  };
  if (coeffs_early) coeffs();
  griddep_wait();
  griddep_launch_dependents();
  if (!coeffs_early) coeffs();

  if (!is_q && !is_k) {  // v: straight into the cache
    if (slot < 0) return;
    const int kvh = head - nh - nkv;
    typename Kv::T* dst = reinterpret_cast<typename Kv::T*>(kv.v) +
        ((static_cast<size_t>(slot / block_size) * nkv + kvh) * block_size + slot % block_size) * hd;
    for (int d = lane; d < hd; d += 32) dst[d] = Kv::store1(to_f32(src[d]), kv.v_scale);
    return;
  }

  const int half = hd / 2;
  float o1[kRopeMaxPairs], o2[kRopeMaxPairs];
  norm_rope_head_with(src, hd, eps, co, lane, o1, o2);
  bf16* dst_q = nullptr;
  typename Kv::T* dst_k = nullptr;
  if (is_q) {
    dst_q = q_out + (static_cast<size_t>(t) * nh + head) * hd;
  } else {
    if (slot < 0) return;
    const int kvh = head - nh;
    dst_k = reinterpret_cast<typename Kv::T*>(kv.k) +
        ((static_cast<size_t>(slot / block_size) * nkv + kvh) * block_size + slot % block_size) * hd;
  }
#pragma unroll
  for (int c = 0; c < kRopeMaxPairs; ++c) {
    const int i = lane + 32 * c;
    if (i >= half) continue;
    if (dst_q) {
      dst_q[i] = __float2bfloat16_rn(o1[c]);
      dst_q[i + half] = __float2bfloat16_rn(o2[c]);
    } else {
      dst_k[i] = Kv::store1(o1[c], kv.k_scale);
      dst_k[i + half] = Kv::store1(o2[c], kv.k_scale);
    }
  }
}

}  // namespace

Status qk_norm_rope_kv(const bf16* qkv, const int32_t* positions, const int32_t* slots,
                       const float* q_norm_w, const float* k_norm_w, float eps, Rope rope, int T,
                       int nh, KvGeometry geo, KvLayer kv, bf16* q_out, const Exec& ex) {
  if (geo.head_dim % 2 != 0 || geo.head_dim > 256)
    return invalid("qk_norm_rope_kv", "head_dim must be even and at most 256");
  // GRPST_CUDA_QK_COEFFS_EARLY=0: the weights and cos / sin taken after the wait (the same bits).
  const bool early = env_int("GRPST_CUDA_QK_COEFFS_EARLY", 1) != 0;
  const dim3 grid(T, ceil_div(nh + 2 * geo.nkv, kWarps));
  const dim3 block(kWarps * 32);
  switch (geo.dtype) {
    case KvDtype::bf16:
      return launch("qk_norm_rope_kv", qk_norm_rope_kv_kernel<KvBf16>, grid, block, 0, ex, qkv,
                    positions, slots, q_norm_w, k_norm_w, eps, rope, nh, geo.nkv, geo.head_dim,
                    geo.block_size, kv, q_out, early);
    case KvDtype::fp8:
      return launch("qk_norm_rope_kv", qk_norm_rope_kv_kernel<KvFp8>, grid, block, 0, ex, qkv,
                    positions, slots, q_norm_w, k_norm_w, eps, rope, nh, geo.nkv, geo.head_dim,
                    geo.block_size, kv, q_out, early);
    case KvDtype::int8:
      return launch("qk_norm_rope_kv", qk_norm_rope_kv_kernel<KvInt8>, grid, block, 0, ex, qkv,
                    positions, slots, q_norm_w, k_norm_w, eps, rope, nh, geo.nkv, geo.head_dim,
                    geo.block_size, kv, q_out, early);
  }
  return invalid("qk_norm_rope_kv", "unknown KV cache dtype");
}

}  // namespace grpst::cuda
