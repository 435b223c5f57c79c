// Skinny tensor-core GEMM for quantized weights at M <= 64 tokens (decode and small batches):
// y^T[N,M] = W[N,K] . a(x)^T, the weight as the mma A operand (16 output rows per tile) and the
// activations, staged in shared memory with the fused prologue, as the B operand (8 tokens per
// n-tile). Weight tiles go straight from global memory into registers:
//  int4_awq  fragment-packed nibbles -> bf16 by the 0x4300 magic, (q - z) * s in bf16x2 -> m16n8k16
//  int8_wo   fragment-packed bytes   -> exact bf16 through fp32 magic -> m16n8k16, channel scale after
//  fp8       natural e4m3 [N,K]      -> m16n8k32 e4m3 directly, x quantized with its static scale
//  int8_sq   natural int8 [N,K]      -> m16n8k32 s8 with int32 sums, x quantized per token
// Warps of a block split the row tiles (RT) and K (KS); slices are summed through shared memory
// and the epilogue (scales, residual add, SwiGLU) is fused.
#include "device_utils.cuh"
#include "env_switch.h"
#include "kernels.h"
#include "linear_common.cuh"
#include "mma_utils.cuh"

namespace grpst::cuda {
namespace {

enum class XKind { bf16, e4m3, int8 };

// ---- weight decoders ---------------------------------------------------------------------------

struct DecInt4 {
  static constexpr XKind kX = XKind::bf16;
  using Acc = float;
  struct Raw { uint4 w; };
  __device__ static Raw load(const Weight& W, int tile, int kb, int lane, int nkb) {
    const uint4* p = reinterpret_cast<const uint4*>(W.data);
    return {ldg_stream(p + (static_cast<size_t>(tile) * nkb + kb) * 32 + lane)};
  }
  template <int J>
  __device__ static void compute(const Raw& raw, const Weight& W, int tile, int kb, int lane,
                                 const uint8_t* xk, int xstride, Acc (&acc)[J][4]) {
    const int g = lane >> 2, t = lane & 3;
    const int G = W.group_size, ngroups = (W.K + G - 1) / G;
    const uint32_t words[4] = {raw.w.x, raw.w.y, raw.w.z, raw.w.w};
    __nv_bfloat162 s_g, s_g8, z_g, z_g8;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      if (w == 0 || G < 64) {
        const int gi = min((kb * 64 + w * 16) / G, ngroups - 1);
        const bf16* sp = W.group_scale + (static_cast<size_t>(tile) * ngroups + gi) * 16;  // row pairs (j, j + 8)
        s_g = __bfloat162bfloat162(sp[2 * g]);
        s_g8 = __bfloat162bfloat162(sp[2 * g + 1]);
        if (W.group_zero) {
          const bf16* zp = W.group_zero + (static_cast<size_t>(tile) * ngroups + gi) * 16;
          z_g = __bfloat162bfloat162(zp[2 * g]);
          z_g8 = __bfloat162bfloat162(zp[2 * g + 1]);
        } else {
          z_g = z_g8 = __float2bfloat162_rn(136.f);
        }
      }
      uint32_t a[4];
      int4_word_to_frag(words[w], s_g, s_g8, z_g, z_g8, a);
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const uint8_t* xr = xk + (j * 8 + g) * xstride + (w * 16 + 2 * t) * 2;
        mma_bf16(acc[j], a, *reinterpret_cast<const uint32_t*>(xr), *reinterpret_cast<const uint32_t*>(xr + 16));
      }
    }
  }
  __device__ static float scale(float v, const Weight& W, int n, int m, const float* rowq) { return v; }
};

struct DecInt8Wo {
  static constexpr XKind kX = XKind::bf16;
  using Acc = float;
  struct Raw { uint4 lo, hi; };
  __device__ static Raw load(const Weight& W, int tile, int kb, int lane, int nkb) {
    const uint4* p = reinterpret_cast<const uint4*>(W.data) + ((static_cast<size_t>(tile) * nkb + kb) * 32 + lane) * 2;
    return {ldg_stream(p), ldg_stream(p + 1)};
  }
  template <int J>
  __device__ static void compute(const Raw& raw, const Weight& W, int tile, int kb, int lane,
                                 const uint8_t* xk, int xstride, Acc (&acc)[J][4]) {
    const int g = lane >> 2, t = lane & 3;
    const uint32_t words[8] = {raw.lo.x, raw.lo.y, raw.lo.z, raw.lo.w, raw.hi.x, raw.hi.y, raw.hi.z, raw.hi.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t a[4];
      int8_words_to_bf16_frag(words[2 * w], words[2 * w + 1], a);
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const uint8_t* xr = xk + (j * 8 + g) * xstride + (w * 16 + 2 * t) * 2;
        mma_bf16(acc[j], a, *reinterpret_cast<const uint32_t*>(xr), *reinterpret_cast<const uint32_t*>(xr + 16));
      }
    }
  }
  __device__ static float scale(float v, const Weight& W, int n, int m, const float* rowq) {
    return v * W.channel_scale[n];
  }
};

