// Flash-attention prefill over the paged KV cache (v1): a block takes 128 query rows
// of one head (16 per warp), streams 64-key tiles of K and V through shared memory (two stages,
// cp.async for bf16 caches; fp8/int8 caches are dequantized on the way in), computes S = QK^T
// and O += PV on tensor cores with an online softmax in registers. Causal: query row i of a
// chunk sits at position ctx_len - q_len + i. Head dims other than 64/128 use the decode kernel
// row by row. The default for head_dim 64/128 is the FA2-layout kernel (attention_prefill_fa2.cu);
// GRPST_CUDA_PREFILL_V1=1 selects this one.
#include <cstdlib>
#include <string>
#include <type_traits>

#include "attention_prefill_tiles.cuh"
#include "env_switch.h"

namespace grpst::cuda {
namespace {

constexpr int kBN = 64;  // keys per tile
constexpr float kLog2e = 1.4426950408889634f;

// kWarps warps of 16 query rows each: 8 (one 128-row block per SM) or 4 (two 64-row blocks per
// SM, which hide each other's barriers and copy waits).
template <int HD, int kWarps>
constexpr size_t prefill_smem_bytes() {
  return static_cast<size_t>(16 * kWarps + 4 * kBN) * HD * sizeof(bf16);
}

template <int HD, class Kv, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, 8 / kWarps) attention_prefill_kernel(
    const bf16* __restrict__ q /*[T,nh,HD]*/, PrefillBatch batch, PagedTables tables, int nh,
    int nkv, int block_size, KvLayer kv, float scale_log2, bf16* __restrict__ out /*[T,nh*HD]*/) {
  constexpr int kBM = 16 * kWarps;  // query rows per block
  constexpr int KSTEPS = HD / 16;  // k16 steps over the head dim (QK^T)
  constexpr int DT = HD / 8;       // 8-wide column tiles of O
  constexpr int NT = kBN / 8;      // 8-wide key tiles of S
  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sq = reinterpret_cast<bf16*>(smem_raw);  // [kBM][HD]
  bf16* sk = sq + kBM * HD;                       // [2][kBN][HD]
  bf16* sv = sk + 2 * kBN * HD;                   // [2][kBN][HD]

  griddep_wait();
  griddep_launch_dependents();
  PrefillRows rows;
  if (!prefill_rows<kBM, kBN>(batch, tables, nh, nkv, rows)) return;
  const int h = rows.h, q_len = rows.q_len, row0 = rows.row0, ctx_len = rows.ctx_len, q_start = rows.q_start;
  const int pos0 = rows.pos0, g = rows.g, n_tiles = rows.n_tiles;
  const int32_t* bt = rows.bt;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int gid = lane >> 2, tig = lane & 3;
  const typename Kv::T* kc = reinterpret_cast<const typename Kv::T*>(kv.k);
  const typename Kv::T* vc = reinterpret_cast<const typename Kv::T*>(kv.v);

  load_q_tile<HD, kBM, kWarps * 32>(sq, q, rows, nh);
  load_kv_tile<HD, Kv, kBN, kWarps * 32>(sk, kc, kv.k_scale, bt, 0, ctx_len, nkv, g, block_size);
  load_kv_tile<HD, Kv, kBN, kWarps * 32>(sv, vc, kv.v_scale, bt, 0, ctx_len, nkv, g, block_size);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();

  uint32_t qa[KSTEPS][4];
#pragma unroll
  for (int ks = 0; ks < KSTEPS; ++ks) {
    const int r = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
    ldmatrix_x4(qa[ks], sq + swz<HD>(r, ks * 2 + (lane >> 4)));
  }
  float o[DT][4];
#pragma unroll
  for (int i = 0; i < DT; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  const int pr0 = pos0 + row0 + warp * 16 + gid, pr1 = pr0 + 8;

  for (int kt = 0; kt < n_tiles; ++kt) {
    const int st = kt & 1;
    if (kt + 1 < n_tiles) {
      load_kv_tile<HD, Kv, kBN, kWarps * 32>(sk + (st ^ 1) * kBN * HD, kc, kv.k_scale, bt, (kt + 1) * kBN, ctx_len, nkv, g, block_size);
      load_kv_tile<HD, Kv, kBN, kWarps * 32>(sv + (st ^ 1) * kBN * HD, vc, kv.v_scale, bt, (kt + 1) * kBN, ctx_len, nkv, g, block_size);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* tk = sk + st * kBN * HD;
    const bf16* tv = sv + st * kBN * HD;

    float sacc[NT][4];
#pragma unroll
    for (int i = 0; i < NT; ++i) sacc[i][0] = sacc[i][1] = sacc[i][2] = sacc[i][3] = 0.f;
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) {
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t b[4];
        const int r = np * 16 + (lane & 7) + ((lane >> 4) & 1) * 8;
        ldmatrix_x4(b, tk + swz<HD>(r, ks * 2 + ((lane >> 3) & 1)));
        mma_bf16_x2(sacc[2 * np], sacc[2 * np + 1], qa[ks], b);
      }
    }

    // Mask (causal and past the context), online softmax in the log2 domain.
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int k0 = kt * kBN + nt * 8 + 2 * tig;
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int key = k0 + e;
        const bool ok_key = key < ctx_len;
        sacc[nt][e] = (ok_key && key <= pr0) ? sacc[nt][e] * scale_log2 : -INFINITY;
        sacc[nt][2 + e] = (ok_key && key <= pr1) ? sacc[nt][2 + e] * scale_log2 : -INFINITY;
        mx0 = fmaxf(mx0, sacc[nt][e]);
        mx1 = fmaxf(mx1, sacc[nt][2 + e]);
      }
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float mu0 = mn0 == -INFINITY ? 0.f : mn0, mu1 = mn1 == -INFINITY ? 0.f : mn1;
    const float c0 = exp2f(m0 - mu0), c1 = exp2f(m1 - mu1);
    m0 = mn0;
    m1 = mn1;
    float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      sacc[nt][0] = exp2f(sacc[nt][0] - mu0);
      sacc[nt][1] = exp2f(sacc[nt][1] - mu0);
      sacc[nt][2] = exp2f(sacc[nt][2] - mu1);
      sacc[nt][3] = exp2f(sacc[nt][3] - mu1);
      rs0 += sacc[nt][0] + sacc[nt][1];
      rs1 += sacc[nt][2] + sacc[nt][3];
    }
    l0 = l0 * c0 + rs0;
    l1 = l1 * c1 + rs1;
#pragma unroll
    for (int i = 0; i < DT; ++i) {
      o[i][0] *= c0;
      o[i][1] *= c0;
      o[i][2] *= c1;
      o[i][3] *= c1;
    }

#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      uint32_t pa[4];
      pa[0] = pack_bf16x2(sacc[2 * kk][0], sacc[2 * kk][1]);
      pa[1] = pack_bf16x2(sacc[2 * kk][2], sacc[2 * kk][3]);
      pa[2] = pack_bf16x2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
      pa[3] = pack_bf16x2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < DT / 2; ++dp) {
        uint32_t b[4];
        const int r = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        ldmatrix_x4_trans(b, tv + swz<HD>(r, dp * 2 + (lane >> 4)));
        mma_bf16_x2(o[2 * dp], o[2 * dp + 1], pa, b);
      }
    }
    __syncthreads();  // everyone is done with this stage before it is refilled
  }

