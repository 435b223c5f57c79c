// The bf16 GEMM of small decode batches (the forward's 5-16 rows; it runs 2-64; sm_90a machine
// code only): y[M,N] = x[M,K] . W[N,K]^T with both operands streamed into shared memory by the
// tensor memory accelerator and multiplied by wgmma straight from there, the weights read once.
//
// Why not cuBLASLt there: at 8-16 tokens its kernels read gate_up, down_proj and the LM head at
// 83-94% of the copy bandwidth, this one at 86-100%, and its epilogue takes the SwiGLU that
// follows gate_up (decode steps 5% faster on an H100; docs/benchmarks-gpu.md, "bf16 decode batches
// on wgmma"). The weight-only formats' warp-specialized kernel (linear_wo_ws.cuh) with nothing to
// decode:
//  - one thread of a producer warp fills a ring of kRing stages, two copies a stage: the block's
//    256 weight rows x 64 columns (32 KB, 128-byte swizzle, as W lies row-major: no repacking)
//    and x's 8J x 64 block; the first stages' weights before the wait on the previous kernel;
//  - four consumer warpgroups, 64 weight rows each, wait on `full`, issue the stage's four
//    m64nNk16 wgmma from shared memory (A the weights, B the tokens), and free the stage before
//    once the wgmma that read it are done (`empty`, one arrival per warp): one group in flight;
//  - K slices (or stream-K) and the epilogue (store / fp32 / residual add / SwiGLU over
//    interleaved gate and up rows) are linear_wo_tiled's (finish_block, ws_finish_piece): the
//    accumulators lie as the weight-only kernels' do (warp w: rows 16w..16w+15 of the block);
//    where the grid is one wave, every block of a tile adds the slices' sums of its share of the
//    rows (finish_sums' spread: the same bits as the last block adding them all, 0.6-1.2% off
//    the 8-16-row decode steps on an H100).
// At 24-32 tokens it runs even with cuBLASLt, from 40 slower (its narrow projections' main loop:
// see plan()); a second kernel with the operands' roles swapped (linear_bf16_wst_kernel) runs
// where asked.
#include <algorithm>
#include <cstdlib>

#include "env_switch.h"
#include "linear_wo_ws.cuh"

namespace grpst::cuda {
namespace {

// The bf16 weights need no decoding and no scales: the epilogue's value is the sum.
struct WsBf16 {
  __device__ static float scale(float v, const Weight&, int) { return v; }
};

// Four consumer warpgroups of 64 weight rows (256 rows a block), 8J token columns (J = 2, 4, 8).
template <int J>
struct Bf16WsShape {
  static constexpr int kMmaWarps = 16;
  static constexpr int kThreads = kMmaWarps * 32 + 32;  // + the producer warp
  static constexpr int kRows = 256, kXRows = 8 * J;
  static constexpr int kWBytes = kRows * 128;  // 256 rows of 64 bf16, 128-byte swizzle
  static constexpr int kXOff = kWBytes;
  static constexpr int kStageBytes = kXOff + kXRows * 128;
  static constexpr int kRing = J == 8 ? 5 : 6;  // 200-216 KB: one block per SM
  static constexpr int kRedStride = kXRows + 4;
  static constexpr int kRedBytes = kRows * kRedStride * 4;
  static constexpr int kUsed = kRing * kStageBytes > kRedBytes ? kRing * kStageBytes : kRedBytes;
  static constexpr int kSmem = kUsed + 1024;  // the kernel aligns its base up to 1,024 bytes
  static_assert(kStageBytes % 1024 == 0, "swizzle atoms start 1,024-byte aligned");
  static_assert(kSmem <= 227 * 1024, "one block's shared memory");
};

// The tensor maps of one call: x[M,K] (64 x 8J boxes) and W[N,K] (64 x 256 boxes), both bf16 with
// the 128-byte swizzle wgmma reads.
struct Bf16WsMaps {
  CUtensorMap x, w;
};

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void tma_2d_hint(void* dst, const CUtensorMap& map, int c0, int c1, uint64_t* bar,
                                            uint64_t policy) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, "
      "%3}], [%4], %5;" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(smem_addr(bar)), "l"(policy)
      : "memory");
}

