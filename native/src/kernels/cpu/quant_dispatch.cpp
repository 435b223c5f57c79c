// Picks the quantized-format kernel table for a CPU level.
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/gemm_fp8_bf16.h"
#include "kernels/cpu/gemm_int4_nibbles.h"
#include "kernels/cpu/quant_kernels.h"

namespace grpst {

namespace {

#define GRPST_QUANT_TABLE(ns)                                                                             \
  QuantKernels {                                                                                          \
    cpu::ns::decode_i8_rows, cpu::ns::decode_i4_rows, cpu::ns::decode_e4m3_rows, cpu::ns::gemm_f32w,     \
        cpu::ns::gemm_i8i8, cpu::ns::gemv_i8, cpu::ns::gemv_e4m3, cpu::ns::gemv_i4,                       \
        cpu::ns::quantize_rows_int8, cpu::ns::round_rows_e4m3, nullptr, nullptr, nullptr, nullptr,       \
        nullptr, nullptr, nullptr, nullptr, 0, nullptr, nullptr, nullptr                                  \
  }

// AVX-512's own table, with fp8's bf16 dot products (the level needs AVX-512 BF16) and int4 in
// its nibbles' order.
const QuantKernels kAvx512 = [] {
  QuantKernels q = GRPST_QUANT_TABLE(avx512);
  q.gemm_e4m3_bf16 = cpu::avx512::gemm_e4m3_bf16;
  q.permute_i4_x = cpu::avx512::permute_i4_x;
  q.gemv_i4_nibbles = cpu::avx512::gemv_i4_nibbles;
  q.decode_i4_rows_nibbles = cpu::avx512::decode_i4_rows_nibbles;
  return q;
}();
const QuantKernels kAvx2 = GRPST_QUANT_TABLE(avx2);
const QuantKernels kScalar = GRPST_QUANT_TABLE(scalar);
// AVX-512's, with int8_sq's products on AMX-INT8 tiles, and int8_wo's and int4's against x's
// int8 parts there.
const QuantKernels kAmx = [] {
  QuantKernels q = kAvx512;
  q.pack_i8_bytes = cpu::amx::packed_i8_bytes;
  q.pack_i8 = cpu::amx::pack_i8;
  q.gemm_i8i8_packed = cpu::amx::gemm_i8_packed;
  q.i4_tiles_fit = cpu::amx::i4_group_fits;
  q.i4_register_rows = cpu::amx::kI4VnniRows;
  q.i4_part_rows = cpu::amx::i4_part_rows;
  q.i4_part_row = cpu::amx::i4_part_row;
  q.gemm_i4_tiles = cpu::amx::gemm_i4;
  return q;
}();

}  // namespace

const QuantKernels& quant_kernels(CpuLevel level) {
  switch (level) {
    case CpuLevel::Amx:  // (int8_wo's products ride the int8 tiles too: linear_int8_wo.cpp)
      return cpu::amx::available_int8() ? kAmx : kAvx512;
    case CpuLevel::Avx512:
      return kAvx512;
    case CpuLevel::Avx2:
      return kAvx2;
    default:
      return kScalar;
  }
}

}  // namespace grpst