#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
  const int r0 = row0 + warp * 16 + gid, r1 = r0 + 8;
#pragma unroll
  for (int i = 0; i < DT; ++i) {
    const int d = i * 8 + 2 * tig;
    if (r0 < q_len)
      *reinterpret_cast<uint32_t*>(out + (static_cast<size_t>(q_start + r0) * nh + h) * HD + d) =
          pack_bf16x2(o[i][0] * inv0, o[i][1] * inv0);
    if (r1 < q_len)
      *reinterpret_cast<uint32_t*>(out + (static_cast<size_t>(q_start + r1) * nh + h) * HD + d) =
          pack_bf16x2(o[i][2] * inv1, o[i][3] * inv1);
  }
}

template <int HD, class Kv, int kWarps>
Status launch_prefill(const bf16* q, const PrefillBatch& b, PagedTables tables, int nh,
                      KvGeometry geo, KvLayer kv, float scale_log2, bf16* out, const Exec& ex) {
  constexpr size_t smem = prefill_smem_bytes<HD, kWarps>();
  auto kernel = attention_prefill_kernel<HD, Kv, kWarps>;
  GRPST_TRY(allow_smem("attention_prefill", kernel, smem));
  const dim3 grid(ceil_div(b.max_q_len, 16 * kWarps), nh, b.num_seqs);
  return launch("attention_prefill", kernel, grid, dim3(kWarps * 32), smem, ex, q, b, tables, nh,
                geo.nkv, geo.block_size, kv, scale_log2, out);
}