// d[N/2] += A (64 x 16, shared memory) . B (16 x N, shared memory), m64nNk16 bf16, fp32 sums.
__device__ __forceinline__ void wgmma_ss_n16(float* d, uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
      : "l"(a), "l"(b));
}
__device__ __forceinline__ void wgmma_ss_n32(float* d, uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(a), "l"(b));
}
__device__ __forceinline__ void wgmma_ss_n64(float* d, uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b));
}
// The same with the roles swapped (linear_bf16_wst_kernel): A the tokens, B 128 weight rows.
__device__ __forceinline__ void wgmma_ss_n128(float* d, uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b));
}
__device__ __forceinline__ void wgmma_ss_n48(float* d, uint64_t a, uint64_t b) {
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
      : "l"(a), "l"(b));
}
// m64nNk16 with A x's 64-row block and B a warpgroup's N weight rows (the kernel by tokens).
template <int N>
__device__ __forceinline__ void wgmma_tokens(float* d, uint64_t a, uint64_t b) {
  if constexpr (N == 32) wgmma_ss_n32(d, a, b);
  else if constexpr (N == 48) wgmma_ss_n48(d, a, b);
  else if constexpr (N == 64) wgmma_ss_n64(d, a, b);
  else wgmma_ss_n128(d, a, b);
}
template <int J>
__device__ __forceinline__ void wgmma_ss(float* d, uint64_t a, uint64_t b) {
  if constexpr (J == 2) wgmma_ss_n16(d, a, b);
  else if constexpr (J == 4) wgmma_ss_n32(d, a, b);
  else wgmma_ss_n64(d, a, b);
}
#endif

// Probe (measurement only, GRPST_CUDA_BF16_WS_PROBE at 64 rows; wrong sums): bit 0 leaves the
// wgmma out (the stream and the end alone), bit 1 the activations' copies (the weights alone).
template <int J, bool StreamK, int Probe = 0>
__global__ void __launch_bounds__(Bf16WsShape<J>::kThreads, 1)
    linear_bf16_ws_kernel(Weight W, LinearOut out, int M, int splits, bool spread, float* partial, int* counters,
                          const __grid_constant__ Bf16WsMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using S = Bf16WsShape<J>;
  constexpr int R = S::kRing;
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __shared__ bool is_last;
  __shared__ int piece_last;
  __shared__ __align__(8) uint64_t full[R], empty[R];
  uint8_t* smem = wg_smem(smem_raw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nkb = (W.K + 63) / 64, T = (W.N + S::kRows - 1) / S::kRows;
  // The block's work: one K slice of one tile (blockIdx.y of `splits`), or under stream-K the
  // tail of one tile and the head of the next.
  WsPiece piece[2];
  ws_block_pieces<StreamK>(T, nkb, splits, piece);
  const int total = piece[0].steps + piece[1].steps;
  mbar_init_ring(full, empty, S::kMmaWarps);  // (each consumer warp frees a stage)
  __syncthreads();
  float acc[1][J][4];
  zero_sums(acc);

  if (warp == S::kMmaWarps) {
    // ---- the producer warp (its lane 0) ----
    if (lane == 0) {
      const uint64_t policy = l2_evict_first_policy();
      const auto weights = [&](int c) {  // rows past N and columns past K arrive as zeros
        mbar_arrive_expect_tx(&full[c % R], (Probe & 2) ? S::kWBytes : S::kStageBytes);
        tma_2d_hint(smem + (c % R) * S::kStageBytes, maps.w, ws_stage_kb(piece, c) * 64,
                    ws_stage_tile(piece, c) * S::kRows, &full[c % R], policy);
      };
      ring_produce(total, empty, weights, [&](int c) {
        if constexpr ((Probe & 2) == 0)
          tma_2d(smem + (c % R) * S::kStageBytes + S::kXOff, maps.x, ws_stage_kb(piece, c) * 64, 0, &full[c % R]);
      });
    }
  } else {
    // ---- the consumer warpgroups ----
    griddep_wait();
    const uint32_t base = smem_addr(smem);
    const uint32_t a_off = static_cast<uint32_t>(warp >> 2) * 64 * 128;  // the warpgroup's 64 rows
    const auto release = [&](int c) {
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[c % R]);
    };
    int c0 = 0;
#pragma unroll  // (piece[i] in registers, not on the stack)
    for (int i = 0; i < 2; ++i) {
      const int steps = piece[i].steps;
      if (steps == 0) break;
      if (i > 0) zero_sums(acc);
      for (int s = 0; s < steps; ++s) {
        const int c = c0 + s;
        mbar_wait(&full[c % R], (c / R) & 1);
        const uint32_t st = base + (c % R) * S::kStageBytes;
        if constexpr ((Probe & 1) == 0) {
          wgmma_fence();
#pragma unroll
          for (int k = 0; k < 4; ++k)
            wgmma_ss<J>(&acc[0][0][0], wgmma_desc_sw128(st + a_off + k * 32), wgmma_desc_sw128(st + S::kXOff + k * 32));
          wgmma_commit();
          wgmma_wait_one();  // the previous step's products are done with its stage
        }
        if (s > 0) release(c - 1);
      }
      wgmma_wait_all_pinned(acc);
      release(c0 + steps - 1);
      if constexpr (StreamK) {
        c0 += steps;
        ws_finish_piece<WsBf16, J, S::kMmaWarps * 32>(acc, W, out, M, piece[i], T, partial, counters, piece_last);
      } else {
        break;  // (one piece: finish_block below)
      }
    }
  }
  griddep_launch_dependents();
  if constexpr (!StreamK) wg_end<WsBf16, S, 1, J>(smem, acc, W, out, M, splits, partial, counters, is_last, spread);
#endif
}

