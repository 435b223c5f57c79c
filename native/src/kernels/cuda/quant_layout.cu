// Load-time layout changes for the weight-only formats and the reverse (dequantization to bf16
// for the prefill GEMM path). The packed layouts put each lane's mma A fragment in one 16-byte
// load (int4: 4 k16 steps per uint4; int8: 2 per uint4); see linear_skinny.cu.
// Within a k16 step for row tile base n0 and lane (g = lane / 4, t = lane % 4) the 8 elements are
//   e0 W[g][2t]  e1 W[g][2t+1]  e2 W[g+8][2t]  e3 W[g+8][2t+1]
//   e4 W[g][2t+8] e5 W[g][2t+9] e6 W[g+8][2t+8] e7 W[g+8][2t+9]
// int8 stores them as bytes e0..e7; int4 stores nibbles in the order e0 e2 e4 e6 e1 e3 e5 e7 so
// that (word >> 4i) & 0x000F000F yields the bf16x2 pair (e2i, e2i+1).
#include "device_utils.cuh"
#include "kernels.h"

namespace grpst::cuda {
namespace {

__device__ __forceinline__ void frag_coords(int lane, int e, int* dr, int* dk) {
  const int g = lane >> 2, t = lane & 3;
  *dr = g + ((e >> 1) & 1) * 8;
  *dk = 2 * t + (e & 1) + (e >> 2) * 8;
}

// One thread per (tile, kb, lane): 32 bytes out.
__global__ void repack_int8_kernel(const int8_t* __restrict__ nat /*[N,K]*/, int N, int K, int nkb,
                                   int8_t* __restrict__ packed) {
  griddep_wait();  // (see device_utils.cuh: every kernel waits before it triggers its dependents)
  griddep_launch_dependents();
  const size_t id = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t total = static_cast<size_t>(ceil_div(N, 16)) * nkb * 32;
  if (id >= total) return;
  const int lane = static_cast<int>(id % 32);
  const int kb = static_cast<int>((id / 32) % nkb);
  const int tile = static_cast<int>(id / (32 * static_cast<size_t>(nkb)));
  uint32_t words[8];
  for (int w = 0; w < 4; ++w) {
    uint32_t lo = 0, hi = 0;
    for (int e = 0; e < 8; ++e) {
      int dr, dk;
      frag_coords(lane, e, &dr, &dk);
      const int n = tile * 16 + dr, k = kb * 64 + w * 16 + dk;
      const uint32_t b = (n < N && k < K) ? static_cast<uint8_t>(nat[static_cast<size_t>(n) * K + k]) : 0u;
      if (e < 4) lo |= b << (8 * e); else hi |= b << (8 * (e - 4));
    }
    words[2 * w] = lo;
    words[2 * w + 1] = hi;
  }
  uint4* dst = reinterpret_cast<uint4*>(packed) + id * 2;
  dst[0] = make_uint4(words[0], words[1], words[2], words[3]);
  dst[1] = make_uint4(words[4], words[5], words[6], words[7]);
}

__device__ __forceinline__ int nibble_slot(int e) { return (e & 1) ? 4 + (e >> 1) : (e >> 1); }

__device__ __forceinline__ uint32_t int4_at(const uint8_t* nat, int N, int K, int n, int k) {
  if (n >= N || k >= K) return 8u;
  const uint8_t b = nat[static_cast<size_t>(n) * (K / 2) + k / 2];
  return (k & 1) ? (b >> 4) : (b & 0xF);
}

// One thread per (tile, kb, lane): one uint4 out.
__global__ void repack_int4_kernel(const uint8_t* __restrict__ nat /*[N,K/2]*/, int N, int K, int nkb,
                                   uint32_t* __restrict__ packed) {
  griddep_wait();  // (see device_utils.cuh: every kernel waits before it triggers its dependents)
  griddep_launch_dependents();
  const size_t id = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t total = static_cast<size_t>(ceil_div(N, 16)) * nkb * 32;
  if (id >= total) return;
  const int lane = static_cast<int>(id % 32);
  const int kb = static_cast<int>((id / 32) % nkb);
  const int tile = static_cast<int>(id / (32 * static_cast<size_t>(nkb)));
  uint32_t words[4];
  for (int w = 0; w < 4; ++w) {
    uint32_t word = 0;
    for (int e = 0; e < 8; ++e) {
      int dr, dk;
      frag_coords(lane, e, &dr, &dk);
      word |= int4_at(nat, N, K, tile * 16 + dr, kb * 64 + w * 16 + dk) << (4 * nibble_slot(e));
    }
    words[w] = word;
  }
  reinterpret_cast<uint4*>(packed)[id] = make_uint4(words[0], words[1], words[2], words[3]);
}

// [N, ngroups] -> [ntiles][ngroups][8][2]: scales fp32 -> bf16; zeros (uint8) -> bf16(128 + z).
// Within a tile's group the 16 rows are paired (j, j + 8) for j = 0..7: the lane of mma row group
// g needs rows g and g + 8, and the streaming GEMV takes both in one 4-byte load whose register it
// reads only when the group is finished. With the rows in order it took two 2-byte
// loads, and packing them into one register at load time made the warp wait for them there.
__global__ void repack_groups_kernel(const float* __restrict__ scales, const uint8_t* __restrict__ zeros, int N,
                                     int ngroups, bf16* __restrict__ packed) {
  griddep_wait();  // (see device_utils.cuh: every kernel waits before it triggers its dependents)
  griddep_launch_dependents();
  const size_t id = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t total = static_cast<size_t>(ceil_div(N, 16)) * ngroups * 16;
  if (id >= total) return;
  const int slot = static_cast<int>(id % 16), r = slot / 2 + (slot & 1) * 8;
  const int gi = static_cast<int>((id / 16) % ngroups);
  const int tile = static_cast<int>(id / (16 * static_cast<size_t>(ngroups)));
  const int n = tile * 16 + r;
  const size_t src = static_cast<size_t>(n) * ngroups + gi;
  float v;
  if (zeros) v = n < N ? 128.f + static_cast<float>(zeros[src]) : 136.f;
  else v = n < N ? scales[src] : 0.f;
  packed[id] = __float2bfloat16_rn(v);
}

// Dequantization to bf16 [N,K] for the GEMM path: one block per 16-row tile and kDequantKb
// 64-wide k blocks. Each warp decodes one k block's fragments (one coalesced 16 or 32-byte load per
// lane) into a shared [16][kDequantCols] tile, which the block then writes out as whole 16-byte
// row segments (per-element stores straight from the fragment layout left every 32-byte sector
// a quarter written: on an H200 the int4 decode step at 16 rows took 50.3 ms through them, 10.4
// through this). A lane's fragment holds rows
// g and g + 8 only, at element pairs (2t, 2t + 1): scales (and int4 zeros) are read once per row
// and k16 step, and the tile is written a bf16 pair at a time.
constexpr int kDequantKb = 8;  // = warps per block
constexpr int kDequantCols = kDequantKb * 64;
constexpr int kDequantStride = kDequantCols + 8;  // 16 bytes of padding: the 8 rows g of a store hit different banks

// Writes the fragment's 8 values of k16 step w (element order e0..e7 of the layout above).
__device__ __forceinline__ void put_fragment(bf16 (*tile)[kDequantStride], int col0, int lane, const float (&v)[8]) {
  const int g = lane >> 2, t = lane & 3;
  const int c = col0 + 2 * t;
  *reinterpret_cast<__nv_bfloat162*>(&tile[g][c]) = __floats2bfloat162_rn(v[0], v[1]);
  *reinterpret_cast<__nv_bfloat162*>(&tile[g + 8][c]) = __floats2bfloat162_rn(v[2], v[3]);
  *reinterpret_cast<__nv_bfloat162*>(&tile[g][c + 8]) = __floats2bfloat162_rn(v[4], v[5]);
  *reinterpret_cast<__nv_bfloat162*>(&tile[g + 8][c + 8]) = __floats2bfloat162_rn(v[6], v[7]);
}

__device__ __forceinline__ void store_dequant_tile(const bf16 (*tile)[kDequantStride], int tile_idx, int kb0, int N,
                                                   int K, bf16* __restrict__ out) {
  __syncthreads();
  for (int idx = threadIdx.x; idx < 16 * kDequantCols / 8; idx += blockDim.x) {
    const int r = idx / (kDequantCols / 8), c = (idx % (kDequantCols / 8)) * 8;
    const int n = tile_idx * 16 + r, k = kb0 * 64 + c;
    if (n >= N || k >= K) continue;
    bf16* dst = out + static_cast<size_t>(n) * K + k;
    if (k + 8 <= K && K % 8 == 0) {
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(&tile[r][c]);
    } else {
      for (int e = 0; e < 8 && k + e < K; ++e) dst[e] = tile[r][c + e];
    }
  }
}

__global__ void __launch_bounds__(kDequantKb * 32) dequant_int8_kernel(const int8_t* __restrict__ packed,
                                                                       const float* __restrict__ scale, int N, int K,
                                                                       int nkb, bf16* __restrict__ out) {
  griddep_wait();  // (see device_utils.cuh: every kernel waits before it triggers its dependents)
  griddep_launch_dependents();
  __shared__ __align__(16) bf16 tile[16][kDequantStride];
  const int tile_idx = blockIdx.y, kb0 = blockIdx.x * kDequantKb;
  const int lane = threadIdx.x & 31, kb = kb0 + (threadIdx.x >> 5);
  if (kb < nkb) {
    const int8_t* src = packed + ((static_cast<size_t>(tile_idx) * nkb + kb) * 32 + lane) * 32;
    int8_t q[32];
    *reinterpret_cast<uint4*>(q) = reinterpret_cast<const uint4*>(src)[0];
    *reinterpret_cast<uint4*>(q + 16) = reinterpret_cast<const uint4*>(src)[1];
    const int n = tile_idx * 16 + (lane >> 2);
    const float s_g = n < N ? scale[n] : 0.f, s_g8 = n + 8 < N ? scale[n + 8] : 0.f;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      float v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) v[e] = static_cast<float>(q[w * 8 + e]) * ((e >> 1) & 1 ? s_g8 : s_g);
      put_fragment(tile, (kb - kb0) * 64 + w * 16, lane, v);
    }
  }
  store_dequant_tile(tile, tile_idx, kb0, N, K, out);
}

