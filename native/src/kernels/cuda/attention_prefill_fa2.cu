// Flash-attention prefill over the paged KV cache in FA2's work layout: each warp takes 32 query
// rows of one head (two m16 tiles), so every K/V fragment it reads from shared memory feeds two
// mma instead of one, halving the shared-memory traffic per FLOP of the 16-rows-per-warp kernel
// in attention_prefill.cu. Q stays in shared memory (read per k16 step) to leave registers for the
// 32 x HD output accumulators. Blocks of 4 warps (128 rows, 96 KB of shared memory at HD 128, two
// blocks per SM so one block's softmax and barrier waits overlap the other's mma) or 8 warps for
// long chunks. K/V come in 64-key tiles, two stages deep (cp.async for bf16 caches, one page
// lookup per row for K and V; fp8/int8 dequantized on the way in). Masks are applied only on
// tiles that cross the diagonal or the context end; warps whose rows all precede a tile skip it;
// the accumulators are rescaled only when a running max moved. Softmax runs in the log2 domain
// with the scale folded into one FMA per score. Causal: query row i of a chunk sits at position
// ctx_len - q_len + i. H200, 32k tokens, Qwen3-8B heads: 335 TFLOP/s against 138 (v1).
#include <cmath>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "attention_prefill_tiles.cuh"
#include "env_switch.h"

namespace grpst::cuda {
namespace {

// kWarps warps of 32 query rows: 4 (two 128-row blocks per SM) or 8 (one 256-row block per SM:
// half the K/V tile loads per FLOP, no second block to overlap with); fa2_hd picks.
constexpr int kBN = 64;  // keys per tile

// ldmatrix on a 32-bit shared-memory address.
__device__ __forceinline__ void ldsm_x4(uint32_t* r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t* r, uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// Keys [key0, key0 + kBN) of one kv head from a bf16 cache into the K and V stage tiles: each
// thread copies one 16-byte chunk column of kBN * CH / kThreads rows, and the page lookup and
// address of a row serve its K and its V copy. Keys at or past ctx_len become zeros.
// bs_shift: log2(block_size) when it is a power of two (no division), else -1.
template <int HD, int kThreads>
__device__ __forceinline__ void load_kv_bf16(bf16* tk, bf16* tv, const bf16* kc, const bf16* vc,
                                             const int32_t* bt, int key0, int ctx_len, size_t head_off,
                                             size_t page_stride, int block_size, int bs_shift) {
  constexpr int CH = HD / 8;
  constexpr int kRowsPerPass = kThreads / CH;
  const int c = threadIdx.x % CH, rr = threadIdx.x / CH;
#pragma unroll
  for (int i = 0; i < kBN / kRowsPerPass; ++i) {
    const int r = rr + i * kRowsPerPass;
    const int key = key0 + r;
    const bool valid = key < ctx_len;
    int page, slot;
    if (bs_shift >= 0) {
      page = key >> bs_shift;
      slot = key & (block_size - 1);
    } else {
      page = key / block_size;
      slot = key - page * block_size;
    }
    const size_t off =
        valid ? static_cast<size_t>(bt[page]) * page_stride + head_off + static_cast<size_t>(slot) * HD + c * 8 : 0;
    const int d = swz<HD>(r, c);
    cp_async16(tk + d, kc + off, valid);
    cp_async16(tv + d, vc + off, valid);
  }
}

template <int HD, int kWarps>
constexpr size_t fa2_smem_bytes() {
  return static_cast<size_t>(32 * kWarps + 4 * kBN) * HD * sizeof(bf16);  // Q + 2 stages of K and V
}

template <int HD, class Kv, int kWarps>
__global__ void __launch_bounds__(kWarps * 32, 8 / kWarps) attention_prefill_fa2_kernel(
    const bf16* __restrict__ q /*[T,nh,HD]*/, PrefillBatch batch, PagedTables tables, int nh,
    int nkv, int block_size, int bs_shift, KvLayer kv, float scale_log2, bf16* __restrict__ out /*[T,nh*HD]*/) {
  constexpr int kThreads = kWarps * 32;
  constexpr int kBM = 32 * kWarps;  // query rows per block
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

  load_q_tile<HD, kBM, kThreads>(sq, q, rows, nh);
  const size_t head_off = static_cast<size_t>(g) * block_size * HD;
  const size_t page_stride = static_cast<size_t>(nkv) * block_size * HD;
  auto load_kv = [&](int stage, int key0) {
    bf16* tk = sk + stage * kBN * HD;
    bf16* tv = sv + stage * kBN * HD;
    if constexpr (std::is_same_v<Kv, KvBf16>) {
      load_kv_bf16<HD, kThreads>(tk, tv, kc, vc, bt, key0, ctx_len, head_off, page_stride, block_size, bs_shift);
    } else {
      load_kv_tile<HD, Kv, kBN, kThreads>(tk, kc, kv.k_scale, bt, key0, ctx_len, nkv, g, block_size);
      load_kv_tile<HD, Kv, kBN, kThreads>(tv, vc, kv.v_scale, bt, key0, ctx_len, nkv, g, block_size);
    }
  };
  load_kv(0, 0);
  cp_async_commit();

  // This warp's rows [wrow0, wrow0 + 32); positions of its first and last valid row.
  const int wrow0 = row0 + warp * 32;
  const bool warp_active = wrow0 < q_len;
  const int wpos_first = pos0 + wrow0;
  const int wpos_last = pos0 + min(wrow0 + 31, q_len - 1);
  // Thread rows: [mi][half] -> wrow0 + mi * 16 + half * 8 + gid.
  const int tpos = pos0 + wrow0 + gid;
  // ldmatrix addresses. Every fragment row r of a lane has r & 7 == lane & 7, and the chunk is
  // 2 * step + (one lane bit), so swz's chunk ^ (r & 7) is (2 * step) ^ z with a per-lane z:
  // one XOR with a constant per ldmatrix instead of a register per step.
  const int y = lane & 7;
  const uint32_t q_lane = smem_addr(sq) + ((warp * 32 + y + ((lane >> 3) & 1) * 8) * HD) * 2;
  const uint32_t zq = ((lane >> 4) ^ y) << 4;
  const uint32_t k_lane = (y + ((lane >> 4) & 1) * 8) * HD * 2;
  const uint32_t zk = (((lane >> 3) & 1) ^ y) << 4;
  const uint32_t v_lane = (y + ((lane >> 3) & 1) * 8) * HD * 2;
  const uint32_t zv = ((lane >> 4) ^ y) << 4;
  const uint32_t sk_addr = smem_addr(sk), sv_addr = smem_addr(sv);

  float o[2][DT][4];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int i = 0; i < DT; ++i) o[mi][i][0] = o[mi][i][1] = o[mi][i][2] = o[mi][i][3] = 0.f;
  float m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};  // running max (scaled, log2 domain)
  float l[4] = {0.f, 0.f, 0.f, 0.f};                          // this thread's partial row sums