// Natural [N,K] 8-bit weights read as m16n8k32 A fragments: 4-byte loads, two k32 steps per kb.
struct Natural8Raw { uint32_t a[2][4]; };
__device__ __forceinline__ Natural8Raw load_natural8(const Weight& W, int tile, int kb, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const int n_g = tile * 16 + g, n_g8 = n_g + 8;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(W.data);
  Natural8Raw r;
#pragma unroll
  for (int s = 0; s < 2; ++s) {
    const int k = kb * 64 + s * 32 + 4 * t;
    const bool k_lo = k < W.K, k_hi = k + 16 < W.K;
    r.a[s][0] = (n_g < W.N && k_lo) ? ldg_stream32(base + static_cast<size_t>(n_g) * W.K + k) : 0u;
    r.a[s][1] = (n_g8 < W.N && k_lo) ? ldg_stream32(base + static_cast<size_t>(n_g8) * W.K + k) : 0u;
    r.a[s][2] = (n_g < W.N && k_hi) ? ldg_stream32(base + static_cast<size_t>(n_g) * W.K + k + 16) : 0u;
    r.a[s][3] = (n_g8 < W.N && k_hi) ? ldg_stream32(base + static_cast<size_t>(n_g8) * W.K + k + 16) : 0u;
  }
  return r;
}

struct DecFp8 {
  static constexpr XKind kX = XKind::e4m3;
  using Acc = float;
  using Raw = Natural8Raw;
  __device__ static Raw load(const Weight& W, int tile, int kb, int lane, int nkb) { return load_natural8(W, tile, kb, lane); }
  template <int J>
  __device__ static void compute(const Raw& raw, const Weight& W, int tile, int kb, int lane,
                                 const uint8_t* xk, int xstride, Acc (&acc)[J][4]) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int s = 0; s < 2; ++s)
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const uint8_t* xr = xk + (j * 8 + g) * xstride + s * 32 + 4 * t;
        mma_e4m3(acc[j], raw.a[s], *reinterpret_cast<const uint32_t*>(xr), *reinterpret_cast<const uint32_t*>(xr + 16));
      }
  }
  __device__ static float scale(float v, const Weight& W, int n, int m, const float* rowq) {
    return v * (*W.x_scale) * (*W.w_scale);
  }
};

struct DecInt8Sq {
  static constexpr XKind kX = XKind::int8;
  using Acc = int;
  using Raw = Natural8Raw;
  __device__ static Raw load(const Weight& W, int tile, int kb, int lane, int nkb) { return load_natural8(W, tile, kb, lane); }
  template <int J>
  __device__ static void compute(const Raw& raw, const Weight& W, int tile, int kb, int lane,
                                 const uint8_t* xk, int xstride, Acc (&acc)[J][4]) {
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int s = 0; s < 2; ++s)
#pragma unroll
      for (int j = 0; j < J; ++j) {
        const uint8_t* xr = xk + (j * 8 + g) * xstride + s * 32 + 4 * t;
        mma_s8(acc[j], raw.a[s], *reinterpret_cast<const uint32_t*>(xr), *reinterpret_cast<const uint32_t*>(xr + 16));
      }
  }
  __device__ static float scale(float v, const Weight& W, int n, int m, const float* rowq) {
    return v * (rowq[m] / 127.f) * W.channel_scale[n];
  }
};

template <class Dec>
__host__ __device__ constexpr int x_bytes() { return Dec::kX == XKind::bf16 ? 2 : 1; }

// ---- the kernel --------------------------------------------------------------------------------

template <class Dec, int J, int RT, int KS, int U>
__global__ void __launch_bounds__(RT * KS * 32) linear_skinny_kernel(LinearIn in, Weight W,
                                                                     LinearOut out, int M, int CKB, int all_rows) {
  using Acc = typename Dec::Acc;
  constexpr int NT = RT * KS * 32;
  constexpr int XB = x_bytes<Dec>();
  constexpr int ROWS = 8 * J;
  extern __shared__ __align__(16) uint8_t smem[];
  __shared__ float rstd[ROWS], rowq[ROWS];
  const int xstride = CKB * 64 * XB + 16;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int rt = warp % RT, ks = warp / RT;
  const int tile = blockIdx.x * RT + rt;
  const int N = W.N, K = W.K, nkb = (K + 63) / 64;
  const bool tile_ok = tile * 16 < N;

  typename Dec::Raw raw[U];
  const int ckb0 = min(CKB, nkb);
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int kb = ks + u * KS;
    if (tile_ok && kb < ckb0) raw[u] = Dec::load(W, tile, kb, lane, nkb);
  }
  griddep_wait();
  griddep_launch_dependents();
  linear_row_stats(in, M, K, Dec::kX == XKind::int8, rstd, rowq);
  for (int i = threadIdx.x; i < (ROWS - M) * xstride / 16; i += NT)  // padding tokens stay zero
    reinterpret_cast<uint4*>(smem + M * xstride)[i] = make_uint4(0, 0, 0, 0);
  float x_div = 1.f;
  if constexpr (Dec::kX == XKind::e4m3) x_div = *W.x_scale;

  Acc acc[J][4];