// The roles swapped, for 17-64 tokens: each consumer warpgroup multiplies x's 64-row block (A, rows
// past M zeros) with its NW weight rows (B) by m64nNWk16, so a stage's shared memory is read once
// per warpgroup (as A and B), where the kernel above has each of its 16 warps read all of x's
// block (B) for its 16 rows, 2.5x the stage at 64 tokens (measured: its 64-token GEMMs read the
// weights at 45-83% of the copy bandwidth against 69-94% at 8). WG warpgroups of NW rows, a ring
// of R stages, PerSm blocks per SM: 128-row warpgroups (kernels 1 and 2: 96 KB of ring and two
// blocks per SM, or two warpgroups), or one narrow warpgroup of 32-64 rows over the whole of K
// with a deep ring (kernel 3), as cuBLASLt's 64-token kernels take the narrow projections: as
// many blocks as SMs without K slices, so no slices' sums (qkv: 128 blocks of 48 rows).
template <int NW, int WG, int R, int PerSm>
struct Bf16WstShape {
  static constexpr int kMmaWarps = 4 * WG;
  static constexpr int kThreads = kMmaWarps * 32 + 32;  // + the producer warp
  static constexpr int kWgRows = NW;
  static constexpr int kRows = NW * WG, kXRows = 64;
  static constexpr int kWBytes = kRows * 128;
  static constexpr int kXOff = kWBytes;
  static constexpr int kStageBytes = kXOff + kXRows * 128;
  static constexpr int kRing = R;
  static constexpr int kBlocksPerSm = PerSm;
  static constexpr int kRedStride = kXRows + 4;
  static constexpr int kRedBytes = kRows * kRedStride * 4;
  static constexpr int kUsed = kRing * kStageBytes > kRedBytes ? kRing * kStageBytes : kRedBytes;
  static constexpr int kSmem = kUsed + 1024;
  static_assert(kStageBytes % 1024 == 0, "swizzle atoms start 1,024-byte aligned");
  static_assert(kSmem * kBlocksPerSm <= 227 * 1024, "the blocks' shared memory");
};

// The kernels by tokens: 128-row warpgroups, one (two blocks per SM) or two; one narrow warpgroup.
using Bf16WstTokens128 = Bf16WstShape<128, 1, 4, 2>;
using Bf16WstTokens256 = Bf16WstShape<128, 2, 5, 1>;
template <int NW>
using Bf16WstNarrow = Bf16WstShape<NW, 1, (227 * 1024 - 1024) / ((NW + 64) * 128), 1>;

template <class S>
__global__ void __launch_bounds__(S::kThreads, S::kBlocksPerSm)
    linear_bf16_wst_kernel(Weight W, LinearOut out, int M, int splits, bool spread, float* partial, int* counters,
                           const __grid_constant__ Bf16WsMaps maps) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int NW = S::kWgRows;
  constexpr int R = S::kRing;
  extern __shared__ __align__(16) uint8_t smem_raw[];
  __shared__ bool is_last;
  __shared__ __align__(8) uint64_t full[R], empty[R];
  uint8_t* smem = wg_smem(smem_raw);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int nkb = (W.K + 63) / 64;
  const int kb0 = static_cast<int>(static_cast<long long>(nkb) * blockIdx.y / splits);
  const int steps = static_cast<int>(static_cast<long long>(nkb) * (blockIdx.y + 1) / splits) - kb0;
  mbar_init_ring(full, empty, S::kMmaWarps);  // (each consumer warp frees a stage)
  __syncthreads();
  float acc[NW / 2];  // [NW / 8 column groups j][4]: tokens 16w + g (+ 8), weight rows 8j + 2 t4 (+ 1)
