// The tiled weight-only GEMM at 2-64 tokens with its loads and its products in different warps
// (warp specialization; sm_90a machine code only): y[M,N] = x[M,K] . W[N,K]^T, W decoded to bf16
// in registers and multiplied by wgmma, as in linear_wo_wgmma.cuh.
//
// Why another kernel: the one-warpgroup kernels have every thread copy the next stage and meet at
// a block barrier each 64-column step, and each block re-reads x for only 64-128 weight rows; ncu
// and the sweeps put them at the latency of that ring (docs/benchmarks-gpu-wgmma.md). Here:
//  - one thread of a producer warp fills a ring of kRing stages by the tensor memory accelerator,
//    three or four copies a stage, each counting its bytes off the stage's `full` mbarrier, through
//    tensor maps made on the host per call (WsMaps): the block's weight tiles' 64 columns (the
//    packed fragments of a tile and step lie contiguous, 1 KB int8_wo / 512 B int4; the tiles
//    nkb steps apart), their int4 scales and zeros, and x's 64 x 64 block in wgmma's
//    128-byte-swizzle layout; zeros past M, K and the last tile. (One 1-D bulk copy per tile and
//    scale row, 17-49 a stage, measured 3% (int8_wo) and 35% (int4) slower per decode step on an
//    H200: the copies' count, not their bytes, bound it.)
//  - four consumer warpgroups (16 warps of one 16-row tile each: 256 weight rows share each x
//    block) wait on `full`, read their weights and scales into registers, decode a step while
//    their previous step's wgmma run (two A buffers, even and odd steps), free the stage of the
//    step before that (`empty`, one arrival per warp) and issue the step's wgmma. Two warpgroups
//    of two tiles per warp (the same 256 rows, half the warps) measured 10% slower at 64 tokens
//    on an H200 (int8_wo decode step at 512 keys 8.20 against 7.45 ms, int4 7.39 against 6.73),
//    and without the second A buffer even;
//  - no block barrier in the loop; the K split, the reduction and the epilogue are
//    finish_block's (linear_wo_tiled_parts.cuh), after which the ring is its scratch.
// int8_wo, and int4 in groups of 64 columns or more (one set of scales per step); x's block is 16
// rows up to 16 tokens (wgmma n16), 32 at 17-32 (n32), 64 at 33-64 (n64), rows past M zeros. At
// up to 32 tokens, where the blocks leave SMs idle, the work is shared by stream-K
// (linear_wo_ws_streamk.cuh; StreamK).
#pragma once
#include <cuda.h>  // CUtensorMap (the driver's encoder is reached through the runtime: no -lcuda)

#include "bulk_ring.cuh"
#include "linear_wo_wgmma.cuh"
#include "linear_wo_ws_streamk.cuh"