#pragma unroll
  for (int j = 0; j < J; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0;

  bool preloaded = true;
  for (int c = 0; c < nkb; c += CKB) {
    const int ckb = min(CKB, nkb - c);
    __syncthreads();  // stats ready / previous chunk consumed
    // Row m's 8 prologue-applied activations at chunk column j (k = c * 64 + 8j) into its slot.
    auto store8 = [&](int m, int j, const float (&f)[8]) {
      uint8_t* dst = smem + m * xstride + j * 8 * XB;
      if constexpr (Dec::kX == XKind::bf16) {
        *reinterpret_cast<uint4*>(dst) = pack8(f);
      } else {
        // e4m3: x / x_scale; int8: x / (amax / 127), zero rows stay zero
        const float div = Dec::kX == XKind::e4m3 ? x_div : (rowq[m] > 0.f ? rowq[m] / 127.f : 1.f);
        const float inv = __frcp_rn(div);
        uint32_t lo = 0, hi = 0;
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float a = div_by(f[e], div, inv), b = div_by(f[e + 4], div, inv);
          const uint32_t b0 = Dec::kX == XKind::e4m3 ? f32_to_e4m3(a) : static_cast<uint8_t>(f32_to_i8(a));
          const uint32_t b1 = Dec::kX == XKind::e4m3 ? f32_to_e4m3(b) : static_cast<uint8_t>(f32_to_i8(b));
          lo |= b0 << (8 * e);
          hi |= b1 << (8 * e);
        }
        *reinterpret_cast<uint2*>(dst) = make_uint2(lo, hi);
      }
    };
    if (!all_rows) {
      // the chunks of the M rows dealt out in turn: one dependent load each
      for (int idx = threadIdx.x; idx < M * ckb * 8; idx += NT) {
        const int m = idx / (ckb * 8), j = idx % (ckb * 8);
        const int k = c * 64 + j * 8;
        float f[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (k < K) linear_load8(in, K, m, k, rstd[m], f);
        store8(m, j, f);
      }
    } else {
      // a column chunk of several rows at once (at 8 tokens and K = 12,288 a row at a time made
      // 48 dependent round trips to the L2 per thread)
      for (int j = threadIdx.x; j < ckb * 8; j += NT) {
        const int k = c * 64 + j * 8;
        load_rows8(in, M, K, k, k < K, rstd, [&](int m, const float (&f)[8]) { store8(m, j, f); });
      }
    }
    __syncthreads();
    for (int kb0 = c + ks; kb0 < c + ckb; kb0 += KS * U) {
      if (!preloaded) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int kb = kb0 + u * KS;
          if (tile_ok && kb < c + ckb) raw[u] = Dec::load(W, tile, kb, lane, nkb);
        }
      }
      preloaded = false;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int kb = kb0 + u * KS;
        if (tile_ok && kb < c + ckb)
          Dec::template compute<J>(raw[u], W, tile, kb, lane, smem + (kb - c) * 64 * XB, xstride, acc);
      }
    }
  }

  // Sum the K slices through shared memory, then the fused epilogue.
  __syncthreads();
  Acc* red = reinterpret_cast<Acc*>(smem);  // [KS][RT][16][ROWS]
  {
    const int g = lane >> 2, t = lane & 3;
    Acc* base = red + ((ks * RT + rt) * 16) * ROWS;
#pragma unroll
    for (int j = 0; j < J; ++j) {
      base[g * ROWS + j * 8 + 2 * t] = acc[j][0];
      base[g * ROWS + j * 8 + 2 * t + 1] = acc[j][1];
      base[(g + 8) * ROWS + j * 8 + 2 * t] = acc[j][2];
      base[(g + 8) * ROWS + j * 8 + 2 * t + 1] = acc[j][3];
    }
  }
  __syncthreads();
  auto row_sum = [&](int rtile, int r, int m) {
    Acc s = 0;
#pragma unroll
    for (int q = 0; q < KS; ++q) s += red[((q * RT + rtile) * 16 + r) * ROWS + m];
    return static_cast<float>(s);
  };
  if (out.epi == Epilogue::swiglu) {
    for (int idx = threadIdx.x; idx < RT * 8 * M; idx += NT) {
      const int rtile = idx / (8 * M), p = (idx / M) % 8, m = idx % M;
      const int n = (blockIdx.x * RT + rtile) * 16 + 2 * p;
      if (n + 1 >= N) continue;
      const float gate = Dec::scale(row_sum(rtile, 2 * p, m), W, n, m, rowq);
      const float up = Dec::scale(row_sum(rtile, 2 * p + 1, m), W, n + 1, m, rowq);
      linear_store_swiglu(out, N, m, n / 2, gate, up);
    }
  } else {
    for (int idx = threadIdx.x; idx < RT * 16 * M; idx += NT) {
      const int rtile = idx / (16 * M), r = (idx / M) % 16, m = idx % M;
      const int n = (blockIdx.x * RT + rtile) * 16 + r;
      if (n >= N) continue;
      linear_store(out, N, m, n, Dec::scale(row_sum(rtile, r, m), W, n, m, rowq));
    }
  }
}

