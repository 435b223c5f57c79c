// A streaming read used to measure the machine's memory bandwidth (the decode roofline). The
// buffer is read as bf16 values widened into FMAs, 32 bytes per load: the access pattern of
// weight streaming, and on the Zen 4 development machine it draws more bandwidth than plain
// full-width vector loads do (21.7 vs 16.2 GB/s on one core).
#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

float stream_read(const void* p, size_t bytes) {
  const uint16_t* h = static_cast<const uint16_t*>(p);
  const size_t n = bytes / sizeof(uint16_t);
  constexpr size_t step = 4 * kWidth;
  const VF x = vset1(0.5f);
  VF a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
  for (size_t i = 0; i + step <= n; i += step) {
    a0 = vfma(x, vload_bf16(h + i), a0);
    a1 = vfma(x, vload_bf16(h + i + kWidth), a1);
    a2 = vfma(x, vload_bf16(h + i + 2 * kWidth), a2);
    a3 = vfma(x, vload_bf16(h + i + 3 * kWidth), a3);
  }
  return vsum(vadd(vadd(a0, a1), vadd(a2, a3)));
}

}  // namespace grpst::cpu::GRPST_ISA
