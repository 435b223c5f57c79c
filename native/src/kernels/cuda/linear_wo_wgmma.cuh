// The tiled weight-only GEMM on Hopper's warpgroup MMA (wgmma, sm_90a machine code only):
// y[M,N] = x[M,K] . W[N,K]^T at 17-64 tokens, W decoded to bf16 in registers, never written out.
//
// The mma.sync kernel (linear_wo_tiled.cu) multiplies each decoded 16 x 16 piece of W with every
// 8 tokens of x in turn (eight m16n8k16 and four ldmatrix.x4 of x per warp and step of 16 columns
// at 64 tokens), and measured bound by that issue, not by its weight bytes (126-210 TFLOP/s at 64
// tokens on an H200). Here the block is one warpgroup and each step of 16 columns is one
// m64nNk16 wgmma per 64 weight rows (N = 16, 32 or 64 tokens): A, the decoded weights, from the
// registers in mma.sync's A-fragment layout (warp w holds rows 16w..16w+15, so the packed
// fragments feed it as they are), B, the tokens, read by the tensor cores from shared memory. The
// ring, the int4 scales, the K split and the epilogue are the mma.sync kernel's
// (linear_wo_tiled_parts.cuh); only x's layout in a stage differs: a token's 64 columns are one
// 128-byte row and the rows form the 128-byte-swizzle K-major layout wgmma reads (8-row atoms of
// 1,024 bytes; chunk c of row r at ((c ^ (r % 8)) * 16)), the stages 1,024-byte aligned.
// Two kernels: linear_wo_wgmma_kernel decodes a step once the previous step's wgmma are done
// (or, Overlap, reads it before that wait), linear_wo_wgmma_pipe_kernel decodes while they run
// (by steps or by half steps); linear_wo_tiled.cu's plan_for says which runs where.
#pragma once
#include "linear_wo_tiled_parts.cuh"

