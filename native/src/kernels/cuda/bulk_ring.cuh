// Hopper primitives of the persistent decode kernel (and the mbarriers of the warp-specialized
// weight-only GEMM): mbarriers, 1-D bulk copies (TMA without a tensor map) from global into shared
// memory, loads that bypass the L1 (data other blocks of the same launch wrote), and a grid-wide
// barrier.
#pragma once
#include <cstdint>

#include "device_utils.cuh"
#include "mma_utils.cuh"  // smem_addr

namespace grpst::cuda {

// ---- mbarriers ---------------------------------------------------------------------------------

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the async proxy (the bulk copies complete on them).
__device__ __forceinline__ void mbar_fence_init() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}
// One arrival that also announces `bytes` still to land through complete_tx.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
}
// One arrival (a consumer done with a stage).
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ bool mbar_try_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
      : "=r"(done)
      : "r"(smem_addr(bar)), "r"(parity)
      : "memory");
  return done != 0;
}
// Waits until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  while (!mbar_try_wait(bar, parity)) {
  }
}

// A ring's barriers, by thread 0 (the caller syncs the block after): `full[s]` completed by the
// producer's one arrival with the stage's bytes, `empty[s]` by each of `consumers` arrivals.
template <int R>
__device__ __forceinline__ void mbar_init_ring(uint64_t (&full)[R], uint64_t (&empty)[R], uint32_t consumers) {
  if (threadIdx.x != 0) return;
  for (int s = 0; s < R; ++s) {
    mbar_init(&full[s], 1);
    mbar_init(&empty[s], consumers);
  }
  mbar_fence_init();
}
// A producer's whole pass over stages [0, total) of a ring of R: the first R stages' weights
// before its wait on the previous kernel (they do not depend on it), then each later stage's
// weights once every consumer freed its slot (`empty`, phase of the slot's previous use), and
// each stage's activations after the wait. weights(c) / activations(c) arm and issue stage c's
// copies.
template <int R, class Weights, class Activations>
__device__ __forceinline__ void ring_produce(int total, uint64_t (&empty)[R], Weights&& weights,
                                             Activations&& activations) {
#pragma unroll 1  // (rolled, as the kernels had it when they wrote this loop themselves)
  for (int c = 0; c < R && c < total; ++c) weights(c);
  griddep_wait();
  for (int c = 0; c < total; ++c) {
    if (c >= R) {
      mbar_wait(&empty[c % R], ((c / R) - 1) & 1);
      weights(c);
    }
    activations(c);
  }
}
// An L2 policy for data read once (the streamed weights): evicted first, so the KV cache and the
// activations the step reuses stay in the L2.
__device__ __forceinline__ uint64_t l2_evict_first_policy() {
  uint64_t policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0;" : "=l"(policy));
  return policy;
}

// bytes (a multiple of 16, both addresses 16-byte aligned) from global to shared memory; the
// copy counts its bytes off `bar`'s transaction count when they have landed.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar,
                                              uint64_t policy) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
}

// Brings the 128-byte line at p into the L2, to stay there (the attention phase's keys and values,
// fetched while the QKV product still runs).
__device__ __forceinline__ void prefetch_l2_keep(const void* p) {
  asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(p));
}

// ---- barriers and coherent loads ---------------------------------------------------------------

// Loads through the L2 only: an SM's L1 is not coherent with other SMs' stores, and data written
// by other blocks of the same launch must not be read from a line this SM cached earlier.
__device__ __forceinline__ uint4 ld_cg16(const void* p) { return __ldcg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ float ld_cg_f32(const float* p) { return __ldcg(p); }

// All blocks of the launch (co-resident: cooperative launch) meet here, for the k-th time in this
// launch (k = 0, 1, ...): `count` only grows during a launch, so a block adds its arrival without
// waiting for an answer and polls until all `blocks` arrivals of barrier k are in. Called by one
// thread per block after the block's own barrier; the fence orders the block's earlier global
// stores before the arrival, the acquire loads order its later loads after the others'. At the
// end of the launch grid_exit_thread returns the words to zero for the next one.
__device__ __forceinline__ void grid_barrier_thread(unsigned* count, unsigned k, unsigned blocks) {
  __threadfence();
  asm volatile("red.relaxed.gpu.global.add.u32 [%0], 1;" ::"l"(count) : "memory");
  const unsigned target = (k + 1) * blocks;
  unsigned seen;
  do {
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(count) : "memory");
  } while (seen < target);
}
// The last block to leave resets `count` and `exits` (nothing reads them until the next launch,
// which the stream orders after this one).
__device__ __forceinline__ void grid_exit_thread(unsigned* count, unsigned* exits, unsigned blocks) {
  __threadfence();
  if (atomicAdd(exits, 1u) == blocks - 1) {
    atomicExch(count, 0u);
    atomicExch(exits, 0u);
  }
}

}  // namespace grpst::cuda