  for (int kt = 0; kt < n_tiles; ++kt) {
    const int st = kt & 1;
    if (kt + 1 < n_tiles) {
      load_kv(st ^ 1, (kt + 1) * kBN);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int key0 = kt * kBN;
    if (warp_active && key0 <= wpos_last) {  // warp-uniform: some row of this warp sees a key here
      const uint32_t tk = sk_addr + st * kBN * HD * 2 + k_lane;
      const uint32_t tv = sv_addr + st * kBN * HD * 2 + v_lane;

      float sacc[2][NT][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int i = 0; i < NT; ++i) sacc[mi][i][0] = sacc[mi][i][1] = sacc[mi][i][2] = sacc[mi][i][3] = 0.f;
#pragma unroll
      for (int ks = 0; ks < KSTEPS; ++ks) {
        uint32_t qa[2][4];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) ldsm_x4(qa[mi], q_lane + mi * 16 * HD * 2 + ((ks * 32) ^ zq));
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
          uint32_t b[4];
          ldsm_x4(b, tk + np * 16 * HD * 2 + ((ks * 32) ^ zk));
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) mma_bf16_x2(sacc[mi][2 * np], sacc[mi][2 * np + 1], qa[mi], b);
        }
      }

      // Mask only tiles that reach past this warp's first row or past the context.
      if (key0 + kBN - 1 > wpos_first || key0 + kBN > ctx_len) {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int key = key0 + nt * 8 + 2 * tig + (e & 1);
              const int pos = tpos + mi * 16 + (e >> 1) * 8;
              if (key > pos || key >= ctx_len) sacc[mi][nt][e] = -INFINITY;
            }
      }

      // Online softmax: row max of the raw scores, p = 2^(s * scale_log2 - max).
      float mu[4], c[4];
      bool grew = false;
#pragma unroll
      for (int r = 0; r < 4; ++r) {  // r = mi * 2 + half
        const int mi = r >> 1, half = r & 1;
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mx = fmaxf(mx, fmaxf(sacc[mi][nt][2 * half], sacc[mi][nt][2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m[r], mx * scale_log2);
        mu[r] = mn == -INFINITY ? 0.f : mn;
        c[r] = exp2f(m[r] - mu[r]);
        grew |= mn != m[r];
        m[r] = mn;
        l[r] *= c[r];
      }
      // Once the running maxima settle most tiles leave them unchanged (c == 1): skip the
      // rescale of the 32 x HD accumulators then (warp-uniform branch).
      if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
        for (int mi = 0; mi < 2; ++mi)
#pragma unroll
          for (int i = 0; i < DT; ++i) {
            o[mi][i][0] *= c[mi * 2];
            o[mi][i][1] *= c[mi * 2];
            o[mi][i][2] *= c[mi * 2 + 1];
            o[mi][i][3] *= c[mi * 2 + 1];
          }
      }
#pragma unroll
      for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int r = mi * 2 + (e >> 1);
            const float p = exp2f(fmaf(sacc[mi][nt][e], scale_log2, -mu[r]));
            sacc[mi][nt][e] = p;
            l[r] += p;
          }