#pragma unroll
  for (int i = 0; i < NW / 2; ++i) acc[i] = 0.f;

  if (warp == S::kMmaWarps) {
    if (lane == 0) {
      const uint64_t policy = l2_evict_first_policy();
      const auto weights = [&](int c) {
        mbar_arrive_expect_tx(&full[c % R], S::kStageBytes);
        tma_2d_hint(smem + (c % R) * S::kStageBytes, maps.w, (kb0 + c) * 64, blockIdx.x * S::kRows, &full[c % R], policy);
      };
      ring_produce(steps, empty, weights, [&](int c) {
        tma_2d(smem + (c % R) * S::kStageBytes + S::kXOff, maps.x, (kb0 + c) * 64, 0, &full[c % R]);
      });
    }
  } else {
    griddep_wait();
    const uint32_t base = smem_addr(smem);
    const uint32_t b_off = static_cast<uint32_t>(warp >> 2) * NW * 128;  // the warpgroup's NW rows
    for (int c = 0; c < steps; ++c) {
      mbar_wait(&full[c % R], (c / R) & 1);
      const uint32_t st = base + (c % R) * S::kStageBytes;
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k)
        wgmma_tokens<NW>(acc, wgmma_desc_sw128(st + S::kXOff + k * 32), wgmma_desc_sw128(st + b_off + k * 32));
      wgmma_commit();
      wgmma_wait_one();
      if (c > 0) {
        __syncwarp();
        if (lane == 0) mbar_arrive(&empty[(c - 1) % R]);
      }
    }
    wgmma_wait_all_pinned(acc);
  }
  griddep_launch_dependents();
  // Every copy has landed (each stage was waited for): the ring becomes red[weight row][token].
  __syncthreads();
  float* red = reinterpret_cast<float*>(smem);
  if (warp < S::kMmaWarps) {
    const int g = lane >> 2, t4 = lane & 3, m = (warp & 3) * 16 + g, n0 = (warp >> 2) * NW + 2 * t4;
#pragma unroll
    for (int j = 0; j < NW / 8; ++j) {
      float* r = red + (n0 + 8 * j) * S::kRedStride + m;
      r[0] = acc[4 * j];
      r[S::kRedStride] = acc[4 * j + 1];
      r[8] = acc[4 * j + 2];
      r[S::kRedStride + 8] = acc[4 * j + 3];
    }
  }
  finish_sums<WsBf16, S>(red, W, out, M, splits, partial, counters, is_last, spread);
#endif
}

// x's boxes: x_rows rows of 64 columns; W's: w_rows rows of 64 columns.
Status bf16_ws_maps(const bf16* x, int M, const Weight& W, int x_rows, int w_rows, Bf16WsMaps* maps) {
  const cuuint64_t K = static_cast<cuuint64_t>(W.K);
  const cuuint64_t x_dims[2] = {K, static_cast<cuuint64_t>(M)}, w_dims[2] = {K, static_cast<cuuint64_t>(W.N)};
  const cuuint64_t strides[1] = {K * 2};
  const cuuint32_t x_box[2] = {64, static_cast<cuuint32_t>(x_rows)}, w_box[2] = {64, static_cast<cuuint32_t>(w_rows)};
  GRPST_TRY(encode_map(&maps->x, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, x, x_dims, strides, x_box,
                       CU_TENSOR_MAP_SWIZZLE_128B, "x"));
  return encode_map(&maps->w, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, W.data, w_dims, strides, w_box,
                    CU_TENSOR_MAP_SWIZZLE_128B, "the weights");
}

// Where it runs: sm_90a machine code in this build, a GPU of compute capability 9.0, and
// GRPST_CUDA_BF16_WS not 0.
bool bf16_ws_here() {
#ifdef GRPST_HAVE_SM90A
  return gpu_runs_sm90a() && env_int("GRPST_CUDA_BF16_WS", 1) != 0;
#else
  return false;
#endif
}

