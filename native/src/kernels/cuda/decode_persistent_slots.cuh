// The persistent decode kernel's slot arithmetic (decode_persistent.cu): a slot's rows of bf16
// weights times the phase's input into per-warp (or per-thread) partial sums, and the helpers
// that finish them. Shapes: a slot holds n whole rows of K elements; x is [K] bf16 in shared
// memory (and, where K is a multiple of 2,048, fp32 in registers); part is [rows_max][cols]
// floats, cols = kWarps (per-warp sums) or kThreads (per-thread sums).
#pragma once
#include "decode_persistent.cuh"

namespace grpst::cuda {
namespace persistent {

__device__ __forceinline__ float dot8(const uint4& w, const uint4& x) {
  float a = bf16_lo(w.x) * bf16_lo(x.x);
  a = fmaf(bf16_hi(w.x), bf16_hi(x.x), a);
  a = fmaf(bf16_lo(w.y), bf16_lo(x.y), a);
  a = fmaf(bf16_hi(w.y), bf16_hi(x.y), a);
  a = fmaf(bf16_lo(w.z), bf16_lo(x.z), a);
  a = fmaf(bf16_hi(w.z), bf16_hi(x.z), a);
  a = fmaf(bf16_lo(w.w), bf16_lo(x.w), a);
  return fmaf(bf16_hi(w.w), bf16_hi(x.w), a);
}

// Row c's partial sums in the order they were written, reset for the slot after next.
__device__ __forceinline__ float take_row(float* part, int c, int cols) {
  float v = 0.f;
  for (int j = 0; j < cols; ++j) {
    v += part[c * cols + j];
    part[c * cols + j] = 0.f;
  }
  return v;
}

// The warp's sums of N rows (a[row] per lane) into out[row * stride] (lane 0 .. N - 1 of the
// writers). Two and four rows by recursive halving: each shuffle level sends half of what a lane
// holds and keeps the other half, so four rows take 6 shuffles instead of 20 (the sums' order is
// fixed: the same bits every launch).
template <int N>
__device__ __forceinline__ void warp_row_sums(float (&a)[N], int lane, float* out, int stride) {
  constexpr unsigned kAll = 0xffffffffu;
  if constexpr (N == 4) {
    const bool hi = lane & 16, mid = lane & 8;  // rows 2-3 / 0-1, then the odd / even one
    const float k0 = (hi ? a[2] : a[0]) + __shfl_xor_sync(kAll, hi ? a[0] : a[2], 16);
    const float k1 = (hi ? a[3] : a[1]) + __shfl_xor_sync(kAll, hi ? a[1] : a[3], 16);
    float v = (mid ? k1 : k0) + __shfl_xor_sync(kAll, mid ? k0 : k1, 8);
#pragma unroll
    for (int o = 4; o > 0; o >>= 1) v += __shfl_xor_sync(kAll, v, o);
    if ((lane & 7) == 0) out[((lane >> 3) & 3) * stride] = v;  // lanes 0, 8, 16, 24: rows 0-3
  } else if constexpr (N == 2) {
    const bool hi = lane & 16;
    float v = (hi ? a[1] : a[0]) + __shfl_xor_sync(kAll, hi ? a[0] : a[1], 16);
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(kAll, v, o);
    if ((lane & 15) == 0) out[(lane >> 4) * stride] = v;  // lanes 0, 16: rows 0, 1
  } else {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
      for (int row = 0; row < N; ++row) a[row] += __shfl_xor_sync(kAll, a[row], o);
    if (lane == 0)
#pragma unroll
      for (int row = 0; row < N; ++row) out[row * stride] = a[row];
  }
}

// N rows of exactly J * 256 elements times x (registers): thread t always meets the same
// 8-element columns t + 256 j, so its x values stay in registers (fp32) for the whole phase. The
// row count is a template argument so that the N * J loads issue together and the products run
// as 2 N J independent chains of four FMAs (a chain per row, j and half of the 8-element piece):
// eight warps per SM hide little latency, the work of one slot must carry its own parallelism.
template <int J, int N, class Release>
__device__ __forceinline__ void slot_rows(const uint4* wv, int vpr, const float (&xr)[J][8], float* part, int cols,
                                          Release& release) {
  const int ctid = threadIdx.x, lane = ctid & 31, cw = ctid >> 5;
  uint4 w[N][J];
#pragma unroll
  for (int row = 0; row < N; ++row)
#pragma unroll
    for (int j = 0; j < J; ++j) w[row][j] = wv[row * vpr + ctid + kThreads * j];
  release();  // the slot's bytes are in registers: it may be refilled while they are multiplied
  float a[N];
#pragma unroll
  for (int row = 0; row < N; ++row) {
    float lo[J], hi[J];
#pragma unroll
    for (int j = 0; j < J; ++j) {
      const uint4& v = w[row][j];
      lo[j] = bf16_lo(v.x) * xr[j][0];
      hi[j] = bf16_hi(v.x) * xr[j][1];
      lo[j] = fmaf(bf16_lo(v.y), xr[j][2], lo[j]);
      hi[j] = fmaf(bf16_hi(v.y), xr[j][3], hi[j]);
      lo[j] = fmaf(bf16_lo(v.z), xr[j][4], lo[j]);
      hi[j] = fmaf(bf16_hi(v.z), xr[j][5], hi[j]);
      lo[j] = fmaf(bf16_lo(v.w), xr[j][6], lo[j]);
      hi[j] = fmaf(bf16_hi(v.w), xr[j][7], hi[j]);
    }
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < J; ++j) sum += lo[j] + hi[j];
    a[row] = sum;
  }
  warp_row_sums<N>(a, lane, part + cw, cols);
}

// A slot's n rows times x, every row's partial sums into part[row][cols] (per warp or per
// thread); release() once the warp has read the slot. J > 0: rows of exactly J * 256 elements, at
// most kFastRows of them (slot_rows). J = 0: any row of a multiple of 8 elements (a flat loop over
// the slot's 16-byte pieces).
constexpr int kFastRows = 4;  // rows per slot the J > 0 path handles (rows_max above: general loop)
constexpr int kRowLoads = 8;  // 16-byte loads per thread slot_rows holds at once
template <int J, class Release>
__device__ __forceinline__ void slot_products(const uint4* wv, int n, int vpr, const uint4* xv, const float (&xr)[J > 0 ? J : 1][8],
                                              float* part, int cols, Release& release) {
  if constexpr (J > 0) {
    // At most kRowLoads 16-byte loads per thread at once (registers); more rows go one by one.
    switch (n * J <= kRowLoads ? n : 0) {
      case 1: return slot_rows<J, 1>(wv, vpr, xr, part, cols, release);
      case 2: if constexpr (2 * J <= kRowLoads) return slot_rows<J, 2>(wv, vpr, xr, part, cols, release); break;
      case 3: if constexpr (3 * J <= kRowLoads) return slot_rows<J, 3>(wv, vpr, xr, part, cols, release); break;
      case 4: if constexpr (4 * J <= kRowLoads) return slot_rows<J, 4>(wv, vpr, xr, part, cols, release); break;
      default: break;
    }
    auto none = [] {};
    for (int row = 0; row + 1 < n; ++row) slot_rows<J, 1>(wv + row * vpr, vpr, xr, part + row * cols, cols, none);
    slot_rows<J, 1>(wv + (n - 1) * vpr, vpr, xr, part + (n - 1) * cols, cols, release);
  } else {
    const int ctid = threadIdx.x, lane = ctid & 31, cw = ctid >> 5;
    const bool per_warp = cols == kWarps;  // every row a multiple of 256 elements
    const int nv = n * vpr;
    int idx = ctid, row = idx / vpr, col = idx - row * vpr;
    float acc = 0.f;
    while (idx < nv) {
      acc += dot8(wv[idx], xv[col]);
      idx += kThreads;
      col += kThreads;
      int next = row;
      while (col >= vpr) col -= vpr, ++next;
      if (next != row || idx >= nv) {  // warp-uniform when per_warp
        if (per_warp) {
          acc = warp_sum(acc);
          if (lane == 0) part[row * cols + cw] = acc;
        } else {
          part[row * cols + ctid] = acc;
        }
        acc = 0.f;
        row = next;
      }
    }
    release();
  }
}

// The residual stream's value at row (through the L2: other blocks wrote it in an earlier phase).
__device__ __forceinline__ float residual_at(const bf16* h, int row) {
  return bf16_bits_to_f32(__ldcg(reinterpret_cast<const unsigned short*>(h + row)));
}

}  // namespace persistent
}  // namespace grpst::cuda