namespace grpst::cuda {
namespace {

// Four consumer warpgroups of one 16-row tile per warp (256 rows); 8J token columns (J = 2, 4, 8).
template <class Dec, int J>
struct WsShape {
  static constexpr int kMmaWarps = 16;
  static constexpr int kThreads = kMmaWarps * 32 + 32;  // + the producer warp
  static constexpr int kTiles = kMmaWarps, kRows = 16 * kTiles, kXRows = 8 * J;
  static constexpr int kTileBytes = 32 * Dec::kLaneBytes;  // a tile's 64 columns
  static constexpr int kWBytes = kTiles * kTileBytes;
  static constexpr int kSBytes = Dec::kScaled ? kTiles * 64 : 0;  // [kTiles][16] scales, then zeros (bf16)
  static constexpr int kXOff = (kWBytes + kSBytes + 1023) / 1024 * 1024;
  static constexpr int kStageBytes = kXOff + kXRows * 128;
  static constexpr int kRing = 8;  // int8_wo 192 KB, int4 144 KB: one block per SM
  static constexpr int kRedStride = kXRows + 4;
  static constexpr int kRedBytes = kRows * kRedStride * 4;
  static constexpr int kUsed = kRing * kStageBytes > kRedBytes ? kRing * kStageBytes : kRedBytes;
  static constexpr int kSmem = kUsed + 1024;  // the kernel aligns its base up to 1,024 bytes
  static_assert(kStageBytes % 1024 == 0, "x's swizzle atoms start 1,024-byte aligned");
};

// The tensor maps of one call: x[M,K] (bf16, 64 x 64 boxes, 128-byte swizzle); the packed weights
// as [tile][nkb * kTileBytes / 256][256] bytes (boxes of one step of kTiles tiles); int4 scales and
// zeros as [tile][group][16] bf16 (boxes of one group of kTiles tiles).
struct WsMaps {
  CUtensorMap x, w, s, z;
};

__device__ __forceinline__ void tma_2d(void* dst, const CUtensorMap& map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void tma_3d(void* dst, const CUtensorMap& map, int c0, int c1, int c2, uint64_t* bar,
                                       uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, "
      "%3, %4}], [%5], %6;" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
}

template <class Dec, int J, bool StreamK>
__global__ void __launch_bounds__(WsShape<Dec, J>::kThreads, 1)
    linear_wo_ws_kernel(Weight W, LinearOut out, int M, int splits, float* partial, int* counters,
                        const __grid_constant__ WsMaps maps) {  // x: maps.x
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = WsShape<Dec, J>;
  constexpr int R = S::kRing;
  constexpr int TW = 1;  // (finish_block's and wg_multiply's tiles per warp)
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __shared__ bool is_last;
  __shared__ int piece_last;
  __shared__ __align__(8) uint64_t full[R], empty[R];
  uint8_t* smem = wg_smem(smem_raw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const int K = W.K, nkb = (K + 63) / 64, T = (W.N + S::kRows - 1) / S::kRows;
  // The block's work: one K slice of one tile (blockIdx.y of `splits`), or under stream-K
  // (linear_wo_ws_streamk.cuh) the tail of one tile and the head of the next.
  WsPiece piece[2];
  ws_block_pieces<StreamK>(T, nkb, splits, piece);
  const int total = piece[0].steps + piece[1].steps;  // stages the ring passes: counted on across pieces
  const int G = Dec::kScaled ? W.group_size : 64;
  mbar_init_ring(full, empty, S::kMmaWarps);  // (each consumer warp frees a stage)
  __syncthreads();
  float acc[TW][J][4];
  zero_sums(acc);

  if (warp == S::kMmaWarps) {
    // ---- the producer warp (its lane 0) ----
    if (lane == 0) {
      const uint64_t policy = l2_evict_first_policy();
      const bool zeros = Dec::kScaled && W.group_zero != nullptr;
      const uint32_t bytes = S::kWBytes + S::kXRows * 128 + (Dec::kScaled ? S::kTiles * 32 * (zeros ? 2 : 1) : 0);
      const auto weights = [&](int c) {  // stage c's weights (and scales): every box whole, zeros outside
        uint8_t* st = smem + (c % R) * S::kStageBytes;
        const int kb = ws_stage_kb(piece, c), tile0 = ws_stage_tile(piece, c) * S::kTiles;
        mbar_arrive_expect_tx(&full[c % R], bytes);
        tma_3d(st, maps.w, 0, kb * (S::kTileBytes / 256), tile0, &full[c % R], policy);
        if constexpr (Dec::kScaled) {
          const int group = kb * 64 / G;
          tma_3d(st + S::kWBytes, maps.s, 0, group, tile0, &full[c % R], policy);
          if (zeros) tma_3d(st + S::kWBytes + S::kTiles * 32, maps.z, 0, group, tile0, &full[c % R], policy);
        }
      };
      // (the first stages' weights before the wait on the previous kernel, x after: ring_produce)
      ring_produce(total, empty, weights, [&](int c) {
        tma_2d(smem + (c % R) * S::kStageBytes + S::kXOff, maps.x, ws_stage_kb(piece, c) * 64, 0, &full[c % R]);
      });
    }
  } else {
    // ---- the consumer warpgroups ----
    griddep_wait();
    const uint32_t smem_base = smem_addr(smem);
    // Waits for stage c and reads its weights and scales.
    const auto begin = [&](int c, typename Dec::Raw(&raw)[TW], typename Dec::Scales(&sc)[TW]) {
      mbar_wait(&full[c % R], (c / R) & 1);
      const uint8_t* st = smem + (c % R) * S::kStageBytes;
#pragma unroll
      for (int t = 0; t < TW; ++t) {
        const int tl = warp * TW + t;
        raw[t] = Dec::read_packed(st + tl * S::kTileBytes, lane);
        // the tile's group: its 16 scales, and kTiles * 16 further on its 16 zeros
        sc[t] = Dec::template scales<true>(reinterpret_cast<const bf16*>(st + S::kWBytes) + tl * 16, 0, G,
                                           W.group_zero != nullptr, g, S::kTiles * 16);
      }
      return smem_base + (c % R) * S::kStageBytes + S::kXOff;
    };
    const auto release = [&](int c) {  // every warp's products of stage c are done with it
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[c % R]);
    };
    // Two A buffers, for even and odd steps: step s decodes while step s - 1's products run; the
    // wait before it leaves one group in flight, so step s - 2's (this buffer, its stage) are done.
    uint32_t a0[4][TW][4] = {}, a1[4][TW][4] = {};
    int c0 = 0;  // the piece's first stage
    const auto step = [&](int s, uint32_t(&a)[4][TW][4]) {
      typename Dec::Raw raw[TW];
      typename Dec::Scales sc[TW];
      const uint32_t xaddr = begin(c0 + s, raw, sc);
      wgmma_wait_one();
      pin(a);
      if (s >= 2) release(c0 + s - 2);
      wg_multiply<Dec, J, TW, 0, 4>(acc, a, raw, sc, xaddr);
    };
#pragma unroll  // (piece[i] in registers, not on the stack)
    for (int i = 0; i < 2; ++i) {
      const int steps = piece[i].steps;
      if (steps == 0) break;
      if (i > 0) zero_sums(acc);
      // pairs of steps, then an odd last one (no path writes a buffer the last group in flight
      // reads: ptxas would serialize every wgmma, C7513)
      int s = 0;
      for (; s + 1 < steps; s += 2) {
        step(s, a0);
        step(s + 1, a1);
      }
      if (s < steps) step(s, a0);
      wgmma_wait_all_pinned(acc, a0, a1);
      if constexpr (StreamK) {
        // the piece's last two stages back to the producer, then its sums out
        if (steps >= 2) release(c0 + steps - 2);
        release(c0 + steps - 1);
        c0 += steps;
        ws_finish_piece<Dec, J, S::kMmaWarps * 32>(acc, W, out, M, piece[i], T, partial, counters, piece_last);
      } else {
        break;  // (one piece: finish_block below, after the producer's last copies)
      }
    }
  }
  griddep_launch_dependents();
  if constexpr (!StreamK) wg_end<Dec, S, TW, J>(smem, acc, W, out, M, splits, partial, counters, is_last);
#endif
}

// Whether this GPU is of compute capability 9.0, the only one that runs the sm_90a machine code
// (others JIT-compile the compute_90 PTX, in which these kernels are empty); asked of the runtime
// once per process (a machine's GPUs are of one kind).
bool gpu_runs_sm90a() {
  static const bool sm90 = [] {
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major == 9 && minor == 0;
  }();
  return sm90;
}

// The driver's tensor-map encoder, reached through the runtime once per process (no -lcuda).
using TensorMapEncode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                     const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                     CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
TensorMapEncode tensor_map_encoder() {
  static const TensorMapEncode encode = []() -> TensorMapEncode {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
#if CUDART_VERSION >= 12050
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found);
#else  // (the versioned query came with CUDA 12.5)
    const cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &found);
#endif
    if (e != cudaSuccess || found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    return reinterpret_cast<TensorMapEncode>(fn);
  }();
  return encode;
}

// One map: dims / box innermost first, strides[rank - 1] in bytes, zeros outside.
Status encode_map(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, const void* base, const cuuint64_t* dims,
                  const cuuint64_t* strides, const cuuint32_t* box, CUtensorMapSwizzle swizzle, const char* what) {
  const TensorMapEncode encode = tensor_map_encoder();
  if (!encode) return invalid("linear_wo_tiled", "the driver has no cuTensorMapEncodeTiled (the warp-specialized kernel needs it)");
  const cuuint32_t elem[3] = {1, 1, 1};
  const CUresult r = encode(map, type, rank, const_cast<void*>(base), dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return invalid("linear_wo_tiled", std::string("cuTensorMapEncodeTiled refused ") + what + " (error " +
                                          std::to_string(static_cast<int>(r)) + ")");
  return ok_status();
}

template <class S, class Dec>
Status ws_maps(const bf16* x, int M, const Weight& W, WsMaps* maps) {
  const cuuint64_t K = static_cast<cuuint64_t>(W.K), nkb = (K + 63) / 64, ntiles = (static_cast<cuuint64_t>(W.N) + 15) / 16;
  {
    const cuuint64_t dims[2] = {K, static_cast<cuuint64_t>(M)}, strides[1] = {K * 2};
    const cuuint32_t box[2] = {64, S::kXRows};
    GRPST_TRY(encode_map(&maps->x, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, x, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B, "x"));
  }
  {
    const cuuint64_t tile_bytes = nkb * S::kTileBytes;
    const cuuint64_t dims[3] = {256, tile_bytes / 256, ntiles}, strides[2] = {256, tile_bytes};
    const cuuint32_t box[3] = {256, S::kTileBytes / 256, S::kTiles};
    GRPST_TRY(encode_map(&maps->w, CU_TENSOR_MAP_DATA_TYPE_UINT8, 3, W.data, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_NONE,
                         "the weights"));
  }
  maps->s = maps->z = maps->w;  // unused without scales
  if constexpr (Dec::kScaled) {
    const cuuint64_t ngroups = (K + W.group_size - 1) / W.group_size;
    const cuuint64_t dims[3] = {16, ngroups, ntiles}, strides[2] = {32, ngroups * 32};
    const cuuint32_t box[3] = {16, 1, S::kTiles};
    GRPST_TRY(encode_map(&maps->s, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, W.group_scale, dims, strides, box,
                         CU_TENSOR_MAP_SWIZZLE_NONE, "the group scales"));
    if (W.group_zero)
      GRPST_TRY(encode_map(&maps->z, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, W.group_zero, dims, strides, box,
                           CU_TENSOR_MAP_SWIZZLE_NONE, "the group zeros"));
  }
  return ok_status();
}

}  // namespace
}  // namespace grpst::cuda