int x_block_rows(int M) { return M <= 16 ? 16 : M <= 32 ? 32 : 64; }

// Which kernel: by weight rows (0), unless GRPST_CUDA_BF16_WS_KERNEL asks for one by tokens in
// 128-row (1), 256-row (2) or narrow (3) blocks, or narrow_by_default (below) gives it the narrow one. Decode steps on an H100 in turns, ms at 512 keys: 1 against 0
// b16 7.440 / 6.729, b32 8.138 / 7.695 (slower), b48 9.193 / 9.653, b64 9.751 / 10.201 (faster,
// and 2 slower than 1 at each), all slower than cuBLASLt from 40 rows (even at 24-32 with the
// slices' sums spread): the narrow projections' blocks at 64 rows, qkv at 62% of the copy
// bandwidth with the sums spread and 60% with one slice and no sums (docs/benchmarks-gpu.md).
// K slices: as many as keep the blocks in one wave (each slice at least 8 steps), within the
// scratch; GRPST_CUDA_BF16_WS_SPLITS forces them. Stream-K, by weight rows only
// (GRPST_CUDA_BF16_WS_STREAMK: 0 never, 1 where its blocks take under 90% of the steps the slices'
// blocks take, 2 wherever it can run) when the tiles are fewer than the SMs and the scratch holds
// every cut tile's pieces.
// The narrow kernel's weight rows a block: the most of 64, 48 and 32 that still gives 90% of the
// SMs a block (qkv 48: 128 blocks; o_proj and down_proj 32: 128), else 32 with K slices.
int narrow_rows(int N, int num_sms) {
  for (int rows : {64, 48})
    if (10LL * ceil_div(N, rows) >= 9LL * num_sms) return rows;
  return 32;
}

// The narrow kernel unasked where its blocks are 48-64 rows in one wave (qkv at the 8B shape: 128
// blocks of 48 rows) when GRPST_CUDA_BF16_WS_NARROW=1, off by default: with the forward routing
// such projections at 17-64 rows to it (cuda_forward.cu), decode steps on an H100 in turns ran
// within their noise of cuBLASLt (b16 6.478 / 6.498 ms, b32 7.262 / 7.142, b64 8.055 / 8.054,
// docs/benchmarks-gpu.md). qkv alone on an H100, % of the copy
// bandwidth, narrow / by weight rows / cuBLASLt: 16 rows 80.9 / 72.9 / 78.6, 32 rows 81.9 / 68.6
// / 77.2, 64 rows 82.2 / 61.5 / 80.9. Its 32-row blocks lose (o_proj, down_proj: x's 8 KB a stage
// against 4 KB of weights; 61-71% against cuBLASLt's 76-79%), and so do its waves of 64-row
// blocks on gate_up at 16-32 rows (88% against 93% by weight rows under stream-K).
// GRPST_CUDA_BF16_WS_NARROW=2: wherever its blocks make one wave, 32-row ones too (o_proj,
// down_proj); 3: every bf16 projection, in as many waves as it takes (gate_up, whose SwiGLU its
// epilogue then takes). Both slower in decode steps on an H100 (b64 at 512 keys 8.053 ms with
// cuBLASLt, 8.632 at 2, 8.514 at 3, x shared by pairs of blocks). x shared by thread-block
// clusters of 2 or 4 blocks (TMA multicast, each copying its share of x's rows for all) did not
// pay: by 2 even with unshared x at 48-64 tokens and slower at 16-32, by 4 slower everywhere
// (bench/results/gpu-h100/bf16-multicast-h100.txt), so it went.
bool narrow_by_default(int N, int num_sms) {
  const int mode = env_int("GRPST_CUDA_BF16_WS_NARROW", 0);
  const int rows = narrow_rows(N, num_sms);
  return mode == 3 || (mode != 0 && ceil_div(N, rows) <= num_sms && (rows >= 48 || mode == 2));
}

// The plan's kernel for w: the one GRPST_CUDA_BF16_WS_KERNEL asks for (0-3), else the narrow one
// where narrow_by_default takes it, else by weight rows.
int kernel_for(const Weight& w, int num_sms) {
  const int forced = env_int("GRPST_CUDA_BF16_WS_KERNEL", -1);
  if (forced >= 0 && forced <= 3) return forced;
  return narrow_by_default(w.N, num_sms) ? 3 : 0;
}

