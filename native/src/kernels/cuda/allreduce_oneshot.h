// A one-shot all-reduce of small bf16 buffers across the GPUs of one host, over memory the ranks
// map into each other (CUDA IPC): each rank copies its buffer into its own peer-visible region,
// meets the other ranks' same-numbered block at a flag barrier, then reads every rank's copy
// over NVLink and sums them. For the tensor-parallel decode step's all-reduces (one token's or
// 64 tokens' hidden state, 10 KB to 1 MB) this is one kernel with one NVLink round trip, where
// NCCL's all-reduce costs 25-40 us on two H200s (docs/benchmarks-gpu-tp.md).
//
// Every rank gets the same bits: the sum runs in rank order in fp32 and is rounded to bf16 once
// (the CPU twin is the in-process group's sum, runtime/collective_local.cpp; the group checks the
// kernel against that sum on set-up, runtime/peer_allreduce.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace grpst::cuda {

constexpr int kOneShotMaxRanks = 8;
constexpr int kOneShotBlocks = 48;             // blocks that share out the 16-byte chunks
constexpr int kOneShotThreads = 512;           // threads per block
constexpr size_t kOneShotMaxBytes = 1u << 20;  // the largest buffer one call reduces
constexpr size_t kOneShotSignalBytes = 4096;   // [kOneShotBlocks][kOneShotMaxRanks] u32 flags, padded

/** Bytes of one rank's peer-visible region: the flags, then two data halves (calls alternate). */
constexpr size_t oneshot_region_bytes() { return kOneShotSignalBytes + 2 * kOneShotMaxBytes; }

/** One rank's view of the group. Regions must start zeroed; counters too. */
struct OneShotGroup {
  char* regions[kOneShotMaxRanks] = {};  // every rank's region as mapped in this process ([rank] is its own)
  uint32_t* counters = nullptr;          // [kOneShotBlocks] this rank's calls per block, device memory
  const int* abort_flag = nullptr;       // device view of a host-mapped word: nonzero stops the waits
  int rank = 0;
  int size = 0;
};

/** Whether a call of `count` bf16 at `buf` fits the kernel (16-byte aligned, count % 8 == 0, <= the max). */
bool oneshot_fits(const void* buf, size_t count);

/**
 * buf[i] = sum over ranks of buf[i] (rank order, fp32, one bf16 rounding). Every rank must make
 * the same calls in the same order with the same counts (the flags count calls per block).
 */
Status all_reduce_oneshot_bf16(const OneShotGroup& g, bf16* buf /*[count]*/, size_t count, const Exec& ex);

}  // namespace grpst::cuda
