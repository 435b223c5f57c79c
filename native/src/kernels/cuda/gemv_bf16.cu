// Weight-streaming bf16 GEMV for decode (M <= 8 rows): every weight byte is read once with
// 16-byte streaming loads, the activations (RMSNorm-ed / scaled in the prologue) sit in shared
// memory, and the epilogue (residual add, SwiGLU, fp32 logits) is fused. Warps own RW rows over
// the whole K; the first weight loads are issued before waiting on the previous kernel (PDL).
#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"
#include "linear_common.cuh"
#include "mma_utils.cuh"

namespace grpst::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kU = 4;   // 16-byte loads per row in flight per lane
constexpr int kSmemBytes = 40 * 1024;

// kRW rows per warp: 2 (a gate/up pair for SwiGLU, and wide matrices), or 1 for matrices of
// at most 8192 rows, where two rows per warp leave too few warps to keep the memory busy.
// kDirectX (one row, no prologue: o_proj, down_proj): each lane reads its x chunks straight from
// global memory (L1 serves the block's other warps) instead of the block staging all of x in shared
// memory first, which at one wave of blocks put a full read of x from L2 before the first FMA. With
// a prologue it measured slower (every warp reducing the RMSNorm statistics and reading the fp32
// norm weights itself: the bf16 step 5.18 against 4.89 ms on an H200), so those keep the staging.
template <int MB, int kRW, bool kDirectX>
__global__ void __launch_bounds__(kWarps * 32) gemv_bf16_kernel(LinearIn in, const bf16* __restrict__ w /*[N,K]*/,
                                                                LinearOut out, int M, int N, int K, int KC) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* xs = reinterpret_cast<bf16*>(smem_raw);  // [MB][KC]
  __shared__ float rstd[MB], amax_unused[1];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row0 = (blockIdx.x * kWarps + warp) * kRW;
  const uint4* wr[kRW];
  bool row_ok[kRW];
#pragma unroll
  for (int r = 0; r < kRW; ++r) {
    row_ok[r] = row0 + r < N;
    wr[r] = reinterpret_cast<const uint4*>(w + static_cast<size_t>(row_ok[r] ? row0 + r : 0) * K);
  }

  // One round of weight loads per row: 16-byte chunks c8 + j0 + u * 32 + lane, below c8 + n8.
  uint4 wv[kRW][kU];
  auto load_round = [&](int c8, int j0, int n8) {
#pragma unroll
    for (int u = 0; u < kU; ++u)
#pragma unroll
      for (int r = 0; r < kRW; ++r) {
        const int j = j0 + u * 32 + lane;
        wv[r][u] = (j < n8 && row_ok[r]) ? ldg_stream(wr[r] + c8 + j) : make_uint4(0, 0, 0, 0);
      }
  };
  // Weights do not depend on the previous kernel: start streaming them before waiting on it.
  load_round(0, 0, min(K, KC) / 8);
  griddep_wait();
  griddep_launch_dependents();
  if constexpr (!kDirectX) linear_row_stats(in, M, K, false, rstd, amax_unused);

  float acc[kRW][MB];
#pragma unroll
  for (int r = 0; r < kRW; ++r)
