// Picks the kernel table for this CPU at run time.
#include <string>

#include "grpst/common.h"
#include "grpst/cpu_kernels.h"
#include "kernels/cpu/gemm_amx.h"
#include "kernels/cpu/isa_kernels.h"

namespace grpst {

namespace {

#define GRPST_KERNEL_TABLE(ns, lvl, label)                                                         \
  CpuKernels {                                                                                       \
    lvl, label, cpu::ns::gemm_bf16, cpu::ns::rmsnorm, cpu::ns::attention, cpu::ns::silu_mul, cpu::ns::add, \
        cpu::ns::rank_update_bf16, cpu::ns::bf16_to_f32, cpu::ns::f32_to_bf16, cpu::ns::max_and_sum_exp, cpu::ns::argmax, cpu::ns::stream_read,        \
        nullptr, nullptr, nullptr                                                                           \
  }

const CpuKernels kAvx512 = GRPST_KERNEL_TABLE(avx512, CpuLevel::Avx512, "avx512");
const CpuKernels kAvx2 = GRPST_KERNEL_TABLE(avx2, CpuLevel::Avx2, "avx2");
const CpuKernels kScalar = GRPST_KERNEL_TABLE(scalar, CpuLevel::Scalar, "scalar");
// AVX-512's kernels, the bf16 GEMM on AMX tiles.
const CpuKernels kAmx = [] {
  CpuKernels k = kAvx512;
  k.level = CpuLevel::Amx;
  k.name = "amx";
  k.gemm_bf16 = cpu::amx::gemm;
  k.pack_bf16_bytes = cpu::amx::packed_bytes;
  k.pack_bf16 = cpu::amx::pack;
  k.gemm_bf16_packed = cpu::amx::gemm_packed;
  return k;
}();

}  // namespace

bool cpu_supports(CpuLevel level) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (level) {
    case CpuLevel::Amx:
      return cpu_supports(CpuLevel::Avx512) && cpu::amx::available();
    case CpuLevel::Avx512:
      // Zen 4 and later, Sapphire Rapids and later: BF16 dot products (fp8), VNNI (int8_sq) and
      // VBMI byte lookups (fp8's widening). Ice Lake (no BF16) and Cooper Lake (no VBMI) take avx2.
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni") &&
             __builtin_cpu_supports("avx512vbmi") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CpuLevel::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CpuLevel::Scalar:
      return true;
  }
  return false;
#else
  return level == CpuLevel::Scalar;
#endif
}

std::vector<CpuLevel> cpu_levels_available() {
  std::vector<CpuLevel> out;
  for (CpuLevel l : {CpuLevel::Amx, CpuLevel::Avx512, CpuLevel::Avx2, CpuLevel::Scalar})
    if (cpu_supports(l)) out.push_back(l);
  return out;
}

const CpuKernels& cpu_kernels(CpuLevel level) {
  switch (level) {
    case CpuLevel::Amx:
      // The OS grants the tile state on request (available() asks once): a table handed out
      // before the request would fault on its first tile instruction.
      cpu::amx::available();
      return kAmx;
    case CpuLevel::Avx512:
      return kAvx512;
    case CpuLevel::Avx2:
      return kAvx2;
    default:
      return kScalar;
  }
}

const char* cpu_level_name(CpuLevel level) { return cpu_kernels(level).name; }

CpuLevel parse_cpu_level(const std::string& name) {
  if (name == "amx") return CpuLevel::Amx;
  if (name == "avx512") return CpuLevel::Avx512;
  if (name == "avx2") return CpuLevel::Avx2;
  if (name == "scalar") return CpuLevel::Scalar;
  throw Error("unknown CPU kernel level \"" + name + "\" (GRPST_CPU_KERNELS takes amx, avx512, avx2 or scalar)");
}

CpuLevel choose_cpu_level(const std::string& requested) {
  CpuLevel best = cpu_levels_available().front();
  if (requested.empty()) return best;
  CpuLevel want = parse_cpu_level(requested);
  if (!cpu_supports(want)) {
    throw Error(std::string("CPU kernel level ") + requested + " is not supported by this CPU (best: " +
                cpu_level_name(best) + "); unset GRPST_CPU_KERNELS or pick a lower level");
  }
  return want;
}

}  // namespace grpst
