// What kernel_tests.cpp's self-test shares with its quantized-format part (kernel_tests_quant.cpp).
#pragma once
#include <random>
#include <vector>

#include "grpst/common.h"
#include "grpst/cpu_kernels.h"

namespace grpst::addon {

struct Rand {
  std::mt19937 gen{1234};
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen); }
  std::vector<float> floats(size_t n, float lo = -1, float hi = 1) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform(lo, hi);
    return v;
  }
  std::vector<uint16_t> bf16(size_t n, float scale = 1) {
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = f32_to_bf16(uniform(-scale, scale));
    return v;
  }
};

// The quantized formats' checks (kernel_tests_quant.cpp), each against the level's own other path
// or the scalar level.
bool test_quant_decode_rows(const CpuKernels& k, Rand& r);
bool test_activation_quantizers(const CpuKernels& k, Rand& r);
bool test_int8_sq_exact(const CpuKernels& k, const CpuKernels& ref, Rand& r);
double test_int8wo_vs_scalar(const CpuKernels& k, const CpuKernels& ref, Rand& r);
double test_fp8_vs_scalar(const CpuKernels& k, const CpuKernels& ref, Rand& r);
double test_int4_vs_scalar(const CpuKernels& k, const CpuKernels& ref, Rand& r);
bool test_int4_shared_operands(const CpuKernels& k, Rand& r);

}  // namespace grpst::addon
