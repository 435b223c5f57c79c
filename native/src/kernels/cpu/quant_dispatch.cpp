// Picks the quantized-format kernel table for a CPU level.
#include "kernels/cpu/quant_kernels.h"

namespace grpst {

namespace {

#define GRPST_QUANT_TABLE(ns)                                                                             \
  QuantKernels {                                                                                          \
    cpu::ns::decode_i8_rows, cpu::ns::decode_i4_rows, cpu::ns::decode_e4m3_rows, cpu::ns::gemm_f32w,     \
        cpu::ns::gemm_i8i8, cpu::ns::gemv_i8, cpu::ns::gemv_e4m3, cpu::ns::gemv_i4,                       \
        cpu::ns::quantize_rows_int8, cpu::ns::round_rows_e4m3                                            \
  }

const QuantKernels kAvx512 = GRPST_QUANT_TABLE(avx512);
const QuantKernels kAvx2 = GRPST_QUANT_TABLE(avx2);
const QuantKernels kScalar = GRPST_QUANT_TABLE(scalar);

}  // namespace

const QuantKernels& quant_kernels(CpuLevel level) {
  switch (level) {
    case CpuLevel::Amx:  // (AMX multiplies bf16 only: the quantized formats keep AVX-512's kernels)
    case CpuLevel::Avx512:
      return kAvx512;
    case CpuLevel::Avx2:
      return kAvx2;
    default:
      return kScalar;
  }
}

}  // namespace grpst
