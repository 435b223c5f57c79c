// Set-up, check and use of the one-shot all-reduce (runtime/peer_allreduce.h).
#include "runtime/peer_allreduce.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "grpst/common.h"
#include "kernels/cuda/allreduce_oneshot.h"

namespace grpst {

namespace cu = grpst::cuda;

struct PeerAllReduce::State {
  int rank = 0, size = 0;
  char* own = nullptr;                 // this rank's region (cudaMalloc)
  char* mapped[cu::kOneShotMaxRanks] = {};  // the other ranks' regions (cudaIpcOpenMemHandle)
  uint32_t* counters = nullptr;        // [kOneShotBlocks]
  int* abort_host = nullptr;           // host-mapped abort word
  int* abort_device = nullptr;
  cu::OneShotGroup group;

  ~State() {
    for (char* p : mapped)
      if (p) cudaIpcCloseMemHandle(p);
    if (own) cudaFree(own);
    if (counters) cudaFree(counters);
    if (abort_host) cudaFreeHost(abort_host);
    cudaGetLastError();
  }
};

namespace {

// What each rank tells the others at every step of the set-up.
struct Vote {
  int ok = 1;
  cudaIpcMemHandle_t handle = {};
  char why[200] = {};
};

// Every rank's vote (into *votes when given); true when all are ok, else *why_off = the first
// failing rank's reason.
bool agree(const PeerAllReduce::HostAllGather& gather, int size, Vote mine, std::string* why_off,
           std::vector<Vote>* votes = nullptr) {
  std::vector<Vote> local;
  std::vector<Vote>& all = votes ? *votes : local;
  all.assign(size, Vote());
  gather(&mine, all.data(), sizeof(Vote));
  for (int r = 0; r < size; ++r)
    if (!all[r].ok) {
      all[r].why[sizeof(all[r].why) - 1] = 0;
      *why_off = "rank " + std::to_string(r) + ": " + all[r].why;
      return false;
    }
  return true;
}

Vote failed(const std::string& why) {
  Vote v;
  v.ok = 0;
  std::strncpy(v.why, why.c_str(), sizeof(v.why) - 1);
  return v;
}

std::string cuda_words(const char* what, cudaError_t e) {
  cudaGetLastError();
  return std::string(what) + ": " + cudaGetErrorString(e);
}

// Known data: a bf16 value of every element on every rank, of varied signs and magnitudes.
uint16_t pattern(size_t i, int rank) {
  uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ static_cast<uint32_t>(rank + 1) * 40503u;
  h ^= h >> 15;
  h *= 2246822519u;
  h ^= h >> 13;
  const float v = (static_cast<float>(h & 0xffff) / 65536.0f - 0.5f) * static_cast<float>(1 << (h >> 16 & 7));
  return f32_to_bf16(v);
}

// Runs the kernel on known data for a few sizes (both data halves, one and several chunks per
// thread) and compares every element with the sum the CPU makes in the same order.
std::string self_check(PeerAllReduce& ar, int rank, int size) {
  const size_t counts[] = {8, 5120, cu::kOneShotMaxBytes / 2, 40, cu::kOneShotMaxBytes / 2, 327680};
  void* dev = nullptr;
  cudaStream_t stream = nullptr;
  std::string why;
  if (cudaError_t e = cudaMalloc(&dev, cu::kOneShotMaxBytes); e != cudaSuccess) return cuda_words("cudaMalloc", e);
  if (cudaError_t e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking); e != cudaSuccess) {
    cudaFree(dev);
    return cuda_words("cudaStreamCreate", e);
  }
  std::vector<uint16_t> host, got;
  for (size_t count : counts) {
    host.resize(count);
    got.resize(count);
    for (size_t i = 0; i < count; ++i) host[i] = pattern(i, rank);
    cudaError_t e = cudaMemcpyAsync(dev, host.data(), count * 2, cudaMemcpyHostToDevice, stream);
    if (e != cudaSuccess) {
      why = cuda_words("copy", e);
      break;
    }
    try {
      ar.all_reduce(dev, count, stream);
    } catch (const std::exception& ex) {
      why = ex.what();
      break;
    }
    // A rank whose flags never arrive (peer memory not really shared) waits here at most 10 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((e = cudaStreamQuery(stream)) == cudaErrorNotReady && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (e == cudaErrorNotReady) {
      ar.abort();  // the group is turned off below, so its waits may end for good
      cudaStreamSynchronize(stream);
      why = "the kernel's barrier waited 10 s for the other ranks' flags (peer memory writes not seen)";
      break;
    }
    if (e == cudaSuccess) e = cudaMemcpy(got.data(), dev, count * 2, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
      why = cuda_words("the kernel", e);
      break;
    }
    for (size_t i = 0; i < count && why.empty(); ++i) {
      float sum = bf16_to_f32(pattern(i, 0));  // rank order, as the kernel sums
      for (int r = 1; r < size; ++r) sum += bf16_to_f32(pattern(i, r));
      if (got[i] != f32_to_bf16(sum))
        why = "wrong sum of " + std::to_string(count) + " elements at " + std::to_string(i) + ": " +
              std::to_string(bf16_to_f32(got[i])) + " instead of " + std::to_string(sum);
    }
    if (!why.empty()) break;
  }
  cudaStreamDestroy(stream);
  cudaFree(dev);
  cudaGetLastError();
  return why;
}

}  // namespace