Bf16WsPlan plan(const Weight& w, int M, const SplitScratch& sc, int num_sms) {
  Bf16WsPlan p;
  p.kernel = kernel_for(w, num_sms);
  p.rows = p.kernel == 1 ? 128 : 256;
  if (p.kernel == 3) p.rows = narrow_rows(w.N, num_sms);
  const int rows = p.rows, per_sm = p.kernel == 1 ? 2 : 1;
  const int xr = p.kernel == 0 ? x_block_rows(M) : 64;
  const int nkb = (w.K + 63) / 64, T = ceil_div(w.N, rows);
  const int forced = env_int("GRPST_CUDA_BF16_WS_SPLITS", 0);
  const int max_splits = std::max(1, std::min(kMaxSplits, nkb / 8));
  p.splits = forced > 0 ? std::min({forced, nkb, kMaxSplits}) : std::clamp(per_sm * num_sms / T, 1, max_splits);
  if (p.splits > 1) {
    const bool usable = sc.partial && sc.counters && T <= sc.counter_count;
    const size_t per_split = static_cast<size_t>(T) * rows * xr;
    p.splits = usable ? static_cast<int>(std::min<size_t>(p.splits, sc.partial_floats / per_split)) : 1;
    p.splits = std::max(1, p.splits);
  }
  // The slices' sums added by every block of a tile where the grid is one wave (the tile's blocks
  // wait for each other), instead of by the last block: decode steps in turns on an H100, b8 6.407
  // -> 6.371 ms, b16 6.738 -> 6.657, b32 7.685 -> 7.391. GRPST_CUDA_BF16_WS_SPREAD=0: the last block.
  p.spread = p.splits > 1 && T * p.splits <= per_sm * num_sms && env_int("GRPST_CUDA_BF16_WS_SPREAD", 1) != 0;
  const int mode = env_int("GRPST_CUDA_BF16_WS_STREAMK", 1);
  const long long U = static_cast<long long>(T) * nkb;
  const int B = static_cast<int>(std::min<long long>(num_sms, U / 8));
  if (p.kernel != 0 || mode <= 0 || B <= T || !sc.partial || !sc.counters || T > sc.counter_count) return p;
  if (mode == 1) {
    const int waves = ceil_div(T * p.splits, num_sms);
    const long long sliced_steps = static_cast<long long>(waves) * ceil_div(nkb, p.splits);
    if (10 * ceil_div(U, B) >= 9 * sliced_steps) return p;
  }
  int most = 1;  // the most pieces of one tile
  for (long long t = 0; t < T; ++t)
    most = std::max(most, ws_block_of((t + 1) * nkb - 1, U, B) - ws_block_of(t * nkb, U, B) + 1);
  if (static_cast<size_t>(most) * T * 256 * xr <= sc.partial_floats) {
    p.stream_k = B;
    p.spread = false;  // (the pieces are finished in registers)
  }
  return p;
}

// Whether a grid of `blocks` fits on this GPU at once: the spread sums' barrier waits for every
// block of a tile, so they must all be resident. The plan assumes the kernel's blocks per SM on
// the SMs the caller names; this asks the device (its own SM count, the occupancy that the
// shared memory leaves), and the launch has the last block add the sums otherwise. Asked once per
// kernel (Shape: its launcher's; the process's GPU, as gpu_runs_sm90a), not on every launch.
template <class Shape, class Kernel>
bool fits_one_wave(Kernel kernel, long long blocks) {
  static const long long resident = [kernel] {
    int dev = 0, sms = 0, per_sm = 0;
    if (!allow_smem("linear_bf16_ws", kernel, Shape::kSmem).ok() || cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, Shape::kThreads, Shape::kSmem) != cudaSuccess) {
      cudaGetLastError();  // (a failed query is not a launch's error: the sums by the last block)
      return 0LL;
    }
    return static_cast<long long>(per_sm) * sms;
  }();
  return blocks <= resident;
}

template <class S>
Status launch_tokens(const bf16* x, const Weight& w, const LinearOut& out, int M, const Bf16WsPlan& p,
                     const SplitScratch& sc, const Exec& ex) {
  Bf16WsMaps maps;
  GRPST_TRY(bf16_ws_maps(x, M, w, S::kXRows, S::kRows, &maps));
  const auto kernel = linear_bf16_wst_kernel<S>;
  GRPST_TRY(allow_smem("linear_bf16_ws", kernel, S::kSmem));
  const dim3 grid(ceil_div(w.N, S::kRows), p.splits);
  const bool spread = p.spread && fits_one_wave<S>(kernel, static_cast<long long>(grid.x) * grid.y);
  return launch("linear_bf16_ws", kernel, grid, dim3(S::kThreads), S::kSmem, ex, w, out, M, p.splits, spread,
                sc.partial, sc.counters, maps);
}