// Group size G: a multiple of 16 (dequant_weight checks), so a k16 step lies in one group.
__global__ void __launch_bounds__(kDequantKb * 32) dequant_int4_kernel(const uint32_t* __restrict__ packed,
                                                                       const bf16* __restrict__ scales,
                                                                       const bf16* __restrict__ zeros, int N, int K,
                                                                       int G, int nkb, bf16* __restrict__ out) {
  griddep_wait();  // (see device_utils.cuh: every kernel waits before it triggers its dependents)
  griddep_launch_dependents();
  __shared__ __align__(16) bf16 tile[16][kDequantStride];
  const int tile_idx = blockIdx.y, kb0 = blockIdx.x * kDequantKb;
  const int lane = threadIdx.x & 31, kb = kb0 + (threadIdx.x >> 5);
  if (kb < nkb) {
    const int ngroups = (K + G - 1) / G;
    const uint4 raw = reinterpret_cast<const uint4*>(packed)[(static_cast<size_t>(tile_idx) * nkb + kb) * 32 + lane];
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
    const int g = lane >> 2;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const int k = min(kb * 64 + w * 16, K - 1);  // padding columns are never stored
      const size_t gidx = (static_cast<size_t>(tile_idx) * ngroups + k / G) * 16 + 2 * g;  // rows g, g + 8
      const float s_g = to_f32(scales[gidx]), s_g8 = to_f32(scales[gidx + 1]);
      const float z_g = zeros ? to_f32(zeros[gidx]) - 128.f : 8.f;
      const float z_g8 = zeros ? to_f32(zeros[gidx + 1]) - 128.f : 8.f;
      float v[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float q = static_cast<float>((words[w] >> (4 * nibble_slot(e))) & 0xF);
        v[e] = (e >> 1) & 1 ? (q - z_g8) * s_g8 : (q - z_g) * s_g;
      }
      put_fragment(tile, (kb - kb0) * 64 + w * 16, lane, v);
    }
  }
  store_dequant_tile(tile, tile_idx, kb0, N, K, out);
}