namespace grpst::cuda {
namespace {

// One warpgroup of 4 warps, TW 16-row tiles per warp (64 or 128 weight rows: TW wgmma per step),
// 8J tokens. A stage: weights [kTiles][32 lanes][kLaneBytes] | int4 scales | x [8J][128 bytes].
// (Two warpgroups sharing each x stage, 256 rows, measured slower than 64 or 128 rows at every
// shape of the Qwen3-8B layers at 64 tokens on an H200: o_proj 22.8 against 15.9 us; the kernel
// is bound by the latency of its ring, and fewer, larger blocks keep fewer stages in flight.)
// Overlap: a ring of one stage more, for the kernels whose previous step's wgmma still read a stage
// while the next is refilled.
template <class Dec, int J, int TW, bool Overlap>
struct WgShape {
  static constexpr int kThreads = 128, kMmaWarps = 4;
  static constexpr int kTiles = 4 * TW, kRows = 16 * kTiles, kXRows = 8 * J;
  static constexpr int kWBytes = kTiles * 32 * Dec::kLaneBytes;
  static constexpr int kSBytes = Dec::kScaled ? kTiles * kScaleEntries * 64 : 0;
  static constexpr int kXOff = kWBytes + kSBytes;
  static constexpr int kStageBytes = kXOff + kXRows * 128;
  static_assert(kXOff % 1024 == 0 && kStageBytes % 1024 == 0, "x's swizzle atoms start 1,024-byte aligned");
  static constexpr int kRedStride = kXRows + 4;
  static constexpr int kRedBytes = kRows * kRedStride * 4;
  // Stages of the cp.async ring: kAhead loading while the block works on one (and, with Overlap,
  // one more that the previous step's wgmma still read). Six, five ahead, measured slower on an
  // H200 (int4 step at 64 rows 11.19 against 9.75 ms): fewer blocks fit on an SM, and its blocks
  // are short.
  static constexpr int kAhead = kStages - 1, kRing = Overlap ? kStages + 1 : kStages;
  static constexpr bool kScalesPerStep = false;  // ScaleLoader (linear_wo_tiled_parts.cuh)
  static constexpr int kUsed = kRing * kStageBytes > kRedBytes ? kRing * kStageBytes : kRedBytes;
  static constexpr int kSmem = kUsed + 1024;  // the kernel aligns its base up to 1,024 bytes
  // 16-byte chunk c (columns 8c..8c+7) of token r, 128-byte swizzled
  __device__ static int x_offset(int r, int c) { return kXOff + r * 128 + ((c ^ (r & 7)) << 4); }
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The shared-memory matrix descriptor of B for one wgmma: K-major, 128-byte swizzle, 8-row groups
// 1,024 bytes apart (the leading offset is unused for this layout and set to 1). Steps of 16
// columns inside the 128-byte rows advance the start address by 32 bytes.
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t smem_addr) {
  return static_cast<uint64_t>((smem_addr & 0x3FFFF) >> 4) | (1ull << 16) | (static_cast<uint64_t>(1024 >> 4) << 32) |
         (1ull << 62);
}
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_wait_all() { asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory"); }
// All but the most recent commit group done.
__device__ __forceinline__ void wgmma_wait_one() { asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory"); }
// Shared memory written by cp.async (the generic proxy) and read next by the tensor cores.
__device__ __forceinline__ void fence_proxy_async_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Keeps a register's value where it is until here: the wgmma in flight still reads (A) or
// writes (the accumulators) registers the compiler believes it is done with.
__device__ __forceinline__ void pin(float& v) { asm volatile("" : "+f"(v)::"memory"); }
__device__ __forceinline__ void pin(uint32_t& v) { asm volatile("" : "+r"(v)::"memory"); }
template <class T, size_t N>
__device__ __forceinline__ void pin(T (&a)[N]) {
#pragma unroll
  for (size_t i = 0; i < N; ++i) pin(a[i]);
}
// Waits for every wgmma, then pins the registers they read or wrote (see pin).
template <class... Regs>
__device__ __forceinline__ void wgmma_wait_all_pinned(Regs&... regs) {
  wgmma_wait_all();
  (pin(regs), ...);
}

// d[N/2] += A (64 x 16, registers) . B (16 x N, shared memory), m64nNk16 bf16 with fp32 accumulators.
__device__ __forceinline__ void wgmma_rs_n16(float* d, const uint32_t (&a)[4], uint64_t desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, 1, 1, 1, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}
__device__ __forceinline__ void wgmma_rs_n32(float* d, const uint32_t (&a)[4], uint64_t desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, 1, 1, 1, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}
__device__ __forceinline__ void wgmma_rs_n64(float* d, const uint32_t (&a)[4], uint64_t desc) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, 1, 1, 1, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}
template <int J>
__device__ __forceinline__ void wgmma_rs(float* d, const uint32_t (&a)[4], uint64_t desc) {
  if constexpr (J == 2) wgmma_rs_n16(d, a, desc);
  else if constexpr (J == 4) wgmma_rs_n32(d, a, desc);
  else wgmma_rs_n64(d, a, desc);
}
#endif

// The start and end every kernel below shares: its shared memory aligned to 1,024 bytes (x's
// swizzle atoms), and after its last step (its wait on the previous kernel and its trigger of the
// next stay in the kernels' own text, where test/unit/cuda-dependent-launch.test.ts checks their
// order) the ring handed to finish_block as the reduction buffer.
__device__ __forceinline__ uint8_t* wg_smem(uint8_t* raw) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(raw));
  return raw + ((1024 - (addr & 1023)) & 1023);
}
template <class Dec, class S, int TW, int J>
__device__ __forceinline__ void wg_end(uint8_t* smem, const float (&acc)[TW][J][4], const Weight& W, const LinearOut& out,
                                       int M, int splits, float* partial, int* counters, bool& is_last,
                                       bool spread = false) {
  __syncthreads();  // the ring is free: it becomes the reduction buffer
  finish_block<Dec, S, TW, J>(smem, acc, W, out, M, splits, partial, counters, is_last, spread);
}
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// Decodes pieces P0 .. P0 + NP - 1 (16 columns each) of the step's weights into a, with the scales
// sc, and issues their wgmma against the stage's x (xaddr) as one commit group. refresh(piece, sc)
// runs before each piece is decoded: groups under 64 columns read that piece's scales there (every
// piece is decoded before the first wgmma: a register written between a group's first wgmma and
// its wait makes ptxas serialize them, C7513); one set per step needs nothing (KeepScales).
struct KeepScales {
  template <class Scales>
  __device__ __forceinline__ void operator()(int, Scales&) const {}
};
template <class Dec, int J, int TW, int P0, int NP, class Refresh = KeepScales>
__device__ __forceinline__ void wg_multiply(float (&acc)[TW][J][4], uint32_t (&a)[NP][TW][4],
                                            const typename Dec::Raw (&raw)[TW], typename Dec::Scales (&sc)[TW],
                                            uint32_t xaddr, Refresh refresh = {}) {
#pragma unroll
  for (int s = 0; s < NP; ++s) {
    refresh(P0 + s, sc);
#pragma unroll
    for (int t = 0; t < TW; ++t) Dec::frag(raw[t], P0 + s, sc[t], a[s][t]);
  }
  wgmma_fence();  // a was written by this thread
#pragma unroll
  for (int s = 0; s < NP; ++s) {
    const uint64_t desc = wgmma_desc_sw128(xaddr + (P0 + s) * 32);
#pragma unroll
    for (int t = 0; t < TW; ++t) wgmma_rs<J>(&acc[t][0][0], a[s][t], desc);
  }
  wgmma_commit();
}
#endif

// Overlap false: each step waits for the previous step's wgmma first, then for its stage, then
// refills and decodes. Overlap true: the stage wait, the refill (of the slot two steps back) and
// the reads of the step's weights and scales come before the wait on the previous step's wgmma,
// so they run under it; only the decoding into `a`, which that wgmma still reads, waits.
template <class Dec, int J, int TW, bool Overlap>
__global__ void __launch_bounds__(128) linear_wo_wgmma_kernel(const bf16* __restrict__ x, Weight W, LinearOut out,
                                                              int M, int splits, float* partial, int* counters) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(J == 2 || J == 4 || J == 8, "16, 32 or 64 tokens");
  using S = WgShape<Dec, J, TW, Overlap>;
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __shared__ bool is_last;
  uint8_t* smem = wg_smem(smem_raw);
  const uint32_t smem_addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  float acc[TW][J][4];  // warp w's tiles w * TW + t, the m16n8 layout per 8 tokens (wgmma's D per warp)
  zero_sums(acc);
  const BlockWork<Dec, S> work(W, x, M, splits);
  work.prime_weights(smem);  // the first stages' weights before the wait on the previous kernel
  griddep_wait();
  work.prime_activations(smem);

