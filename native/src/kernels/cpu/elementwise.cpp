// Row-wise kernels: RMSNorm, LoRA's rank update, SwiGLU's silu(gate) * up, residual add,
// bf16 <-> fp32, and the max / sum-of-exp pass of a log-softmax over a logits row.
#include <algorithm>
#include <cmath>

#include "grpst/common.h"
#include "kernels/cpu/isa_kernels.h"
#include "kernels/cpu/simd.h"

namespace grpst::cpu::GRPST_ISA {

void rmsnorm(const float* x, const float* w, float* y, int n, float eps) {
  const int full = n / kWidth * kWidth;
  VF ss = vzero();
  for (int i = 0; i < full; i += kWidth) {
    VF v = vload(x + i);
    ss = vfma(v, v, ss);
  }
  if (full < n) {
    VF v = vload_n(x + full, n - full);
    ss = vfma(v, v, ss);
  }
  const float r = 1.0f / std::sqrt(vsum(ss) / float(n) + eps);
  VF vr = vset1(r);
  for (int i = 0; i < full; i += kWidth) vstore(y + i, vmul(vload(w + i), vmul(vload(x + i), vr)));
  if (full < n) vstore_n(y + full, vmul(vload_n(w + full, n - full), vmul(vload_n(x + full, n - full), vr)), n - full);
}

void rank_update_bf16(const float* t, int R, const uint16_t* bt, int64_t ldb, int n, float scale, float* y) {
  // Four vectors of outputs stay in registers through every rank: only Bt is loaded per FMA, and y
  // is read and written once.
  constexpr int kBlock = 4 * kWidth;
  int j = 0;
  for (; j + kBlock <= n; j += kBlock) {
    VF a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    for (int r = 0; r < R; r++) {
      const VF tr = vset1(t[r]);
      const uint16_t* b = bt + int64_t(r) * ldb + j;
      a0 = vfma(tr, vload_bf16(b), a0);
      a1 = vfma(tr, vload_bf16(b + kWidth), a1);
      a2 = vfma(tr, vload_bf16(b + 2 * kWidth), a2);
      a3 = vfma(tr, vload_bf16(b + 3 * kWidth), a3);
    }
    const VF s = vset1(scale);
    vstore(y + j, vfma(s, a0, vload(y + j)));
    vstore(y + j + kWidth, vfma(s, a1, vload(y + j + kWidth)));
    vstore(y + j + 2 * kWidth, vfma(s, a2, vload(y + j + 2 * kWidth)));
    vstore(y + j + 3 * kWidth, vfma(s, a3, vload(y + j + 3 * kWidth)));
  }
  for (; j < n; j += kWidth) {
    const int w = std::min(kWidth, n - j);
    VF a = vzero();
    for (int r = 0; r < R; r++) a = vfma(vset1(t[r]), vload_bf16_n(bt + int64_t(r) * ldb + j, w), a);
    vstore_n(y + j, vfma(vset1(scale), a, vload_n(y + j, w)), w);
  }
}

void silu_mul(const float* gate, const float* up, float* out, int n) {
  // silu(g) = g / (1 + e^-g), as torch computes it.
  const int full = n / kWidth * kWidth;
  const VF one = vset1(1.0f), zero = vzero();
  for (int i = 0; i < full; i += kWidth) {
    VF g = vload(gate + i);
    VF s = vdiv(g, vadd(one, vexp(vsub(zero, g))));
    vstore(out + i, vmul(s, vload(up + i)));
  }
  for (int i = full; i < n; i++) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void add(float* x, const float* y, int n) {
  const int full = n / kWidth * kWidth;
  for (int i = 0; i < full; i += kWidth) vstore(x + i, vadd(vload(x + i), vload(y + i)));
  for (int i = full; i < n; i++) x[i] += y[i];
}

void bf16_to_f32(const uint16_t* src, float* dst, int n) {
  const int full = n / kWidth * kWidth;
  for (int i = 0; i < full; i += kWidth) vstore(dst + i, vload_bf16(src + i));
  for (int i = full; i < n; i++) dst[i] = grpst::bf16_to_f32(src[i]);
}

void f32_to_bf16(const float* src, uint16_t* dst, int n) {
  for (int i = 0; i < n; i++) dst[i] = grpst::f32_to_bf16(src[i]);
}

void max_and_sum_exp(const float* x, int n, float* max_out, double* sum_out) {
  const int full = n / kWidth * kWidth;
  VF m = vset1(-INFINITY);
  for (int i = 0; i < full; i += kWidth) m = vmax(m, vload(x + i));
  float mx = vhmax(m);
  for (int i = full; i < n; i++) mx = std::max(mx, x[i]);
  // Float lanes summed over short runs, runs summed in double: the total stays accurate to
  // ~1e-7 even over a 150k-token vocabulary.
  VF vmx = vset1(mx);
  double sum = 0;
  constexpr int kRun = 64 * kWidth;
  for (int r0 = 0; r0 < full; r0 += kRun) {
    const int r1 = std::min(full, r0 + kRun);
    VF s0 = vzero(), s1 = vzero();
    int i = r0;
    for (; i + 2 * kWidth <= r1; i += 2 * kWidth) {
      s0 = vadd(s0, vexp_neg(vsub(vload(x + i), vmx)));
      s1 = vadd(s1, vexp_neg(vsub(vload(x + i + kWidth), vmx)));
    }
    for (; i < r1; i += kWidth) s0 = vadd(s0, vexp_neg(vsub(vload(x + i), vmx)));
    sum += double(vsum(vadd(s0, s1)));
  }
  for (int j = full; j < n; j++) sum += std::exp(double(x[j]) - double(mx));
  *max_out = mx;
  *sum_out = sum;
}

int argmax(const float* x, int n) {
  // Pass 1, the largest value: vmax(v, m) keeps m where v is NaN (both the SIMD max and the
  // scalar one return their second operand then), so NaN never wins a lane.
  const int full = n / kWidth * kWidth;
  VF m = vset1(-INFINITY);
  for (int i = 0; i < full; i += kWidth) m = vmax(vload(x + i), m);
  float mx = vhmax(m);
  for (int i = full; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (!(mx > -INFINITY)) return -1;  // every entry -inf (banned) or NaN
  // Pass 2, its first position: a lane-equality mask per vector, the lowest set bit.
  const VF vmx = vset1(mx);
  for (int i = 0; i < full; i += kWidth) {
    const unsigned eq = veq_mask(vload(x + i), vmx);
    if (eq) return i + __builtin_ctz(eq);
  }
  for (int i = full; i < n; i++)
    if (x[i] == mx) return i;
  return -1;
}

}  // namespace grpst::cpu::GRPST_ISA