int blocks_for(size_t total) { return static_cast<int>((total + 255) / 256); }

}  // namespace

Status repack_int8_wo(const int8_t* natural, int N, int K, int8_t* packed, const Exec& ex) {
  const int nkb = ceil_div(K, 64);
  const size_t total = static_cast<size_t>(ceil_div(N, 16)) * nkb * 32;
  return launch("repack_int8_wo", repack_int8_kernel, dim3(blocks_for(total)), dim3(256), 0, ex, natural, N, K,
                nkb, packed);
}

Status repack_int4(const uint8_t* natural, const float* scales, const uint8_t* zeros, int N, int K, int group_size,
                   uint32_t* packed, bf16* packed_scales, bf16* packed_zeros, const Exec& ex) {
  if (K % 2 != 0) return invalid("repack_int4", "K must be even");
  const int nkb = ceil_div(K, 64);
  const size_t total = static_cast<size_t>(ceil_div(N, 16)) * nkb * 32;
  GRPST_TRY(launch("repack_int4", repack_int4_kernel, dim3(blocks_for(total)), dim3(256), 0, ex, natural, N, K,
                   nkb, packed));
  const int ngroups = ceil_div(K, group_size);
  const size_t gtotal = static_cast<size_t>(ceil_div(N, 16)) * ngroups * 16;
  GRPST_TRY(launch("repack_int4 scales", repack_groups_kernel, dim3(blocks_for(gtotal)), dim3(256), 0, ex, scales,
                   static_cast<const uint8_t*>(nullptr), N, ngroups, packed_scales));
  if (zeros)
    GRPST_TRY(launch("repack_int4 zeros", repack_groups_kernel, dim3(blocks_for(gtotal)), dim3(256), 0, ex,
                     static_cast<const float*>(nullptr), zeros, N, ngroups, packed_zeros));
  return ok_status();
}

