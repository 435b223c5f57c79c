// bf16 weights, used in place from the mapped checkpoint (or converted once from fp16/fp32).
#include "grpst/linear.h"

namespace grpst {

namespace {

LinearWeight load(TensorStore& store, const std::string& prefix, int out, int in) {
  LinearWeight w;
  w.fmt = WeightFormat::BF16;
  w.out_features = out;
  w.in_features = in;
  w.w = store.bf16(prefix + ".weight", {out, in});  // [out, in]
  w.ldw = in;
  return w;
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void*, float* y,
             int64_t ldy, int M, int n0, int n1) {
  k.gemm_bf16(x, ldx, static_cast<const uint16_t*>(w.w), w.ldw, y, ldy, M, n0, n1, w.in_features);
}

int64_t bytes(const LinearWeight& w) { return int64_t(w.out_features) * w.in_features * 2; }

}  // namespace

extern const LinearFormatOps kLinearBf16 = {"bf16", load, columns, bytes, nullptr};

}  // namespace grpst
