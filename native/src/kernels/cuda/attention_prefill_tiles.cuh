// Shared-memory tiles of the prefill attention kernels (attention_prefill.cu, the FA2-layout one
// in attention_prefill_fa2.cu): rows of HD bf16 with 16-byte chunks XOR-swizzled by row so that
// ldmatrix reads of 8 consecutive rows hit 8 different bank groups.
#pragma once
#include <cstdint>
#include <type_traits>

#include "device_utils.cuh"
#include "kernels.h"
#include "mma_utils.cuh"

namespace grpst::cuda {

template <int HD>
__device__ __forceinline__ int swz(int row, int chunk) {  // element offset of a 16-byte chunk
  return row * HD + ((chunk ^ (row & 7)) << 3);
}

// Loads keys [key0, key0 + kRows) of kv head g into a swizzled [kRows][HD] tile with kThreads
// threads; keys at or past ctx_len become zeros. bf16 caches go through cp.async (the caller
// commits and waits); fp8/int8 caches are dequantized on the way in.
template <int HD, class Kv, int kRows, int kThreads>
__device__ __forceinline__ void load_kv_tile(bf16* tile, const typename Kv::T* cache, float scale,
                                             const int32_t* bt, int key0, int ctx_len, int nkv,
                                             int g, int block_size) {
  constexpr int CH = HD / 8;
  for (int idx = threadIdx.x; idx < kRows * CH; idx += kThreads) {
    const int r = idx / CH, c = idx % CH;
    const int key = key0 + r;
    const bool valid = key < ctx_len;
    const int page = valid ? bt[key / block_size] : 0;
    const typename Kv::T* src =
        cache + ((static_cast<size_t>(page) * nkv + g) * block_size + (valid ? key % block_size : 0)) * HD + c * 8;
    bf16* dst = tile + swz<HD>(r, c);
    if constexpr (std::is_same_v<Kv, KvBf16>) {
      cp_async16(dst, src, valid);
    } else {
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (valid) Kv::load8(src, scale, f);
      *reinterpret_cast<uint4*>(dst) = pack8(f);
    }
  }
}

// The FA2-layout kernel (attention_prefill_fa2.cu) for head_dim 64/128; same contract as
// attention_prefill with the scale already multiplied by log2(e).
Status attention_prefill_fa2(const bf16* q, const PrefillBatch& batch, PagedTables tables, int nh,
                             KvGeometry geo, KvLayer kv, float scale_log2, bf16* out, const Exec& ex);

}  // namespace grpst::cuda
