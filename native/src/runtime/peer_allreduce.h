// The one-shot all-reduce (kernels/cuda/allreduce_oneshot.h) as a device group uses it: every
// rank maps every other rank's region through CUDA IPC, then the group checks the kernel against
// the exact sum of known data before it takes any of the model's all-reduces. Each step of that
// set-up ends in a vote over the group, so either every rank uses the kernel or none does (a rank
// alone on it would wait forever at its barrier), and the reason it is off is the same everywhere.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

namespace grpst {

class PeerAllReduce {
 public:
  /** recv [size * bytes] = every rank's `bytes` host bytes in rank order; blocking, on every rank. */
  using HostAllGather = std::function<void(const void* send, void* recv, size_t bytes)>;

  /**
   * Every rank of the group calls this together (on its own CUDA device, already current).
   * Returns null, with *why_off saying why, when any rank cannot map the others' memory or the
   * check fails; GRPST_ONESHOT_ALLREDUCE=0 turns it off on purpose.
   */
  static std::unique_ptr<PeerAllReduce> create(int rank, int size, const HostAllGather& gather, std::string* why_off);
  ~PeerAllReduce();

  /** Whether all_reduce takes `count` bf16 at `buf` (the same answer on every rank for cudaMalloc'ed buffers). */
  bool fits(const void* buf, size_t count) const;
  /** buf = the sum over ranks (bf16, in place), enqueued on `stream` (a cudaStream_t). Throws Error. */
  void all_reduce(void* buf, size_t count, void* stream);
  /** Ends every wait of a kernel in flight or launched later (the group is being torn down). */
  void abort();

 private:
  struct State;
  explicit PeerAllReduce(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace grpst
