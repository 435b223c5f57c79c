// int8_wo: int8 weights [out, in] with one fp32 scale per output channel; fp32 activations.
// y[m, n] = scale[n] * sum_k x[m, k] * q[n, k].
//
// Levels with int8 products on AMX tiles (amx) multiply in int8 too, without rounding x the way
// int8_sq does: each row of x is written as three int8 parts with scales of their own, x ~ s0 a0
// + s1 a1 + s2 a2 (a0 = x quantized per row, a1 the remainder quantized, a2 the next remainder),
// which leaves at most amax(x) / (2 * 127 * 254^2) of x, about 2^-24 of the row's largest value:
// fp32's own precision. Each part's products are exact int32 sums (int8_sq's AMX-INT8 tiles), so
// a row's y depends on neither the rows beside it nor the tile that made it, and a prompt's rows
// ride the tiles at int8's rate (3 parts: a third of it). Other levels keep fp32 products.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "grpst/linear.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

constexpr int kParts = 3;

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  return quant::per_channel_int8(store, prefix, WeightFormat::INT8_WO, out, in);
}

// The split activations: quant_linear_common.h's int8 operand of kParts * M rows, part p of row
// m being row p * M + m.
using quant::i8_packed_at;
using quant::i8_packed_offset;
using quant::i8_scales_offset;

// x's rows [m0, m1) as kParts int8 parts (quant::split_int8_parts), a row at a time, so the
// remainder takes K floats of scratch.
void split_rows(const QuantKernels& q, const float* x, int64_t ldx, int M, int K, int m0, int m1, int8_t* xq,
                float* xs) {
  thread_local std::vector<float> rest_buf;
  float* rest = quant::scratch(rest_buf, size_t(K));
  for (int m = m0; m < m1; m++) {
    std::copy_n(x + int64_t(m) * ldx, K, rest);
    quant::split_int8_parts(q, rest, K, kParts, xq + int64_t(m) * K, int64_t(M) * K, xs + m, M);
  }
}

const void* prepare(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                    std::vector<uint8_t>& buf, ThreadPool& pool) {
  const QuantKernels& q = quant_kernels(k.level);
  // fp32 products elsewhere (columns' second path): AVX-512's VNNI tiles with three parts were
  // measured slower than its fp32 FMAs (prefill 0.95x, batch 8 0.83x)
  if (!q.gemm_i8i8_packed) return nullptr;
  const int K = w.in_features;
  uint8_t* p = quant::scratch(buf, i8_packed_offset(kParts * M, K) + q.pack_i8_bytes(kParts * M, K) + 64);
  int8_t* xq = reinterpret_cast<int8_t*>(p);
  float* xs = reinterpret_cast<float*>(p + i8_scales_offset(kParts * M, K));
  quant::rows_in_pieces(pool, M, [&](int m0, int m1) { split_rows(q, x, ldx, M, K, m0, m1, xq, xs); });
  q.pack_i8(xq, K, kParts * M, K, const_cast<void*>(i8_packed_at(p, kParts * M, K)));
  return p;
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void* prepared, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features;
  const int8_t* base = static_cast<const int8_t*>(w.w);
  if (prepared) {
    const int nb = 64;
    thread_local std::vector<int32_t> acc_buf;
    int32_t* acc = quant::scratch(acc_buf, size_t(kParts) * M * nb);
    const float* xs = reinterpret_cast<const float*>(static_cast<const uint8_t*>(prepared) + i8_scales_offset(kParts * M, K));
    for (int n = n0; n < n1; n += nb) {
      const int cnt = std::min(nb, n1 - n);
      q.gemm_i8i8_packed(i8_packed_at(prepared, kParts * M, K), base + n * w.ldw, w.ldw, acc, nb, kParts * M, cnt, K);
      for (int m = 0; m < M; m++)
        for (int j = 0; j < cnt; j++) {
          // the parts largest first, in double: one rounding to fp32
          double v = 0;
          for (int p = 0; p < kParts; p++) v += double(xs[p * M + m]) * double(acc[(int64_t(p) * M + m) * nb + j]);
          y[m * ldy + n + j] = float(v) * w.scales[n + j];
        }
    }
    return;
  }
  const int nb = quant::block_rows(K);
  thread_local std::vector<float> rows_buf;
  float* rows = quant::scratch(rows_buf, size_t(nb) * K);
  for (int n = n0; n < n1; n += nb) {
    const int cnt = std::min(nb, n1 - n);
    if (M <= kQuantGemvMaxRows) {  // decode: widened in registers, not through an fp32 block
      q.gemv_i8(x, ldx, base + n * w.ldw, w.ldw, y + n, ldy, M, cnt, K);
    } else {
      q.decode_i8_rows(base + n * w.ldw, w.ldw, cnt, K, rows);
      q.gemm_f32w(x, ldx, rows, K, y + n, ldy, M, cnt, K);
    }
    for (int m = 0; m < M; m++)
      for (int j = 0; j < cnt; j++) y[m * ldy + n + j] *= w.scales[n + j];
  }
}

int64_t bytes(const LinearWeight& w) { return int64_t(w.out_features) * w.in_features + int64_t(w.out_features) * 4; }

}  // namespace

extern const LinearFormatOps kLinearInt8Wo = {"int8_wo", load, columns, bytes, prepare, true};

}  // namespace grpst
