// Per-head q_norm / k_norm, rotary embedding (rotate-half form) and the KV-cache write, one warp
// per (token, head); the per-head math (and its bf16 rounding points) is norm_rope_head.
#include "device_utils.cuh"
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
    int block_size, KvLayer kv, bf16* __restrict__ q_out /*[T,nh,hd]*/) {
  griddep_wait();
  griddep_launch_dependents();
  const int t = blockIdx.x;
  const int head = blockIdx.y * kWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int heads = nh + 2 * nkv;
  if (head >= heads) return;
  const int half = hd / 2;
  const bf16* src = qkv + (static_cast<size_t>(t) * heads + head) * hd;
  const int slot = slots[t];
  const bool is_q = head < nh, is_k = !is_q && head < nh + nkv;

  if (!is_q && !is_k) {  // v: straight into the cache
    if (slot < 0) return;
    const int kvh = head - nh - nkv;
    typename Kv::T* dst = reinterpret_cast<typename Kv::T*>(kv.v) +
        ((static_cast<size_t>(slot / block_size) * nkv + kvh) * block_size + slot % block_size) * hd;
    for (int d = lane; d < hd; d += 32) dst[d] = Kv::store1(to_f32(src[d]), kv.v_scale);
    return;
  }

  const float* nw = is_q ? q_norm_w : k_norm_w;
  const float pos = static_cast<float>(positions[t]);
  float o1[kRopeMaxPairs], o2[kRopeMaxPairs];
  norm_rope_head(src, hd, nw, eps, rope, pos, lane, o1, o2);
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
  const dim3 grid(T, ceil_div(nh + 2 * geo.nkv, kWarps));
  const dim3 block(kWarps * 32);
  switch (geo.dtype) {
    case KvDtype::bf16:
      return launch("qk_norm_rope_kv", qk_norm_rope_kv_kernel<KvBf16>, grid, block, 0, ex, qkv,
                    positions, slots, q_norm_w, k_norm_w, eps, rope, nh, geo.nkv, geo.head_dim,
                    geo.block_size, kv, q_out);
    case KvDtype::fp8:
      return launch("qk_norm_rope_kv", qk_norm_rope_kv_kernel<KvFp8>, grid, block, 0, ex, qkv,
                    positions, slots, q_norm_w, k_norm_w, eps, rope, nh, geo.nkv, geo.head_dim,
                    geo.block_size, kv, q_out);
    case KvDtype::int8:
      return launch("qk_norm_rope_kv", qk_norm_rope_kv_kernel<KvInt8>, grid, block, 0, ex, qkv,
                    positions, slots, q_norm_w, k_norm_w, eps, rope, nh, geo.nkv, geo.head_dim,
                    geo.block_size, kv, q_out);
  }
  return invalid("qk_norm_rope_kv", "unknown KV cache dtype");
}

}  // namespace grpst::cuda