template <class Kv>
Status prefill_hd(const bf16* q, const PrefillBatch& b, PagedTables tables, int nh, KvGeometry geo,
                  KvLayer kv, float scale_log2, bf16* out, const Exec& ex) {
  const bool four = env_int("GRPST_CUDA_PREFILL_WARPS", 8) == 4;
  if (geo.head_dim == 128)
    return four ? launch_prefill<128, Kv, 4>(q, b, tables, nh, geo, kv, scale_log2, out, ex)
                : launch_prefill<128, Kv, 8>(q, b, tables, nh, geo, kv, scale_log2, out, ex);
  return four ? launch_prefill<64, Kv, 4>(q, b, tables, nh, geo, kv, scale_log2, out, ex)
              : launch_prefill<64, Kv, 8>(q, b, tables, nh, geo, kv, scale_log2, out, ex);
}

// GRPST_CUDA_PREFILL_V1=1: the 16-rows-per-warp kernel above; 0: the FA2-layout one; unset: the
// default below.
constexpr bool kV1Default = false;
bool use_v1_kernel() {
  return env_int("GRPST_CUDA_PREFILL_V1", kV1Default ? 1 : 0) != 0;
}

}  // namespace

Status attention_prefill(const bf16* q, const PrefillBatch& batch, PagedTables tables, int nh,
                         KvGeometry geo, KvLayer kv, float softmax_scale, bf16* out,
                         const Exec& ex) {
  if (nh % geo.nkv != 0) return invalid("attention_prefill", "num_heads must be a multiple of num_kv_heads");
  if (batch.num_seqs == 0 || batch.num_tokens == 0) return ok_status();
  if (geo.head_dim != 64 && geo.head_dim != 128) {
    if (!batch.token_pos || !batch.token_seq)
      return invalid("attention_prefill", "head_dim other than 64/128 needs token_pos and token_seq");
    const size_t off = static_cast<size_t>(batch.first_row) * nh * geo.head_dim;
    return attention_decode(q + off, batch.token_pos, 1, batch.token_seq, tables, batch.num_tokens, nh,
                            geo, kv, softmax_scale, 1, nullptr, out + off, ex);
  }
  const float scale_log2 = softmax_scale * kLog2e;
  if (!use_v1_kernel()) return attention_prefill_fa2(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
  switch (geo.dtype) {
    case KvDtype::bf16: return prefill_hd<KvBf16>(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
    case KvDtype::fp8: return prefill_hd<KvFp8>(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
    case KvDtype::int8: return prefill_hd<KvInt8>(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
  }
  return invalid("attention_prefill", "unknown KV cache dtype");
}

}  // namespace grpst::cuda