  uint32_t a[4][TW][4] = {};  // A of the step's four 16-column pieces, read by wgmma until its wait
  for (int it = 0; it < work.steps; ++it) {
    // Without Overlap: the previous step's wgmma are done with its stage (refilled below) and a.
    if constexpr (!Overlap) wgmma_wait_all_pinned(a);
    cp_async_wait<S::kAhead - 1>();
    fence_proxy_async_smem();
    // Stage `it` landed for every thread; the slot refilled next is free: without Overlap it is
    // step it - 1's, whose wgmma every warp waited for above; with it, step it - 2's, whose wgmma
    // every warp waited for in the previous step.
    __syncthreads();
    work.refill(smem, it + S::kAhead);
    const uint8_t* st = smem + (it % S::kRing) * S::kStageBytes;
    typename Dec::Raw raw[TW];
#pragma unroll
    for (int t = 0; t < TW; ++t) raw[t] = Dec::read(st + (warp * TW + t) * 32 * Dec::kLaneBytes + lane * 16);
    const uint32_t xaddr = smem_addr + (it % S::kRing) * S::kStageBytes + S::kXOff;
    // The scales of the first 16 columns (all four for groups of 64 columns or more): with Overlap
    // read before the wait, with the weights; the others (smaller groups) as the pieces decode.
    typename Dec::Scales sc[TW];
#pragma unroll
    for (int t = 0; t < TW; ++t) sc[t] = work.template scales<true>(st, warp * TW + t, 0, g);
    if constexpr (Overlap) wgmma_wait_all_pinned(a);
    if (work.G >= 64) {
      wg_multiply<Dec, J, TW, 0, 4>(acc, a, raw, sc, xaddr);
    } else {
      wg_multiply<Dec, J, TW, 0, 4>(acc, a, raw, sc, xaddr, [&](int piece, typename Dec::Scales(&s)[TW]) {
        if (piece > 0)
#pragma unroll
          for (int t = 0; t < TW; ++t) s[t] = work.template scales<true>(st, warp * TW + t, piece, g);
      });
    }
  }
  wgmma_wait_all_pinned(acc);
  cp_async_wait<0>();
  griddep_launch_dependents();
  wg_end<Dec, S, TW, J>(smem, acc, W, out, M, splits, partial, counters, is_last);
#endif
}