constexpr int kXBudget = 64 * 1024;

template <class Dec, int J, int RT, int KS, int U>
Status launch_skinny(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  constexpr int XB = x_bytes<Dec>();
  const int nkb = (w.K + 63) / 64;
  int ckb = (kXBudget - 16 * 8 * J) / (8 * J * 64 * XB);
  ckb = ckb >= KS ? (ckb / KS) * KS : ckb;
  ckb = max(1, min(ckb, nkb));
  const size_t xbytes = static_cast<size_t>(8 * J) * (ckb * 64 * XB + 16);
  const size_t red = static_cast<size_t>(KS) * RT * 16 * 8 * J * 4;
  const size_t smem = xbytes > red ? xbytes : red;
  auto kernel = linear_skinny_kernel<Dec, J, RT, KS, U>;
  GRPST_TRY(allow_smem("linear_skinny", kernel, smem));
  const int blocks = ceil_div(w.N, 16 * RT);
  // GRPST_CUDA_PROLOGUE_ALL_ROWS=0: the staging takes the rows one after another (the same bits)
  const int all_rows = env_int("GRPST_CUDA_PROLOGUE_ALL_ROWS", 1) != 0 ? 1 : 0;
  return launch("linear_skinny", kernel, dim3(blocks), dim3(RT * KS * 32), smem, ex, in, w, out, M, ckb, all_rows);
}

template <class Dec>
Status dispatch_rows(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  if (M <= 8) return launch_skinny<Dec, 1, 1, 8, 4>(in, w, out, M, ex);
  if (M <= 16) return launch_skinny<Dec, 2, 1, 8, 4>(in, w, out, M, ex);
  if (M <= 32) return launch_skinny<Dec, 4, 2, 4, 2>(in, w, out, M, ex);
  return launch_skinny<Dec, 8, 2, 4, 2>(in, w, out, M, ex);
}

}  // namespace

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::bf16: return "bf16";
    case WeightFormat::int8_wo: return "int8_wo";
    case WeightFormat::int4_awq: return "int4_awq";
    case WeightFormat::fp8: return "fp8";
    case WeightFormat::int8_sq: return "int8_sq";
  }
  return "unknown";
}

Status linear_skinny(const LinearIn& in, const Weight& w, const LinearOut& out, int M, const Exec& ex) {
  if (M <= 0) return ok_status();
  if (M > kSkinnyMaxRows) return invalid("linear_skinny", "at most 64 rows; use the GEMM path");
  if (w.K % 16 != 0) return invalid("linear_skinny", "K must be a multiple of 16");
  if (out.epi == Epilogue::swiglu && w.N % 2 != 0) return invalid("linear_skinny", "SwiGLU needs an even N");
  switch (w.format) {
    case WeightFormat::int4_awq:
      if (w.group_size < 16 || w.group_size % 16 != 0)
        return invalid("linear_skinny", "int4 group size must be a multiple of 16");
      return dispatch_rows<DecInt4>(in, w, out, M, ex);
    case WeightFormat::int8_wo: return dispatch_rows<DecInt8Wo>(in, w, out, M, ex);
    case WeightFormat::fp8: return dispatch_rows<DecFp8>(in, w, out, M, ex);
    case WeightFormat::int8_sq: return dispatch_rows<DecInt8Sq>(in, w, out, M, ex);
    case WeightFormat::bf16: break;
  }
  return invalid("linear_skinny", "bf16 weights use gemv_bf16 / gemm_bf16");
}

}  // namespace grpst::cuda
