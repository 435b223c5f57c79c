// The one-shot all-reduce across GPUs (allreduce_oneshot.h).
//
// Block b of every rank handles the same 16-byte chunks (c / kOneShotThreads % kOneShotBlocks == b,
// whatever the grid), so a block only ever meets its namesakes on the other ranks:
//   1. copy this rank's chunks into its region's data half (calls alternate halves by the block's
//      call count, so a rank never overwrites a half a slower rank may still be reading);
//   2. barrier: thread r stores the call count into rank r's flag [b][this rank] (release, system
//      scope, after the block's copies) and waits until this rank's flag [b][r] reaches it
//      (acquire);
//   3. read every rank's chunk (volatile: no stale L1 line from two calls ago) and sum in rank order.
// Why two halves suffice without a closing barrier: a rank starts call n+2 (writing call n's half)
// only after passing call n+1's barrier, which every other rank's block b reaches only after its
// call n finished reading (each call's work follows griddep_wait, which returns once every kernel
// before it in the stream has finished, the previous call included).
#include "allreduce_oneshot.h"
#include "device_utils.cuh"

namespace grpst::cuda {

namespace {

__device__ __forceinline__ void store_release_sys(uint32_t* p, uint32_t v) {
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ uint32_t load_acquire_sys(const uint32_t* p) {
  uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ uint4 load_volatile16(const void* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

template <int N>
__global__ void __launch_bounds__(kOneShotThreads) allreduce_oneshot_kernel(OneShotGroup g, uint4* __restrict__ buf /*[chunks]*/,
                                                                            int chunks) {
  const int b = blockIdx.x, tid = threadIdx.x;
  // Launched with PDL: everything below waits for the previous kernel (and, through it, for the
  // previous all-reduce) to finish; the next kernel may start its own pre-wait loads (weights)
  // while this one waits at its barrier.
  griddep_wait();
  griddep_launch_dependents();
  __shared__ uint32_t flag_s;
  if (tid == 0) flag_s = g.counters[b] + 1;
  __syncthreads();
  const uint32_t flag = flag_s;
  const size_t half = (flag & 1u) ? kOneShotMaxBytes : 0;
  constexpr int stride = kOneShotBlocks * kOneShotThreads;
  uint4* mine = reinterpret_cast<uint4*>(g.regions[g.rank] + kOneShotSignalBytes + half);
  for (int c = b * kOneShotThreads + tid; c < chunks; c += stride) mine[c] = buf[c];
  __syncthreads();
  if (tid < N) {
    uint32_t* theirs = reinterpret_cast<uint32_t*>(g.regions[tid]) + b * kOneShotMaxRanks + g.rank;
    store_release_sys(theirs, flag);
    const uint32_t* own = reinterpret_cast<const uint32_t*>(g.regions[g.rank]) + b * kOneShotMaxRanks + tid;
    // Wrap-safe: a peer is at most one call ahead. The abort word (host memory) is read rarely.
    for (int spins = 0; static_cast<int32_t>(load_acquire_sys(own) - flag) < 0;) {
      if (++spins == 2048) {
        spins = 0;
        if (*reinterpret_cast<const volatile int*>(g.abort_flag)) break;
      }
    }
  }
  __syncthreads();
  const char* data[N];
#pragma unroll
  for (int r = 0; r < N; ++r) data[r] = g.regions[r] + kOneShotSignalBytes + half;
  for (int c = b * kOneShotThreads + tid; c < chunks; c += stride) {
    uint4 v[N];
#pragma unroll
    for (int r = 0; r < N; ++r) v[r] = load_volatile16(data[r] + static_cast<size_t>(c) * 16);
    float sum[8], f[8];
    unpack8(v[0], sum);
#pragma unroll
    for (int r = 1; r < N; ++r) {
      unpack8(v[r], f);
#pragma unroll
      for (int i = 0; i < 8; ++i) sum[i] += f[i];
    }
    buf[c] = pack8(sum);
  }
  if (tid == 0) g.counters[b] = flag;
}

template <int N>
Status launch_oneshot(const OneShotGroup& g, bf16* buf, int chunks, const Exec& ex) {
  const int blocks = std::min(kOneShotBlocks, (chunks + kOneShotThreads - 1) / kOneShotThreads);
  // Always with PDL (the kernel waits for its predecessor before touching anything), so its
  // launch overlaps the previous kernel's tail and the next kernel's start overlaps its barrier.
  Exec pdl = ex;
  pdl.pdl = true;
  return launch("one-shot all-reduce", allreduce_oneshot_kernel<N>, dim3(blocks), dim3(kOneShotThreads), 0, pdl, g,
                reinterpret_cast<uint4*>(buf), chunks);
}

}  // namespace

bool oneshot_fits(const void* buf, size_t count) {
  return count > 0 && count % 8 == 0 && count * 2 <= kOneShotMaxBytes && reinterpret_cast<uintptr_t>(buf) % 16 == 0;
}

Status all_reduce_oneshot_bf16(const OneShotGroup& g, bf16* buf, size_t count, const Exec& ex) {
  if (!oneshot_fits(buf, count)) return invalid("one-shot all-reduce", "the buffer is not 16-byte aligned whole chunks of at most 1 MiB");
  const int chunks = static_cast<int>(count / 8);
  switch (g.size) {
    case 2: return launch_oneshot<2>(g, buf, chunks, ex);
    case 3: return launch_oneshot<3>(g, buf, chunks, ex);
    case 4: return launch_oneshot<4>(g, buf, chunks, ex);
    case 5: return launch_oneshot<5>(g, buf, chunks, ex);
    case 6: return launch_oneshot<6>(g, buf, chunks, ex);
    case 7: return launch_oneshot<7>(g, buf, chunks, ex);
    case 8: return launch_oneshot<8>(g, buf, chunks, ex);
    default: return invalid("one-shot all-reduce", "groups of 2 to 8 ranks only, not " + std::to_string(g.size));
  }
}

}  // namespace grpst::cuda
