// Helpers shared by the linear_<format>.cpp files of the quantized formats: typed tensor lookups
// that name the tensor and the expected layout on a mismatch, and per-thread scratch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "grpst/common.h"
#include "grpst/linear.h"
#include "grpst/tensor_store.h"
#include "kernels/cpu/quant_kernels.h"

namespace grpst::quant {

/** The raw bytes of `name` after checking its dtype and shape. */
inline const void* tensor(TensorStore& store, const std::string& name, DType dtype, std::vector<int64_t> shape) {
  const TensorDesc& d = store.desc(name);
  if (d.dtype != dtype || d.shape != shape) {
    std::string want, got;
    for (auto s : shape) want += (want.empty() ? "" : ",") + std::to_string(s);
    for (auto s : d.shape) got += (got.empty() ? "" : ",") + std::to_string(s);
    throw Error("tensor " + name + " is " + dtype_name(d.dtype) + " [" + got + "], expected " + dtype_name(dtype) + " [" +
                want + "] (engine folder damaged or built by another grpst?)");
  }
  return store.raw(name);
}

/** int8 weights [out, in] (`.qweight`) with one fp32 scale per output channel (`.scales`): the
 * layout int8_wo and int8_sq share; they differ only in what they do with the activations. */
inline LinearWeight per_channel_int8(TensorStore& store, const std::string& prefix, WeightFormat fmt, int out, int in) {
  LinearWeight w;
  w.fmt = fmt;
  w.out_features = out;
  w.in_features = in;
  w.w = tensor(store, prefix + ".qweight", DType::I8, {out, in});
  w.ldw = in;
  w.scales = static_cast<const float*>(tensor(store, prefix + ".scales", DType::F32, {out}));
  return w;
}

/** Weight rows decoded per block: about 256 KiB of fp32, a multiple of 4 rows. */
inline int block_rows(int K) { return std::max(4, std::min(64, (65536 / std::max(K, 1)) / 4 * 4)); }

/**
 * For levels whose bf16 GEMM takes packed activations (amx): x packed into `buf` (64-byte
 * aligned), or nullptr for the other levels. bf16 linears and the weight-only formats whose
 * weights are exact in bf16 (int8_wo, fp8) multiply through it at every row count.
 */
inline const void* pack_bf16_operand(const CpuKernels& k, const float* x, int64_t ldx, int M, int K,
                                     std::vector<uint8_t>& buf) {
  if (!k.pack_bf16) return nullptr;
  const size_t bytes = k.pack_bf16_bytes(M, K) + 64;
  if (buf.size() < bytes) buf.resize(bytes);
  void* out = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  k.pack_bf16(x, ldx, M, K, out);
  return out;
}

/**
 * f(m0, m1) over rows [0, M) of an activation operand, in one piece per thread of `pool` from
 * kPrepareSplitRows rows (prefill: quantizing 512 x 3,072 activations serially cost int8_sq's and
 * fp8's down_proj about a sixth at two threads), else in one piece on the calling thread. The
 * pieces' rows are independent, so the operand's bits do not depend on the split.
 */
constexpr int kPrepareSplitRows = 64;
template <class F>
void rows_in_pieces(ThreadPool& pool, int M, F&& f) {
  if (M < kPrepareSplitRows || pool.size() < 2) return f(0, M);
  pool.on_all([&](int part, int parts) {
    const int m0 = int(int64_t(M) * part / parts), m1 = int(int64_t(M) * (part + 1) / parts);
    if (m0 < m1) f(m0, m1);
  });
}

/**
 * The int8 activation operand of int8_sq and int8_wo's split: int8 [rows, K], then (at a 64-byte
 * boundary) fp32 scales [rows], then, for levels that multiply packed activations (amx), them
 * packed at the next 64-byte address. Offsets from the operand's start.
 */
inline size_t i8_scales_offset(int rows, int K) { return (size_t(rows) * K + 63) / 64 * 64; }
inline size_t i8_packed_offset(int rows, int K) {
  return i8_scales_offset(rows, K) + (size_t(rows) * sizeof(float) + 63) / 64 * 64;
}
inline const void* i8_packed_at(const void* operand, int rows, int K) {
  const uintptr_t p = reinterpret_cast<uintptr_t>(operand) + i8_packed_offset(rows, K);
  return reinterpret_cast<const void*>((p + 63) & ~uintptr_t(63));
}

/**
 * One row of x (K floats in `rest`, overwritten) as `parts` int8 parts with scales of their own,
 * x ~ s0 a0 + s1 a1 + ...: each part quantizes per row what the parts before it left, so three
 * leave at most amax(x) / (2 * 127 * 254^2), about 2^-24 of the row's largest value (int8_wo's
 * and int4's activations on the amx level). Part p goes to a + p * a_stride, its scale to
 * s[p * s_stride].
 */
inline void split_int8_parts(const QuantKernels& q, float* rest, int K, int parts, int8_t* a, int64_t a_stride,
                             float* s, int64_t s_stride) {
  for (int p = 0; p < parts; p++) {
    int8_t* ap = a + p * a_stride;
    float* sp = s + p * s_stride;
    q.quantize_rows_int8(rest, K, 1, K, ap, sp);
    if (p + 1 < parts)
      for (int k = 0; k < K; k++) rest[k] -= *sp * float(ap[k]);
  }
}

/** Per-thread scratch that grows to the largest request and stays. */
template <typename T>
T* scratch(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace grpst::quant