// The pipelined kernels: the decoding of one part of the work runs while the tensor cores
// multiply another.
// - By steps (Half false; GRPST_CUDA_WO_WGMMA_PIPE=1, int8_wo at 33-64 tokens by default): two A
//   buffers, for even and odd steps, so step it decodes while step it - 1's wgmma multiply (the
//   kernel above decodes only after the previous step's are done with its one buffer). Each step
//   waits for all but the last commit group, so step it - 2's (this buffer, and the ring slot
//   refilled next: a ring of kAhead + 2 stages) are done.
// - By half steps (Half true; =2, int4 at 17-32 tokens by default): the kernel above's registers as
//   two halves of two 16-column pieces, each half's wgmma a commit group of their own, so decoding
//   one half runs while the other's multiply, with no more registers (its blocks per SM stay).
//   Before each half the wait leaves one group in flight: the other half's.
// Both: int8_wo, or int4 in groups of 64 columns or more, whose one set of scales per step is read
// before the step's first wgmma (a branch between wgmma groups, as smaller groups' per-piece scales
// or an `if (zeros)` would be, makes ptxas serialize every wgmma, C7513).
template <class Dec, int J, int TW, bool Half>
__global__ void __launch_bounds__(128) linear_wo_wgmma_pipe_kernel(const bf16* __restrict__ x, Weight W, LinearOut out,
                                                                   int M, int splits, float* partial, int* counters) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(J == 2 || J == 4 || J == 8, "16, 32 or 64 tokens");
  using S = WgShape<Dec, J, TW, true>;
  static_assert(S::kRing == S::kAhead + 2, "the slot refilled is two steps back");
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __shared__ bool is_last;
  uint8_t* smem = wg_smem(smem_raw);
  const uint32_t smem_addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  float acc[TW][J][4];
  zero_sums(acc);
  const BlockWork<Dec, S> work(W, x, M, splits);
  work.prime_weights(smem);  // the first stages' weights before the wait on the previous kernel
  griddep_wait();
  work.prime_activations(smem);

  // Waits for stage `it` (every warp past the wgmma that read the slot refilled next), refills,
  // and reads the step's weights and scales.
  const auto begin_step = [&](int it, typename Dec::Raw(&raw)[TW], typename Dec::Scales(&sc)[TW]) {
    cp_async_wait<S::kAhead - 1>();
    fence_proxy_async_smem();
    __syncthreads();
    work.refill(smem, it + S::kAhead);
    const uint8_t* st = smem + (it % S::kRing) * S::kStageBytes;
#pragma unroll
    for (int t = 0; t < TW; ++t) {
      raw[t] = Dec::read(st + (warp * TW + t) * 32 * Dec::kLaneBytes + lane * 16);
      sc[t] = work.template scales<true>(st, warp * TW + t, 0, g);
    }
    return smem_addr + (it % S::kRing) * S::kStageBytes + S::kXOff;
  };
  if constexpr (Half) {
    uint32_t h0[2][TW][4] = {}, h1[2][TW][4] = {};  // A of pieces 0-1 and 2-3 of a step
    for (int it = 0; it < work.steps; ++it) {
      wgmma_wait_one();  // step it - 1's first half done (h0 free); its second half may still run
      pin(h0);
      typename Dec::Raw raw[TW];
      typename Dec::Scales sc[TW];
      const uint32_t xaddr = begin_step(it, raw, sc);
      wg_multiply<Dec, J, TW, 0, 2>(acc, h0, raw, sc, xaddr);
      wgmma_wait_one();  // step it - 1's second half done (h1 free)
      pin(h1);
      // The second half's weights pass the wait too, so that their decoding stays after it.
#pragma unroll
      for (int t = 0; t < TW; ++t) pin(raw[t].w);
      wg_multiply<Dec, J, TW, 2, 2>(acc, h1, raw, sc, xaddr);
    }
    wgmma_wait_all_pinned(acc, h0, h1);
  } else {
    uint32_t a0[4][TW][4] = {}, a1[4][TW][4] = {};  // A of even and odd steps
    const auto step = [&](int it, uint32_t(&a)[4][TW][4]) {
      wgmma_wait_one();  // step it - 2's wgmma (this buffer, the slot refilled next) are done
      pin(a);
      typename Dec::Raw raw[TW];
      typename Dec::Scales sc[TW];
      const uint32_t xaddr = begin_step(it, raw, sc);
      wg_multiply<Dec, J, TW, 0, 4>(acc, a, raw, sc, xaddr);
    };
    // Pairs of steps, then an odd last one: no path on which a buffer is written while the last
    // group in flight still reads it (ptxas would serialize every wgmma, C7513).
    int it = 0;
    for (; it + 1 < work.steps; it += 2) {
      step(it, a0);
      step(it + 1, a1);
    }
    if (it < work.steps) step(it, a0);
    wgmma_wait_all_pinned(acc, a0, a1);
  }
  cp_async_wait<0>();
  griddep_launch_dependents();
  wg_end<Dec, S, TW, J>(smem, acc, W, out, M, splits, partial, counters, is_last);
#endif
}

}  // namespace
}  // namespace grpst::cuda