PeerAllReduce::PeerAllReduce(std::unique_ptr<State> s) : s_(std::move(s)) {}
PeerAllReduce::~PeerAllReduce() = default;

std::unique_ptr<PeerAllReduce> PeerAllReduce::create(int rank, int size, const HostAllGather& gather, std::string* why_off) {
  const char* env = std::getenv("GRPST_ONESHOT_ALLREDUCE");
  // Every rank reads the same environment (the launcher passes it on), so no vote is needed here.
  if (env && std::strcmp(env, "0") == 0) {
    *why_off = "turned off by GRPST_ONESHOT_ALLREDUCE=0";
    return nullptr;
  }
  if (size < 2 || size > cu::kOneShotMaxRanks) {
    *why_off = "groups of 2 to " + std::to_string(cu::kOneShotMaxRanks) + " ranks only";
    return nullptr;
  }
  auto s = std::make_unique<State>();
  s->rank = rank;
  s->size = size;
  // 1. This rank's zeroed region, its counters and abort word, and the region's IPC handle.
  Vote mine;
  cudaError_t e = cudaMalloc(&s->own, cu::oneshot_region_bytes());
  if (e == cudaSuccess) e = cudaMemset(s->own, 0, cu::oneshot_region_bytes());
  if (e == cudaSuccess) e = cudaMalloc(&s->counters, cu::kOneShotBlocks * 4);
  if (e == cudaSuccess) e = cudaMemset(s->counters, 0, cu::kOneShotBlocks * 4);
  if (e == cudaSuccess) e = cudaHostAlloc(&s->abort_host, 4, cudaHostAllocMapped);
  if (e == cudaSuccess) {
    *s->abort_host = 0;
    e = cudaHostGetDevicePointer(reinterpret_cast<void**>(&s->abort_device), s->abort_host, 0);
  }
  if (e == cudaSuccess) e = cudaDeviceSynchronize();  // zeroed before any other rank can write
  if (e == cudaSuccess) e = cudaIpcGetMemHandle(&mine.handle, s->own);
  if (e != cudaSuccess) mine = failed(cuda_words("allocating its peer-visible region", e));
  std::vector<Vote> all;
  if (!agree(gather, size, mine, why_off, &all)) return nullptr;
  // 2. Map every other rank's region.
  Vote opened;
  for (int r = 0; r < size && opened.ok; ++r) {
    if (r == rank) continue;
    void* p = nullptr;
    e = cudaIpcOpenMemHandle(&p, all[r].handle, cudaIpcMemLazyEnablePeerAccess);
    if (e != cudaSuccess) opened = failed(cuda_words(("mapping rank " + std::to_string(r) + "'s memory").c_str(), e));
    else s->mapped[r] = static_cast<char*>(p);
  }
  if (!agree(gather, size, opened, why_off)) return nullptr;
  cu::OneShotGroup& g = s->group;
  for (int r = 0; r < size; ++r) g.regions[r] = r == rank ? s->own : s->mapped[r];
  g.counters = s->counters;
  g.abort_flag = s->abort_device;
  g.rank = rank;
  g.size = size;
  // 3. The kernel against the CPU's sum, on every rank.
  std::unique_ptr<PeerAllReduce> ar(new PeerAllReduce(std::move(s)));
  const std::string wrong = self_check(*ar, rank, size);
  if (!agree(gather, size, wrong.empty() ? Vote() : failed(wrong), why_off)) return nullptr;
  return ar;
}

bool PeerAllReduce::fits(const void* buf, size_t count) const { return cu::oneshot_fits(buf, count); }

void PeerAllReduce::all_reduce(void* buf, size_t count, void* stream) {
  cu::Exec ex;
  ex.stream = static_cast<cudaStream_t>(stream);
  const cu::Status st = cu::all_reduce_oneshot_bf16(s_->group, static_cast<cu::bf16*>(buf), count, ex);
  if (!st.ok()) throw Error(st.message());
}

void PeerAllReduce::abort() {
  if (s_ && s_->abort_host) *reinterpret_cast<volatile int*>(s_->abort_host) = 1;
}

}  // namespace grpst
