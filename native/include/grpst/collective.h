// The collectives tensor parallelism needs, over the ranks of one group: all-reduce (partial sums
// of o_proj / down_proj and of the vocabulary-parallel embedding), all-gather (each rank's slice
// of the logits) and a host broadcast (rank 0's step batch to the other ranks). Every rank calls
// the same operations in the same order with the same counts. Device groups (NCCL,
// runtime/collective_nccl.cpp) take device buffers and enqueue on `stream` (a cudaStream_t); the
// in-process group takes host buffers and ignores it. Failures throw Error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace grpst {

enum class CollDType : uint8_t { F32, BF16 };
size_t coll_dtype_size(CollDType t);

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /** "nccl" or "in-process". */
  virtual std::string name() const = 0;
  /** name() and how the group reduces (for EngineInfo.kernels). */
  virtual std::string describe() const { return name(); }
  /** True when buffers are device memory (and `stream` a cudaStream_t). */
  virtual bool on_device() const = 0;
  /** buf[i] = the sum over ranks of buf[i]; every rank gets the same bits. */
  virtual void all_reduce_sum(void* buf, size_t count, CollDType type, void* stream) = 0;
  /** recv = [rank 0's send | rank 1's send | ...], `count` elements from each. */
  virtual void all_gather(const void* send, void* recv, size_t count, CollDType type, void* stream) = 0;
  /** Rank 0's `bytes` bytes of host memory into `buf` on every rank; returns once they are there. */
  virtual void broadcast_host(void* buf, size_t bytes) = 0;
  /** Makes every rank blocked in (or later entering) a collective throw instead of waiting. */
  virtual void abort() {}
};

/**
 * `size` connected members of one group inside this process, one per thread, over host memory.
 * Sums run in rank order, so every member gets the same bits. Used to run a sharded engine on
 * the CPU (tests, build-time scoring); GPUs use NCCL.
 */
std::vector<std::unique_ptr<Collective>> make_in_process_group(int size);

}  // namespace grpst
