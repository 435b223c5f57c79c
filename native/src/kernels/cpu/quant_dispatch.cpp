// Picks the quantized-format kernel table for a CPU level, and the activation quantizers that
// run once per call (plain C++: they touch each activation once, the GEMMs dominate).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/quant_kernels.h"

namespace grpst {

namespace {

#define GRPST_QUANT_TABLE(ns)                                                                             \
  QuantKernels {                                                                                          \
    cpu::ns::decode_i8_rows, cpu::ns::decode_i4_rows, cpu::ns::decode_e4m3_rows, cpu::ns::gemm_f32w,     \
        cpu::ns::gemm_i8i8, cpu::ns::gemv_i8, cpu::ns::gemv_e4m3, cpu::ns::gemv_i4                        \
  }

const QuantKernels kAvx512 = GRPST_QUANT_TABLE(avx512);
const QuantKernels kAvx2 = GRPST_QUANT_TABLE(avx2);
const QuantKernels kScalar = GRPST_QUANT_TABLE(scalar);

/** e4m3 rounding of one value already divided by its scale: nearest even, saturating at +-448. */
float round_e4m3(float v) {
  const float a = std::min(std::fabs(v), 448.0f);
  float r;
  if (a < 0.015625f) {
    r = std::nearbyint(a * 512.0f) / 512.0f;  // subnormals: multiples of 2^-9
  } else {
    int e;
    std::frexp(a, &e);                           // a = f * 2^e, f in [0.5, 1)
    const float step = std::ldexp(1.0f, e - 4);  // 3 mantissa bits below the leading one
    r = std::nearbyint(a / step) * step;
  }
  return std::signbit(v) ? -r : r;
}

}  // namespace

const QuantKernels& quant_kernels(CpuLevel level) {
  switch (level) {
    case CpuLevel::Avx512:
      return kAvx512;
    case CpuLevel::Avx2:
      return kAvx2;
    default:
      return kScalar;
  }
}

void quantize_rows_int8(const float* x, int64_t ldx, int M, int K, int8_t* xq, float* xs) {
  for (int m = 0; m < M; m++) {
    const float* row = x + m * ldx;
    float amax = 0;
    for (int k = 0; k < K; k++) amax = std::max(amax, std::fabs(row[k]));
    const float scale = amax / 127.0f;
    xs[m] = scale;
    int8_t* out = xq + int64_t(m) * K;
    if (scale == 0) {
      std::fill(out, out + K, int8_t(0));
      continue;
    }
    const float inv = 1.0f / scale;
    for (int k = 0; k < K; k++) out[k] = int8_t(std::clamp(std::nearbyint(row[k] * inv), -127.0f, 127.0f));
  }
}

void round_rows_e4m3(const float* x, int64_t ldx, int M, int K, float scale, float* out) {
  const float inv = 1.0f / scale;
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++) out[int64_t(m) * K + k] = round_e4m3(x[m * ldx + k] * inv);
}

}  // namespace grpst
