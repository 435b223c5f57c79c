// int8_sq (SmoothQuant W8A8): int8 weights [out, in] with per-output-channel fp32 scales; each
// token's activations are quantized to int8 with its own absmax scale at run time, and the
// products are summed exactly in int32: y[m, n] = xs[m] * ws[n] * sum_k xq[m, k] * q[n, k].
#include "grpst/linear.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  return quant::per_channel_int8(store, prefix, WeightFormat::INT8_SQ, out, in);
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, float* y, int64_t ldy, int M,
             int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features, nb = 64;
  thread_local std::vector<int8_t> xq_buf;
  thread_local std::vector<float> xs_buf;
  thread_local std::vector<int32_t> acc_buf;
  int8_t* xq = quant::scratch(xq_buf, size_t(M) * K);
  float* xs = quant::scratch(xs_buf, size_t(M));
  int32_t* acc = quant::scratch(acc_buf, size_t(M) * nb);
  quantize_rows_int8(x, ldx, M, K, xq, xs);
  const int8_t* base = static_cast<const int8_t*>(w.w);
  for (int n = n0; n < n1; n += nb) {
    const int cnt = std::min(nb, n1 - n);
    q.gemm_i8i8(xq, K, base + n * w.ldw, w.ldw, acc, nb, M, cnt, K);
    for (int m = 0; m < M; m++)
      for (int j = 0; j < cnt; j++) y[m * ldy + n + j] = xs[m] * w.scales[n + j] * float(acc[m * nb + j]);
  }
}

int64_t bytes(const LinearWeight& w) { return int64_t(w.out_features) * w.in_features + int64_t(w.out_features) * 4; }

}  // namespace

extern const LinearFormatOps kLinearInt8Sq = {"int8_sq", load, columns, bytes};

}  // namespace grpst
