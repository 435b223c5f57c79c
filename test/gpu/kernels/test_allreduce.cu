// Parity: the one-shot all-reduce (allreduce_oneshot.h) against its CPU twin. Its ranks are
// streams of this one GPU here, each with its own region, as if mapped from other GPUs: the
// kernels of all ranks run at once and meet at their flag barriers. Every rank's result must equal
// the twin's bits (tolerance 0), over both data halves, one and several chunks per thread, and
// groups of 2, 4 and 8.
#include <chrono>
#include <thread>

#include "../../../native/src/kernels/cuda/allreduce_oneshot.h"
#include "harness.h"
#include "reference.h"
#include "tests.h"

namespace harness {
namespace cu = grpst::cuda;

namespace {

struct FakeGroup {
  int size;
  std::vector<char*> regions;
  std::vector<uint32_t*> counters;
  std::vector<cudaStream_t> streams;
  int* abort_host = nullptr;
  int* abort_device = nullptr;

  explicit FakeGroup(int n) : size(n), regions(n), counters(n), streams(n) {
    cudaHostAlloc(&abort_host, 4, cudaHostAllocMapped);
    *abort_host = 0;
    cudaHostGetDevicePointer(reinterpret_cast<void**>(&abort_device), abort_host, 0);
    for (int r = 0; r < n; ++r) {
      cudaMalloc(&regions[r], cu::oneshot_region_bytes());
      cudaMemset(regions[r], 0, cu::oneshot_region_bytes());
      cudaMalloc(&counters[r], cu::kOneShotBlocks * 4);
      cudaMemset(counters[r], 0, cu::kOneShotBlocks * 4);
      cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking);
    }
    cudaDeviceSynchronize();
  }
  ~FakeGroup() {
    for (int r = 0; r < size; ++r) {
      cudaFree(regions[r]);
      cudaFree(counters[r]);
      cudaStreamDestroy(streams[r]);
    }
    cudaFreeHost(abort_host);
  }
  cu::OneShotGroup rank(int r) const {
    cu::OneShotGroup g;
    for (int i = 0; i < size; ++i) g.regions[i] = regions[i];
    g.counters = counters[r];
    g.abort_flag = abort_device;
    g.rank = r;
    g.size = size;
    return g;
  }
  // Waits for every rank's stream at most 10 s; then ends the barriers' waits (a failed check).
  bool finish() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (cudaStream_t s : streams)
      while (cudaStreamQuery(s) == cudaErrorNotReady) {
        if (std::chrono::steady_clock::now() > deadline) {
          *reinterpret_cast<volatile int*>(abort_host) = 1;
          cudaDeviceSynchronize();
          return false;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    return true;
  }
};

void check_group(int n, const std::vector<size_t>& counts) {
  FakeGroup group(n);
  std::vector<Dev<uint16_t>> bufs(n);
  int call = 0;
  for (size_t count : counts) {
    Rng rng(1000 + n * 31 + call);
    std::vector<ref::V16> data(n);
    for (int r = 0; r < n; ++r) {
      data[r] = rand_bf16(rng, count, 8.f);
      bufs[r].upload(data[r]);
    }
    cudaDeviceSynchronize();
    const std::string name = "one-shot all-reduce " + std::to_string(n) + " ranks, " + std::to_string(count) +
                             " bf16, call " + std::to_string(++call);
    bool launched = true;
    for (int r = 0; r < n; ++r) {
      cu::Exec ex;
      ex.stream = group.streams[r];
      launched &= Checks::get().status(name + " launch", cu::all_reduce_oneshot_bf16(group.rank(r), bufs[r].as<cu::bf16>(), count, ex));
    }
    if (!launched) return;
    const bool finished = group.finish();
    if (!Checks::get().expect(name + " finishes", finished, finished ? "" : "the ranks' barriers did not meet within 10 s")) return;
    ref::V16 want;
    ref::all_reduce_sum(data, want);
    for (int r = 0; r < n; ++r) {
      const auto got = bufs[r].download();
      size_t diff = 0;
      while (diff < count && got[diff] == want[diff]) ++diff;
      Checks::get().expect(name + " rank " + std::to_string(r) + " = CPU sum, bit for bit", diff == count,
                           diff == count ? "" : "first difference at " + std::to_string(diff) + ": " +
                                                    std::to_string(bf2f(got[diff])) + " vs " + std::to_string(bf2f(want[diff])));
    }
  }
}

}  // namespace

void test_allreduce() {
  const size_t max = cu::kOneShotMaxBytes / 2;
  // Both data halves (calls alternate), 1 to 8 chunks per thread, one partial chunk-row, the maximum.
  check_group(2, {8, 5120, 327680, max, 40, max, 4096 * 8});
  check_group(4, {5120, max, 8, 327680});
  check_group(8, {5120, max, 40});
  Checks::get().expect("one-shot all-reduce refuses an unaligned count",
                       !cu::oneshot_fits(reinterpret_cast<void*>(256), 12) && !cu::oneshot_fits(reinterpret_cast<void*>(8), 16) &&
                           !cu::oneshot_fits(reinterpret_cast<void*>(256), max + 8) && cu::oneshot_fits(reinterpret_cast<void*>(256), max));
}

}  // namespace harness
