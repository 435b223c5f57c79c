// int8_wo: int8 weights [out, in] with one fp32 scale per output channel; fp32 activations.
// y[m, n] = scale[n] * sum_k x[m, k] * q[n, k].
#include "grpst/linear.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  return quant::per_channel_int8(store, prefix, WeightFormat::INT8_WO, out, in);
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void*, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features, nb = quant::block_rows(K);
  thread_local std::vector<float> rows_buf;
  float* rows = quant::scratch(rows_buf, size_t(nb) * K);
  const int8_t* base = static_cast<const int8_t*>(w.w);
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

extern const LinearFormatOps kLinearInt8Wo = {"int8_wo", load, columns, bytes, nullptr, false};

}  // namespace grpst
