// Tensor-core building blocks (sm_80+ mma.sync / ldmatrix / cp.async) shared by the attention
// prefill kernel and the skinny quantized GEMM. Fragment layouts are PTX's m16n8k16 / m16n8k32:
// lane = 4 * g + t; A rows g and g + 8; B column g; C (row g, cols 2t, 2t+1) and row g + 8.
#pragma once
#include <cstdint>

#include "device_utils.cuh"

namespace grpst::cuda {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Nibbles i and i + 4 of a fragment-packed int4 word (repack_int4), given the word shifted right
// by 4i, as the bf16x2 (128 + q0, 128 + q1): & 0x000F000F | 0x43004300 in one lop3 (0xEA is
// a & b | c). Written in C++ it compiles to an AND and an OR: LOP3 takes one immediate operand.
__device__ __forceinline__ uint32_t int4_pair_to_bf16x2(uint32_t shifted) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(shifted), "r"(0x000F000Fu), "r"(0x43004300u));
  return r;
}

// One k16 step of a fragment-packed int4 tile: its 32-bit word -> the bf16 A fragment
// bf16((q - z) * s), rows g (s, z) and g + 8 (s8, z8); z is 128 + the zero point, as stored.
__device__ __forceinline__ void int4_word_to_frag(uint32_t word, __nv_bfloat162 s, __nv_bfloat162 s8,
                                                  __nv_bfloat162 z, __nv_bfloat162 z8, uint32_t (&a)[4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t v = int4_pair_to_bf16x2(word >> (4 * i));
    __nv_bfloat162 q = *reinterpret_cast<const __nv_bfloat162*>(&v);
    q = __hmul2(__hsub2(q, (i & 1) ? z8 : z), (i & 1) ? s8 : s);
    a[i] = *reinterpret_cast<uint32_t*>(&q);
  }
}

// 16-byte async copy global -> shared; pred false writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  const int bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(bytes));
}
// int8_wo fragment-packed weights (repack_int8_wo): two words of signed bytes -> the bf16 A
// fragment of one m16n8k16 step, exactly. Each byte q is flipped to q + 128 and placed as the low
// mantissa byte of 2^23, so the float is 2^23 + 128 + q and subtracting that offset leaves q.
__device__ __forceinline__ float i8_byte_to_f32(uint32_t xored, int i) {
  return __uint_as_float(__byte_perm(xored, 0x4B000000u, 0x7440u + i)) - 8388736.f;
}
__device__ __forceinline__ void int8_words_to_bf16_frag(uint32_t w0, uint32_t w1, uint32_t (&a)[4]) {
  const uint32_t x0 = w0 ^ 0x80808080u, x1 = w1 ^ 0x80808080u;
  a[0] = pack_bf16x2(i8_byte_to_f32(x0, 0), i8_byte_to_f32(x0, 1));
  a[1] = pack_bf16x2(i8_byte_to_f32(x0, 2), i8_byte_to_f32(x0, 3));
  a[2] = pack_bf16x2(i8_byte_to_f32(x1, 0), i8_byte_to_f32(x1, 1));
  a[3] = pack_bf16x2(i8_byte_to_f32(x1, 2), i8_byte_to_f32(x1, 3));
}

// 8 bytes, through L1; pred false writes zeros and reads nothing.
__device__ __forceinline__ void cp_async8(void* smem, const void* gmem, bool pred) {
  const int bytes = pred ? 8 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(bytes));
}
// 4 bytes, through L1 (cp.async copies of under 16 bytes must use .ca).
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_addr(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Every cp.async of this thread, committed or not, has landed.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c += a . b, bf16 inputs, fp32 accumulators (m16n8k16).
__device__ __forceinline__ void mma_bf16(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// Two adjacent 8-column tiles from one ldmatrix.x4 of B: c0 += a . b[0:2], c1 += a . b[2:4].
__device__ __forceinline__ void mma_bf16_x2(float* c0, float* c1, const uint32_t* a, const uint32_t (&b)[4]) {
  mma_bf16(c0, a, b[0], b[1]);
  mma_bf16(c1, a, b[2], b[3]);
}
// c += a . b, e4m3 inputs, fp32 accumulators (m16n8k32).
__device__ __forceinline__ void mma_e4m3(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
// c += a . b, s8 inputs, s32 accumulators (m16n8k32).
__device__ __forceinline__ void mma_s8(int* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Hint: bring the 128-byte line at p into L2 (no register, no wait).
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

// Streaming 16-byte load that skips L1 (weights are read once per step).
__device__ __forceinline__ uint4 ldg_stream(const void* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}
// The same for 8 bytes (a chunk of 8 int8 weights).
__device__ __forceinline__ uint2 ldg_stream8(const void* p) {
  uint2 v;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];\n" : "=r"(v.x), "=r"(v.y) : "l"(p));
  return v;
}
__device__ __forceinline__ uint32_t ldg_stream32(const void* p) {
  uint32_t v;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}

}  // namespace grpst::cuda