Status dequant_weight(const Weight& w, bf16* out, const Exec& ex) {
  const int nkb = ceil_div(w.K, 64);
  if (ceil_div(w.N, 16) > 65535) return invalid("dequant_weight", "more than 65535 row tiles");
  const dim3 grid(ceil_div(nkb, kDequantKb), ceil_div(w.N, 16));
  if (w.format == WeightFormat::int8_wo)
    return launch("dequant_weight int8_wo", dequant_int8_kernel, grid, dim3(kDequantKb * 32), 0, ex,
                  reinterpret_cast<const int8_t*>(w.data), w.channel_scale, w.N, w.K, nkb, out);
  if (w.format == WeightFormat::int4_awq) {
    if (w.group_size < 16 || w.group_size % 16 != 0)
      return invalid("dequant_weight", "int4 group size must be a multiple of 16");
    return launch("dequant_weight int4_awq", dequant_int4_kernel, grid, dim3(kDequantKb * 32), 0, ex,
                  reinterpret_cast<const uint32_t*>(w.data), w.group_scale, w.group_zero, w.N, w.K, w.group_size,
                  nkb, out);
  }
  return invalid("dequant_weight", std::string("no dequantization for ") + weight_format_name(w.format));
}

Status weight_rows(const Weight& w, int n0, int rows, Weight* out) {
  if (n0 % 16 != 0 || n0 < 0 || rows <= 0 || n0 + rows > w.N) return invalid("weight_rows", "rows out of range or not tile-aligned");
  const size_t tiles = static_cast<size_t>(n0 / 16), nkb = static_cast<size_t>(ceil_div(w.K, 64));
  Weight s = w;
  s.N = rows;
  if (w.format == WeightFormat::int8_wo) {
    s.data = static_cast<const int8_t*>(w.data) + tiles * nkb * 32 * 32;  // a tile: nkb x 32 lanes x 32 bytes
    s.channel_scale = w.channel_scale + n0;
  } else if (w.format == WeightFormat::int4_awq) {
    const size_t ngroups = static_cast<size_t>(ceil_div(w.K, w.group_size));
    s.data = static_cast<const uint8_t*>(w.data) + tiles * nkb * 32 * 16;  // nkb x 32 lanes x 16 bytes
    s.group_scale = w.group_scale + tiles * ngroups * 16;
    if (w.group_zero) s.group_zero = w.group_zero + tiles * ngroups * 16;
  } else {
    return invalid("weight_rows", std::string("no row slices for ") + weight_format_name(w.format));
  }
  *out = s;
  return ok_status();
}

}  // namespace grpst::cuda
