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

// The rows of a prefill chunk one block owns: kBM query rows of sequence blockIdx.z for query
// head h = blockIdx.y, the last row tiles first (they see the most keys, so they start first).
struct PrefillRows {
  int h, q_len, row0, ctx_len, q_start;
  int pos0;     // position of query row 0 of the chunk
  int g;        // kv head
  int n_tiles;  // key tiles of kBN the block's last row sees
  const int32_t* bt;  // the sequence's block table
};
// false when the block has no rows (the grid covers the longest chunk of the batch).
template <int kBM, int kBN>
__device__ __forceinline__ bool prefill_rows(const PrefillBatch& batch, const PagedTables& tables, int nh, int nkv,
                                             PrefillRows& p) {
  const int s = blockIdx.z;
  p.h = blockIdx.y;
  p.q_len = batch.q_len[s];
  const int tile = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
  p.row0 = tile * kBM;
  if (p.row0 >= p.q_len) return false;
  p.ctx_len = batch.ctx_len[s];
  p.q_start = batch.q_start[s];
  p.pos0 = p.ctx_len - p.q_len;
  p.g = p.h / (nh / nkv);
  p.bt = tables.block_tables + static_cast<size_t>(batch.seq_index[s]) * tables.max_blocks_per_seq;
  const int last_row = min(p.q_len, p.row0 + kBM) - 1;
  p.n_tiles = (p.pos0 + last_row + 1 + kBN - 1) / kBN;
  return true;
}

// The block's query rows into a swizzled [kBM][HD] tile through cp.async (rows past the chunk
// become zeros; the caller commits and waits). q: [T, nh, HD].
template <int HD, int kBM, int kThreads>
__device__ __forceinline__ void load_q_tile(bf16* sq, const bf16* q, const PrefillRows& p, int nh) {
  constexpr int CH = HD / 8;
  for (int idx = threadIdx.x; idx < kBM * CH; idx += kThreads) {
    const int r = idx / CH, c = idx % CH;
    const bool valid = p.row0 + r < p.q_len;
    const bf16* src = q + (static_cast<size_t>(p.q_start + (valid ? p.row0 + r : 0)) * nh + p.h) * HD + c * 8;
    cp_async16(sq + swz<HD>(r, c), src, valid);
  }
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