template <int J>
Status launch_rows(const bf16* x, const Weight& w, const LinearOut& out, int M, const Bf16WsPlan& p,
                   const SplitScratch& sc, const Exec& ex) {
  using S = Bf16WsShape<J>;
  Bf16WsMaps maps;
  GRPST_TRY(bf16_ws_maps(x, M, w, S::kXRows, S::kRows, &maps));
  const auto run = [&](auto kernel, dim3 grid, bool spread) -> Status {
    GRPST_TRY(allow_smem("linear_bf16_ws", kernel, S::kSmem));
    return launch("linear_bf16_ws", kernel, grid, dim3(S::kThreads), S::kSmem, ex, w, out, M, p.splits, spread,
                  sc.partial, sc.counters, maps);
  };
  if (p.stream_k > 0) return run(linear_bf16_ws_kernel<J, true>, dim3(p.stream_k), false);
  const dim3 grid(ceil_div(w.N, S::kRows), p.splits);
  const auto kernel = linear_bf16_ws_kernel<J, false>;
  const bool spread = p.spread && fits_one_wave<S>(kernel, static_cast<long long>(grid.x) * grid.y);
  if constexpr (J == 8) {
    const int probe = env_int("GRPST_CUDA_BF16_WS_PROBE", 0);
    if (probe == 1) return run(linear_bf16_ws_kernel<J, false, 1>, grid, spread);
    if (probe == 2) return run(linear_bf16_ws_kernel<J, false, 2>, grid, spread);
    if (probe == 3) return run(linear_bf16_ws_kernel<J, false, 3>, grid, spread);
  }
  return run(kernel, grid, spread);
}

}  // namespace

bool linear_bf16_ws_supported(const Weight& w) {
  return bf16_ws_here() && w.format == WeightFormat::bf16 && w.K % 8 == 0 &&
         (reinterpret_cast<uintptr_t>(w.data) & 15) == 0;
}

Bf16WsPlan linear_bf16_ws_plan(const Weight& w, int M, const SplitScratch& sc, int num_sms) {
  return plan(w, M, sc, num_sms);
}

bool linear_bf16_ws_narrow(const Weight& w, int num_sms) { return kernel_for(w, num_sms) == 3; }

Status linear_bf16_ws(const bf16* x, const Weight& w, const LinearOut& out, int M, const SplitScratch& sc,
                      int num_sms, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (M > kBf16WsMaxRows) return invalid("linear_bf16_ws", "at most 64 rows; use the GEMM path");
  if (!linear_bf16_ws_supported(w))
    return invalid("linear_bf16_ws",
                   "bf16 weights with K % 8 == 0 and 16-byte aligned, on a compute capability 9.0 GPU with sm_90a code");
  if (out.epi == Epilogue::swiglu && w.N % 2 != 0) return invalid("linear_bf16_ws", "SwiGLU needs an even N");
  if ((reinterpret_cast<uintptr_t>(x) & 15) != 0) return invalid("linear_bf16_ws", "x must be 16-byte aligned");
  const Bf16WsPlan p = plan(w, M, sc, num_sms);
  if (p.kernel == 1) return launch_tokens<Bf16WstTokens128>(x, w, out, M, p, sc, ex);
  if (p.kernel == 2) return launch_tokens<Bf16WstTokens256>(x, w, out, M, p, sc, ex);
  if (p.kernel == 3) {
    if (p.rows == 32) return launch_tokens<Bf16WstNarrow<32>>(x, w, out, M, p, sc, ex);
    if (p.rows == 48) return launch_tokens<Bf16WstNarrow<48>>(x, w, out, M, p, sc, ex);
    return launch_tokens<Bf16WstNarrow<64>>(x, w, out, M, p, sc, ex);
  }
  if (M <= 16) return launch_rows<2>(x, w, out, M, p, sc, ex);
  if (M <= 32) return launch_rows<4>(x, w, out, M, p, sc, ex);
  return launch_rows<8>(x, w, out, M, p, sc, ex);
}

}  // namespace grpst::cuda
