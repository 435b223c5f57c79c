// What the persistent decode kernel's parts share: its launch plan (shared-memory layout, weight
// ring geometry) and the block's shape. decode_persistent.cu holds the kernel and its
// linear phases, decode_persistent_attention.cuh the attention phase.
#pragma once
#include "bulk_ring.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace persistent {

constexpr int kWarps = 8;  // per block (one block per SM)
constexpr int kThreads = kWarps * 32;
constexpr int kMaxGroup = 8;  // query heads per kv head
constexpr int kMaxSlots = 32;
// Layers whose weight addresses the kernel keeps in shared memory (Qwen3 has at most 64): a
// refill must not wait on a global load, it is on the ring's critical path (deeper models read
// the rest from the layer table in global memory).
constexpr int kTableLayers = 64;
constexpr float kLog2e = 1.4426950408889634f;

// Host-computed layout of one launch. The weight ring holds `slots` slots of `slot_bytes`; a slot
// carries whole rows of one matrix (rows_per_slot(K) of them). Per-row partial sums live in
// [slots][2 rounds][rows_max][cols] floats: cols = 8 (one per warp) when every matrix's row is a
// multiple of 256 elements, so a warp's 32 lanes always work on the same row; 256 (one per
// thread) otherwise.
struct Plan {
  int slot_bytes = 0, slots = 0, rows_max = 0, cols = 0;
  int x_off = 0, partial_off = 0, table_off = 0, bar_off = 0, smem = 0;
};

// Rows of a K-column bf16 matrix one slot holds (gate_up: an even number, so gate / up pairs
// never straddle slots).
__host__ __device__ inline int rows_per_slot(int slot_bytes, int K, bool pairs) {
  const int r = slot_bytes / (K * 2);
  return pairs ? r / 2 * 2 : r;
}

}  // namespace persistent
}  // namespace grpst::cuda
