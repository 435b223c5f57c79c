// bf16 weights, used in place from the mapped checkpoint (or converted once from fp16/fp32).
#include <cstdint>
#include <vector>

#include "grpst/linear.h"
#include "kernels/cpu/quant_linear_common.h"

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

// Levels whose GEMM takes its activations packed (amx) pack them once per call, not once per
// column range; the others read x as it is.
const void* prepare(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, int M,
                    std::vector<uint8_t>& buf, ThreadPool&) {
  return quant::pack_bf16_operand(k, x, ldx, M, w.in_features, buf);
}

void columns(const LinearWeight& w, const CpuKernels& k, const float* x, int64_t ldx, const void* prepared, float* y,
             int64_t ldy, int M, int n0, int n1) {
  const uint16_t* wb = static_cast<const uint16_t*>(w.w);
  if (prepared) k.gemm_bf16_packed(prepared, wb, w.ldw, y, ldy, M, n0, n1, w.in_features);
  else k.gemm_bf16(x, ldx, wb, w.ldw, y, ldy, M, n0, n1, w.in_features);
}

int64_t bytes(const LinearWeight& w) { return int64_t(w.out_features) * w.in_features * 2; }

}  // namespace

extern const LinearFormatOps kLinearBf16 = {"bf16", load, columns, bytes, prepare, true};

}  // namespace grpst