#pragma unroll
    for (int m = 0; m < MB; ++m) acc[r][m] = 0.f;

  bool preloaded = true;
  if constexpr (kDirectX) {
    const uint4* xg = reinterpret_cast<const uint4*>(in.x);  // [K/8]
    const int n8 = K / 8;
    for (int j0 = 0; j0 < n8; j0 += 32 * kU) {
      uint4 xv[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int j = j0 + u * 32 + lane;
        xv[u] = j < n8 ? __ldg(xg + j) : make_uint4(0, 0, 0, 0);
      }
      if (!preloaded) load_round(0, j0, n8);
      preloaded = false;
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int j = j0 + u * 32 + lane;
        if (j >= n8) break;
        float xf[8], wf[8];
        unpack8(xv[u], xf);
#pragma unroll
        for (int r = 0; r < kRW; ++r) {
          unpack8(wv[r][u], wf);
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[r][0] = fmaf(wf[e], xf[e], acc[r][0]);
        }
      }
    }
  }
  for (int c0 = 0; !kDirectX && c0 < K; c0 += KC) {
    const int kc = min(KC, K - c0);
    __syncthreads();  // rstd ready / previous chunk consumed
    for (int idx = threadIdx.x; idx < MB * (kc / 8); idx += kWarps * 32) {
      const int m = idx / (kc / 8), j = idx % (kc / 8);
      float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      if (m < M) linear_load8(in, K, m, c0 + j * 8, rstd[m], f);
      *reinterpret_cast<uint4*>(xs + m * KC + j * 8) = pack8(f);
    }
    __syncthreads();
    const int n8 = kc / 8;
    for (int j0 = 0; j0 < n8; j0 += 32 * kU) {
      if (!preloaded) load_round(c0 / 8, j0, n8);
      preloaded = false;
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int j = j0 + u * 32 + lane;
        if (j >= n8) break;
        float wf[kRW][8];
#pragma unroll
        for (int r = 0; r < kRW; ++r) unpack8(wv[r][u], wf[r]);
#pragma unroll
        for (int m = 0; m < MB; ++m) {
          float xf[8];
          unpack8(*reinterpret_cast<const uint4*>(xs + m * KC + j * 8), xf);
#pragma unroll
          for (int r = 0; r < kRW; ++r)
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[r][m] = fmaf(wf[r][e], xf[e], acc[r][m]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRW; ++r)
#pragma unroll
    for (int m = 0; m < MB; ++m) acc[r][m] = warp_sum(acc[r][m]);
#pragma unroll
  for (int m = 0; m < MB; ++m) {
    if (lane != m || m >= M) continue;
    if constexpr (kRW == 2) {
      if (out.epi == Epilogue::swiglu) {
        if (row_ok[1]) linear_store_swiglu(out, N, m, row0 / 2, acc[0][m], acc[kRW - 1][m]);
        continue;
      }
    }
    {
#pragma unroll
      for (int r = 0; r < kRW; ++r)
        if (row_ok[r]) linear_store(out, N, m, row0 + r, acc[r][m]);
    }
  }
}

template <int MB>
Status launch_gemv(const LinearIn& in, const bf16* w, const LinearOut& out, int M, int N, int K,
                   const Exec& ex) {
  const bool one_row = out.epi != Epilogue::swiglu && N <= 8192;
  int KC = kSmemBytes / (MB * 2);
  KC = (KC / 256) * 256;
  if (KC >= K) KC = K;
  const size_t smem = static_cast<size_t>(MB) * KC * 2;
  if constexpr (MB == 1) {
    // GRPST_CUDA_GEMV_DIRECT_X=0 keeps the shared-memory staging for these too.
    if (!in.norm_w && !in.act_scale && env_int("GRPST_CUDA_GEMV_DIRECT_X", 1) != 0) {
      if (one_row)
        return launch("gemv_bf16", gemv_bf16_kernel<1, 1, true>, dim3(ceil_div(N, kWarps)), dim3(kWarps * 32), 0, ex,
                      in, w, out, M, N, K, K);
      return launch("gemv_bf16", gemv_bf16_kernel<1, 2, true>, dim3(ceil_div(N, kWarps * 2)), dim3(kWarps * 32), 0, ex,
                    in, w, out, M, N, K, K);
    }
  }
  if (one_row)
    return launch("gemv_bf16", gemv_bf16_kernel<MB, 1, false>, dim3(ceil_div(N, kWarps)), dim3(kWarps * 32), smem, ex,
                  in, w, out, M, N, K, KC);
  return launch("gemv_bf16", gemv_bf16_kernel<MB, 2, false>, dim3(ceil_div(N, kWarps * 2)), dim3(kWarps * 32), smem, ex,
                in, w, out, M, N, K, KC);
}

}  // namespace

Status gemv_bf16(const LinearIn& in, const bf16* w, const LinearOut& out, int M, int N, int K,
                 const Exec& ex) {
  if (K % 8 != 0) return invalid("gemv_bf16", "K must be a multiple of 8");
  if (out.epi == Epilogue::swiglu && N % 2 != 0) return invalid("gemv_bf16", "SwiGLU needs an even N");
  if (M <= 0) return ok_status();
  if (M == 1) return launch_gemv<1>(in, w, out, M, N, K, ex);
  if (M == 2) return launch_gemv<2>(in, w, out, M, N, K, ex);
  if (M <= 4) return launch_gemv<4>(in, w, out, M, N, K, ex);
  if (M <= 8) return launch_gemv<8>(in, w, out, M, N, K, ex);
  return invalid("gemv_bf16", "at most 8 rows; use gemm_bf16 for larger batches");
}

}  // namespace grpst::cuda
