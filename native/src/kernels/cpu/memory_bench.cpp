// A streaming read used to measure the machine's memory bandwidth (the decode roofline).
#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

float stream_read(const void* p, size_t bytes) {
  const float* f = static_cast<const float*>(p);
  const size_t n = bytes / sizeof(float);
  constexpr size_t step = 4 * kWidth;
  VF a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
  for (size_t i = 0; i + step <= n; i += step) {
    a0 = vadd(a0, vload(f + i));
    a1 = vadd(a1, vload(f + i + kWidth));
    a2 = vadd(a2, vload(f + i + 2 * kWidth));
    a3 = vadd(a3, vload(f + i + 3 * kWidth));
  }
  return vsum(vadd(vadd(a0, a1), vadd(a2, a3)));
}

}  // namespace grpst::cpu::GRPST_ISA