      // O += P V, P straight from the S accumulators (bf16 A fragments).
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        uint32_t pa[2][4];
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) {
          pa[mi][0] = pack_bf16x2(sacc[mi][2 * kk][0], sacc[mi][2 * kk][1]);
          pa[mi][1] = pack_bf16x2(sacc[mi][2 * kk][2], sacc[mi][2 * kk][3]);
          pa[mi][2] = pack_bf16x2(sacc[mi][2 * kk + 1][0], sacc[mi][2 * kk + 1][1]);
          pa[mi][3] = pack_bf16x2(sacc[mi][2 * kk + 1][2], sacc[mi][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < DT / 2; ++dp) {
          uint32_t b[4];
          ldsm_x4_trans(b, tv + kk * 16 * HD * 2 + ((dp * 32) ^ zv));
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) mma_bf16_x2(o[mi][2 * dp], o[mi][2 * dp + 1], pa[mi], b);
        }
      }
    }
    __syncthreads();  // everyone is done with this stage before it is refilled
  }

#pragma unroll
  for (int r = 0; r < 4; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int mi = r >> 1, half = r & 1;
    const int row = wrow0 + mi * 16 + half * 8 + gid;
    if (row >= q_len) continue;
    const float inv = l[r] > 0.f ? 1.f / l[r] : 0.f;
    bf16* dst = out + (static_cast<size_t>(q_start + row) * nh + h) * HD + 2 * tig;
#pragma unroll
    for (int i = 0; i < DT; ++i)
      *reinterpret_cast<uint32_t*>(dst + i * 8) = pack_bf16x2(o[mi][i][2 * half] * inv, o[mi][i][2 * half + 1] * inv);
  }
}

template <int HD, class Kv, int kWarps>
Status launch_fa2(const bf16* q, const PrefillBatch& b, PagedTables tables, int nh, KvGeometry geo,
                  KvLayer kv, float scale_log2, bf16* out, const Exec& ex) {
  constexpr int kBM = 32 * kWarps;
  constexpr size_t smem = fa2_smem_bytes<HD, kWarps>();
  auto kernel = attention_prefill_fa2_kernel<HD, Kv, kWarps>;
  GRPST_TRY(allow_smem("attention_prefill_fa2", kernel, smem));
  const dim3 grid(ceil_div(b.max_q_len, kBM), nh, b.num_seqs);
  int bs_shift = -1;
  for (int sh = 0; sh < 31; ++sh)
    if ((1 << sh) == geo.block_size) bs_shift = sh;
  return launch("attention_prefill_fa2", kernel, grid, dim3(kWarps * 32), smem, ex, q, b, tables, nh,
                geo.nkv, geo.block_size, bs_shift, kv, scale_log2, out);
}

template <class Kv>
Status fa2_hd(const bf16* q, const PrefillBatch& b, PagedTables tables, int nh, KvGeometry geo,
              KvLayer kv, float scale_log2, bf16* out, const Exec& ex) {
  // 8 warps (256-row blocks) for long chunks: 26.2 against 27.1 ms per layer at 32k tokens on an
  // H200, equal at 8k; 4 warps otherwise (less padding on short chunks, more blocks to spread).
  // GRPST_CUDA_PREFILL_FA2_WARPS=4|8 overrides.
  const bool eight = env_int("GRPST_CUDA_PREFILL_FA2_WARPS", b.max_q_len >= 16384 ? 8 : 4) == 8;
  if (geo.head_dim == 128)
    return eight ? launch_fa2<128, Kv, 8>(q, b, tables, nh, geo, kv, scale_log2, out, ex)
                 : launch_fa2<128, Kv, 4>(q, b, tables, nh, geo, kv, scale_log2, out, ex);
  if (geo.head_dim == 64)
    return eight ? launch_fa2<64, Kv, 8>(q, b, tables, nh, geo, kv, scale_log2, out, ex)
                 : launch_fa2<64, Kv, 4>(q, b, tables, nh, geo, kv, scale_log2, out, ex);
  return invalid("attention_prefill_fa2", "head_dim must be 64 or 128");
}

}  // namespace

Status attention_prefill_fa2(const bf16* q, const PrefillBatch& batch, PagedTables tables, int nh,
                             KvGeometry geo, KvLayer kv, float scale_log2, bf16* out, const Exec& ex) {
  switch (geo.dtype) {
    case KvDtype::bf16: return fa2_hd<KvBf16>(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
    case KvDtype::fp8: return fa2_hd<KvFp8>(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
    case KvDtype::int8: return fa2_hd<KvInt8>(q, batch, tables, nh, geo, kv, scale_log2, out, ex);
  }
  return invalid("attention_prefill_fa2", "unknown KV cache dtype");
}

}  // namespace grpst::cuda
