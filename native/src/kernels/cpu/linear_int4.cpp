// int4 groups (int4_awq): nibbles [out, in / 2] (element 2j low, 2j + 1 high), fp32 scales and
// uint8 zero points [out, in / group]; w = (q - zero) * scale. Used for AWQ engines built by
// grpst and for AutoAWQ checkpoints converted to engines. Where the level has them (AVX-512),
// groups of whole 128- or 64-weight units are multiplied in the packed nibbles' order, x permuted
// to match (gemm_int4_nibbles.h).
#include <cstdint>
#include <cstring>
#include <vector>

#include "grpst/linear.h"
#include "kernels/cpu/gemm_int4_nibbles.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  const TensorDesc& s = store.desc(prefix + ".scales");
  if (s.shape.size() != 2 || s.shape[1] <= 0 || in % s.shape[1] != 0)
    throw Error("tensor " + prefix + ".scales does not divide in_features " + std::to_string(in) + " into groups");
  const int groups = int(s.shape[1]), group = in / groups;
  if (group % 2 != 0) throw Error(prefix + ": int4 group size " + std::to_string(group) + " must be even");
  LinearWeight w;
  w.fmt = WeightFormat::INT4;
  w.out_features = out;
  w.in_features = in;
  w.group_size = group;
  w.w = quant::tensor(store, prefix + ".qweight", DType::U8, {out, in / 2});
  w.ldw = in / 2;
  w.scales = static_cast<const float*>(quant::tensor(store, prefix + ".scales", DType::F32, {out, groups}));
  w.zeros = quant::tensor(store, prefix + ".zeros", DType::U8, {out, groups});
  return w;
}

// The unit in which the level multiplies this weight in its nibbles' order (0: the natural order).
int nibble_unit(const LinearWeight& w, const QuantKernels& q) {
  return q.permute_i4_x != nullptr ? cpu::i4_nibble_unit(w.group_size) : 0;
}

// The activations permuted into the nibbles' order, once per call (nullptr: the natural order):
// a 64-byte header holding the unit, then x' (64-byte aligned, so no vector load straddles two
// cache lines).
const void* prepare(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                    std::vector<uint8_t>& buf, ThreadPool& pool) {
  const QuantKernels& q = quant_kernels(k.level);
  const int unit = nibble_unit(w, q);
  if (unit == 0) return nullptr;
  const int K = w.in_features;
  const size_t bytes = 64 + size_t(M) * K * sizeof(float) + 64;
  if (buf.size() < bytes) buf.resize(bytes);
  uint8_t* head = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t(63));
  std::memcpy(head, &unit, sizeof unit);
  float* xp = reinterpret_cast<float*>(head + 64);
  quant::rows_in_pieces(pool, M, [&](int m0, int m1) {
    q.permute_i4_x(x + int64_t(m0) * ldx, ldx, m1 - m0, K, unit, xp + int64_t(m0) * K);
  });
  return head;
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void* prepared, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features, nb = quant::block_rows(K), groups = K / w.group_size;
  // Every path of a weight in one order, whatever else shares the call: an operand prepared in
  // another unit (projections of one input with different group sizes) is not this weight's, so
  // the task permutes x itself.
  const int unit = nibble_unit(w, q);
  const bool nibbles = unit != 0;
  if (nibbles) {
    int prepared_unit = 0;
    if (prepared) std::memcpy(&prepared_unit, prepared, sizeof prepared_unit);
    if (prepared_unit == unit) {
      x = reinterpret_cast<const float*>(static_cast<const uint8_t*>(prepared) + 64);
    } else {
      thread_local std::vector<float> own_buf;
      float* own = quant::scratch(own_buf, size_t(M) * K);
      q.permute_i4_x(x, ldx, M, K, unit, own);
      x = own;
    }
    ldx = K;
  }
  thread_local std::vector<float> rows_buf;
  float* rows = quant::scratch(rows_buf, size_t(nb) * K);
  const uint8_t* base = static_cast<const uint8_t*>(w.w);
  const uint8_t* zeros = static_cast<const uint8_t*>(w.zeros);
  const auto gemv = nibbles ? q.gemv_i4_nibbles : q.gemv_i4;
  const auto decode = nibbles ? q.decode_i4_rows_nibbles : q.decode_i4_rows;
  for (int n = n0; n < n1; n += nb) {
    const int cnt = std::min(nb, n1 - n);
    // decode: widened in registers, not through an fp32 block (where the groups allow it)
    if (M <= kQuantGemvMaxRows && gemv(x, ldx, base + n * w.ldw, w.ldw, w.scales + int64_t(n) * groups,
                                       zeros + int64_t(n) * groups, groups, w.group_size, y + n, ldy, M, cnt))
      continue;
    decode(base + n * w.ldw, w.ldw, w.scales + int64_t(n) * groups, zeros + int64_t(n) * groups, groups, w.group_size,
           cnt, K, rows);
    q.gemm_f32w(x, ldx, rows, K, y + n, ldy, M, cnt, K);
  }
}

int64_t bytes(const LinearWeight& w) {
  const int64_t groups = w.in_features / w.group_size;
  return int64_t(w.out_features) * (w.in_features / 2 + groups * 5);
}

}  // namespace

extern const LinearFormatOps kLinearInt4 = {"int4", load, columns, bytes, prepare, true};

}  // namespace grpst
