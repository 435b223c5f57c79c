// int8_sq (SmoothQuant W8A8): int8 weights [out, in] with per-output-channel fp32 scales; each
// token's activations are quantized to int8 with its own absmax scale at run time, and the
// products are summed exactly in int32: y[m, n] = xs[m] * ws[n] * sum_k xq[m, k] * q[n, k].
#include <cstdint>

#include "grpst/linear.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  return quant::per_channel_int8(store, prefix, WeightFormat::INT8_SQ, out, in);
}

// The activations quantized per token: quant_linear_common.h's int8 operand of M rows.
using quant::i8_packed_at;
using quant::i8_packed_offset;
using quant::i8_scales_offset;

const void* prepare(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                    std::vector<uint8_t>& buf, ThreadPool& pool) {
  const int K = w.in_features;
  const QuantKernels& q = quant_kernels(k.level);
  const size_t packed = q.pack_i8 ? q.pack_i8_bytes(M, K) + 64 : 0;
  uint8_t* p = quant::scratch(buf, i8_packed_offset(M, K) + packed);
  int8_t* xq = reinterpret_cast<int8_t*>(p);
  float* xs = reinterpret_cast<float*>(p + i8_scales_offset(M, K));
  quant::rows_in_pieces(pool, M, [&](int m0, int m1) {
    q.quantize_rows_int8(x + int64_t(m0) * ldx, ldx, m1 - m0, K, xq + int64_t(m0) * K, xs + m0);
  });
  if (q.pack_i8) q.pack_i8(xq, K, M, K, const_cast<void*>(i8_packed_at(p, M, K)));
  return p;
}

void columns(const LinearWeight& w, const CpuKernels& k, const float*, int64_t, const void* prepared, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features, nb = 64;
  thread_local std::vector<int32_t> acc_buf;
  int32_t* acc = quant::scratch(acc_buf, size_t(M) * nb);
  const int8_t* xq = static_cast<const int8_t*>(prepared);
  const float* xs = reinterpret_cast<const float*>(static_cast<const uint8_t*>(prepared) + i8_scales_offset(M, K));
  const int8_t* base = static_cast<const int8_t*>(w.w);
  for (int n = n0; n < n1; n += nb) {
    const int cnt = std::min(nb, n1 - n);
    if (q.gemm_i8i8_packed) q.gemm_i8i8_packed(i8_packed_at(prepared, M, K), base + n * w.ldw, w.ldw, acc, nb, M, cnt, K);
    else q.gemm_i8i8(xq, K, base + n * w.ldw, w.ldw, acc, nb, M, cnt, K);
    for (int m = 0; m < M; m++)
      for (int j = 0; j < cnt; j++) y[m * ldy + n + j] = xs[m] * w.scales[n + j] * float(acc[m * nb + j]);
  }
}

int64_t bytes(const LinearWeight& w) { return int64_t(w.out_features) * w.in_features + int64_t(w.out_features) * 4; }

}  // namespace

extern const LinearFormatOps kLinearInt8Sq = {"int8_sq", load, columns, bytes, prepare, true};

}  // namespace grpst
