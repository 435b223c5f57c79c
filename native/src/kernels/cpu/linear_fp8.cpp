// fp8: e4m3 weights [out, in] with one fp32 weight scale, activations rounded to e4m3 with one
// static (calibrated) input scale: y = (e4m3(x / input_scale) . w) * input_scale * weight_scale.
// The CPU has no fp8 arithmetic: both operands are exact in fp32, so the products are the ones an
// FP8 tensor core forms; only the accumulation order differs.
#include <cstring>

#include "grpst/linear.h"
#include "kernels/cpu/gemm_fp8_bf16.h"
#include "kernels/cpu/quant_kernels.h"
#include "kernels/cpu/quant_linear_common.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  LinearWeight w;
  w.fmt = WeightFormat::FP8;
  w.out_features = out;
  w.in_features = in;
  w.w = quant::tensor(store, prefix + ".weight", DType::F8_E4M3, {out, in});
  w.ldw = in;
  w.scales = static_cast<const float*>(quant::tensor(store, prefix + ".weight_scale", DType::F32, {1}));
  w.input_scale = *static_cast<const float*>(quant::tensor(store, prefix + ".input_scale", DType::F32, {1}));
  if (!(w.input_scale > 0) || !(w.scales[0] > 0)) throw Error(prefix + ": fp8 scales must be positive");
  return w;
}

// The activations rounded to e4m3 (and divided by input_scale): fp32 [M, in]; where the level
// multiplies in bf16, then as bf16 bits [M, in] (exact: e4m3 values) after them, in the order
// gemm_e4m3_bf16 widens the weights in (e4m3_bf16_pair_slot).
const void* prepare(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                    std::vector<uint8_t>& buf, ThreadPool& pool) {
  const int K = w.in_features;
  const QuantKernels& q = quant_kernels(k.level);
  const size_t floats = size_t(M) * K;
  uint8_t* p = quant::scratch(buf, floats * sizeof(float) + (q.gemm_e4m3_bf16 ? floats * sizeof(uint16_t) : 0));
  float* xr = reinterpret_cast<float*>(p);
  uint16_t* xb = q.gemm_e4m3_bf16 ? reinterpret_cast<uint16_t*>(p + floats * sizeof(float)) : nullptr;
  quant::rows_in_pieces(pool, M, [&](int m0, int m1) {
    q.round_rows_e4m3(x + int64_t(m0) * ldx, ldx, m1 - m0, K, w.input_scale, xr + size_t(m0) * K);
    if (!xb) return;
    for (int m = m0; m < m1; m++)
      for (int i = 0; i < K; i++) {
        uint32_t bits;
        std::memcpy(&bits, xr + size_t(m) * K + i, 4);
        // (e4m3 values fit bf16: the low half is zero)
        xb[size_t(m) * K + cpu::e4m3_bf16_pair_slot(i, K)] = uint16_t(bits >> 16);
      }
  });
  return p;
}

void columns(const LinearWeight& w, const CpuKernels& k, const float*, int64_t, const void* prepared, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const QuantKernels& q = quant_kernels(k.level);
  const int K = w.in_features, nb = quant::block_rows(K);
  const float out_scale = w.input_scale * w.scales[0];
  const uint8_t* base = static_cast<const uint8_t*>(w.w);
  const float* xr = static_cast<const float*>(prepared);
  const uint16_t* xb = reinterpret_cast<const uint16_t*>(xr + size_t(M) * K);  // (where prepare made it)
  thread_local std::vector<float> rows_buf;
  for (int n = n0; n < n1; n += nb) {
    const int cnt = std::min(nb, n1 - n);
    if (q.gemm_e4m3_bf16) {  // bf16 dot products: every row count, one path
      q.gemm_e4m3_bf16(xb, K, base + n * w.ldw, w.ldw, y + n, ldy, M, cnt, K);
    } else if (M <= kQuantGemvMaxRows) {  // decode: widened in registers, not through an fp32 block
      q.gemv_e4m3(xr, K, base + n * w.ldw, w.ldw, y + n, ldy, M, cnt, K);
    } else {
      float* rows = quant::scratch(rows_buf, size_t(nb) * K);
      q.decode_e4m3_rows(base + n * w.ldw, w.ldw, cnt, K, rows);
      q.gemm_f32w(xr, K, rows, K, y + n, ldy, M, cnt, K);
    }
    for (int m = 0; m < M; m++)
      for (int j = 0; j < cnt; j++) y[m * ldy + n + j] *= out_scale;
  }
}

int64_t bytes(const LinearWeight& w) { return int64_t(w.out_features) * w.in_features + 8; }

}  // namespace

extern const LinearFormatOps kLinearFp8 = {"fp8", load, columns, bytes, prepare, false};

}  // namespace grpst
